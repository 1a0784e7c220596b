"""The report a person reads: one self-contained HTML page (Jinja2).

`render(provenance, families, family_figures, laws, mlp)` fills the templates
in templates/: every family's numbers (results/families.json) and figures,
the findings (results/laws.json), the MLP's sections (results/tables.json
and its figures) where the MLP ran, and the provenance; figures are inlined
as data: URIs.  It needs neither pandas nor matplotlib, so the report job
starts in a fraction of a second.

The page's words are made from the data (`headline_words` for the MLP's
section, analysis/families.py's for every family): what the cells at the
deepest depth are (healthy, vanished, exploded, dead, non-finite), never a
fixed sentence.  Two small
inline scripts make it easier to read at many axes: a variant picker, which
draws the picked variant's gradient profile from its numbers
(results/figures/profiles.json, embedded; without script the headline's
variant's figure shows), and sortable tables.  Nothing is fetched from
anywhere.
"""

import base64
import math
import re
from pathlib import Path

from shortcutbench.analysis.variants import (
    VARIANT_AXES,
    describe_seeds,
    headline_variant,
    heatmap_variants,
    overview_variants,
    variant_label,
    variant_sort_key,
)
from shortcutbench.analysis.words import STATE_VERBS, breakdown, dominant_state
from shortcutbench.core import arms
from shortcutbench.core.arms import BOOK, BOOK_BRANCH, BOOK_SCALE
from shortcutbench.core.book import BOOK_GRADIENTS
from shortcutbench.core.families import SHIPPED_SECTIONS, layout, spec, top_level_family
from shortcutbench.core.files import atomic_write, read_json
from shortcutbench.core.states import SMALLEST_NORMAL

STATES = layout(top_level_family()).states  # the MLP's (never zero-branch)

TEMPLATES = Path(__file__).with_name("templates")


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def fmt_num(x, digits=3):
    """A number for a table cell: 3 significant digits, e-notation when far
    from 1; '–' for missing, '∞' for overflow."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "\u2013"
    if isinstance(x, float) and math.isinf(x):
        return "\u221e" if x > 0 else "\u2212\u221e"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    if x == 0:
        return "0"
    if 1e-3 <= abs(x) < 1e4:
        return f"{x:.{digits}g}"
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt_full(x):
    """The full value (Python's shortest round-tripping repr), for titles."""
    if isinstance(x, float):
        return repr(x)
    return str(x)


def fmt_key(x):
    """A table cell's value to six significant digits: what the page sorts
    by and shows on hover (the exact values are in results/)."""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def fmt_times(x, digits=2):
    """A ratio as 'a × 10ⁿ' (HTML with <sup>), or plain when near 1."""
    from markupsafe import Markup

    if not _finite(x) or x <= 0:
        return Markup(fmt_num(x))
    if 1e-2 <= x < 1e3:
        return Markup(f"{x:.{digits + 1}g}")
    mantissa, exponent = f"{x:.{digits - 1}e}".split("e")
    exp = int(exponent)
    sign = "\u2212" if exp < 0 else ""
    return Markup(f"{mantissa}&thinsp;&times;&thinsp;10<sup>{sign}{abs(exp)}</sup>")


def fmt_decades(x):
    """log10 of a ratio, e.g. '47.3'."""
    if not _finite(x) or x <= 0:
        return "\u2013"
    return f"{math.log10(x):.1f}"



SVG_SIZE = re.compile(rb'<svg[^>]*?\swidth="([0-9.]+)pt"[^>]*?\sheight="([0-9.]+)pt"')


def svg_size(svg):
    """The CSS pixel size matplotlib wrote into an SVG (in pt), or None."""
    match = SVG_SIZE.search(svg[:4000] if isinstance(svg, bytes) else svg[:4000].encode())
    if not match:
        return None
    return tuple(round(float(v) * 4 / 3) for v in match.groups())


PATH_DATA = re.compile(rb'\sd="([^"]*)"')
DECIMALS = re.compile(rb"(-?\d+\.\d)\d+")
BETWEEN_TAGS = re.compile(rb">\s+<")
COMMENT = re.compile(rb"<!--.*?-->", re.S)
SPACES = re.compile(rb"\s+")
COMMAND = re.compile(rb" ?([A-Za-z]) ?")


def _compact_path(data):
    data = DECIMALS.sub(rb"\1", data)
    return COMMAND.sub(rb"\1", SPACES.sub(b" ", data).strip())


FONT_FAMILY = re.compile(rb"font-family: ?([^;\"]+);? ?")
STYLE = re.compile(rb'style="([^"]*)"')
GROUP_ID = re.compile(rb'<g id="[^"]*"')
NO_ROTATION = re.compile(rb' transform="rotate\(-?0 [^"]*\)"')
METADATA = re.compile(rb"<metadata>.*?</metadata>", re.S)
POSITION = re.compile(rb' ([xy])="(-?\d+\.\d)\d*"')


def _compact_style(match):
    return b'style="' + re.sub(rb"([:;]) ", rb"\1", match.group(1)).rstrip(b"; ") + b'"'


def compact_svg(svg):
    """matplotlib's SVG, smaller for the page: path coordinates rounded to
    0.1 pt (a seventh of a pixel) and written without spaces around the
    commands; the font list, repeated on every text, said once in the
    style sheet; text positions to 0.1 pt and no rotation by 0; no ids on
    groups (nothing refers to them), no metadata, no comments, no
    indentation between tags.  Transforms keep every digit."""
    svg = METADATA.sub(b"", COMMENT.sub(b"", svg))
    svg = POSITION.sub(rb' \1="\2"', NO_ROTATION.sub(b"", svg))
    svg = PATH_DATA.sub(lambda m: b' d="' + _compact_path(m.group(1)) + b'"', svg)
    fonts = {m.group(1) for m in FONT_FAMILY.finditer(svg)}
    if len(fonts) == 1 and b'<style type="text/css">' in svg:
        svg = FONT_FAMILY.sub(b"", svg)
        svg = svg.replace(b'<style type="text/css">',
                          b'<style type="text/css">text{font-family:' + fonts.pop() + b"}", 1)
    svg = STYLE.sub(_compact_style, svg)
    svg = GROUP_ID.sub(b"<g", svg)
    return BETWEEN_TAGS.sub(b"><", svg)


def svg_data_uri(svg):
    """An SVG file's bytes as a data: URI for <img src>: self-contained,
    and its ids cannot clash with another figure's."""
    if isinstance(svg, str):
        svg = svg.encode()
    return "data:image/svg+xml;base64," + base64.b64encode(compact_svg(svg)).decode("ascii")


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=fmt_num, full=fmt_full, key=fmt_key, times=fmt_times,
                       decades=fmt_decades, seeds=describe_seeds)
    env.globals.update(variant_label=variant_label, finite=_finite,
                       label_arm=label_arm)
    return env


# ---------------------------------------------------------------- headline

def sweep_arms(tables):
    """(scales, branches) of the sweep's shortcut arms, for the labels."""
    sweep = tables["sweep"]
    scales = sweep.get("scales") or [BOOK_SCALE]
    branches = sorted({str(b) for b in sweep.get("axes", {}).get("branch_scale", [])}
                      | {str(a.get("branch", BOOK_BRANCH)) for a in sweep.get("arms", [])
                         if a.get("shortcut")}) or [BOOK_BRANCH]
    return scales, branches


def label_arm(tables, arm, short=False):
    """An arm's label as the sweep's arms call for (core/arms.label)."""
    scales, branches = sweep_arms(tables)
    return arms.label(arms.of(arm), scales, branches, short=short)


def deepest_states(tables):
    """The `states` rows at the deepest depth, as (row, arm) sorted: the
    headline's variant first, then by variant and arm."""
    states = tables.get("states") or {}
    rows = states.get("rows") or []
    if not rows:
        return []
    deepest = max(int(r["depth"]) for r in rows)
    base = headline_variant(tables)
    rows = [r for r in rows if int(r["depth"]) == deepest]
    return sorted(rows, key=lambda r: (r["variant"] != base, variant_sort_key(r["variant"]),
                                       arms.of(r).sort_key()))


def _subject(tables, arm):
    if not arm[0]:
        return "Without a shortcut, the network"
    if arm == BOOK:
        return "With the book\u2019s shortcut (x + f(x)), the network"
    label = label_arm(tables, arm, short=True)
    detail = label.split(", ", 1)[1] if ", " in label else ""
    return f"With a shortcut ({detail}), the network" if detail else \
        "With a shortcut, the network"


def headline_words(tables):
    """The headline in words, made from the data: what the headline's
    variant does at the deepest depth, per arm, and which variant and arm
    stays healthy.  A list of sentences (plain text)."""
    rows = deepest_states(tables)
    if not rows:
        return []
    base = headline_variant(tables)
    deepest = int(rows[0]["depth"])
    sentences = []
    for row in rows:
        if row["variant"] != base or not row["n"]:
            continue
        arm = arms.of(row)
        state = dominant_state(row["counts"])
        sentences.append(f"{_subject(tables, arm)} {STATE_VERBS[state]} at depth {deepest}: "
                         f"{breakdown(row['counts'], row['n'], state)}.")
    scored = [(r["counts"].get("healthy", 0) / r["n"], r) for r in rows if r["n"]]
    best = max((share for share, _ in scored), default=0.0)
    several = len({tuple(sorted(r["variant"].items())) for r in rows}) > 1
    swept = tables["sweep"].get("swept", [])
    if best == 0:
        sentences.append(f"No {'variant or ' if several else ''}arm stays healthy at depth "
                         f"{deepest}.")
        return sentences
    winners = [r for share, r in scored if share == best]
    named = []
    for r in winners[:3]:
        who = label_arm(tables, arms.of(r))
        if several:
            who = f"{variant_label(r['variant'], swept)}, {who}"
        named.append(f"{who} ({r['counts'].get('healthy', 0)} of {r['n']} seeds)")
    more = f" and {len(winners) - 3} more" if len(winners) > 3 else ""
    lead = (f"Stays healthy at depth {deepest}" if best > 0.5 else
            f"Healthiest at depth {deepest}, though most of its seeds are not")
    sentences.append(f"{lead}: {'; '.join(named)}{more}.")
    return sentences


def state_rows(tables):
    """The headline table: per variant and arm at the deepest depth, the
    share of seeds in each state and the first layer's geometric mean,
    marked where it is subnormal."""
    out = []
    base = headline_variant(tables)
    for r in deepest_states(tables):
        n = r["n"]
        tiny = SMALLEST_NORMAL.get(r["variant"].get("dtype", "float32"),
                                   SMALLEST_NORMAL["float32"])
        g = r.get("first_gmean")
        out.append({
            "variant": r["variant"], "book": r["variant"] == base, "arm": arms.of(r),
            "depth": r["depth"], "n": n,
            "counts": [(s, r["counts"].get(s, 0), r["counts"].get(s, 0) / n if n else 0.0)
                       for s in STATES],
            "dominant": dominant_state(r["counts"]),
            "gmean": g, "subnormal": _finite(g) and 0 < g < tiny,
            "n_subnormal": r.get("first_subnormal", 0)})
    return out


def book_axes_text(tables):
    """Which of the headline variant's values are the book's."""
    hl = tables.get("headline") or {}
    variant = headline_variant(tables)
    if variant is None:
        return ""
    axes = hl.get("book_axes") or []
    book = [f"{a} {variant[a]}" for a in VARIANT_AXES if a in axes]
    other = [f"{a} {variant[a]}" for a in VARIANT_AXES if a not in axes]
    text = ""
    if book:
        text = "the book\u2019s value on every axis the sweep includes (" + ", ".join(book) + ")"
    if other:
        text += ("; " if text else "") + "where the sweep lacks the book\u2019s value: " \
            + ", ".join(other)
    return text


# ---------------------------------------------------------------- picker

def picker(tables, variants):
    """The variant picker: one <select> per swept axis, its values, and the
    variant the page shows without script (the headline's)."""
    axes = [a for a in VARIANT_AXES if len({str(v[a]) for v in variants}) > 1]
    base = headline_variant(tables)
    if base not in variants and variants:
        base = sorted(variants, key=variant_sort_key)[0]
    values = {a: sorted({v[a] for v in variants}, key=lambda x: (str(type(x)), x)) for a in axes}
    return {"axes": axes, "values": values, "base": base}


def variant_key(variant, axes):
    return "|".join(str(variant[a]) for a in axes)


def profile_script_data(numbers, axes):
    """results/figures/profiles.json for the page's script, keyed as the
    picker keys a variant, as JSON that is safe inside <script>."""
    import json

    from markupsafe import Markup

    data = {"arms": numbers["arms"],
            "variants": {variant_key(v["variant"], axes): v for v in numbers["variants"]}}
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    return Markup(text.replace("<", "\\u003c"))


def _figure(svg, path=None, **extra):
    """A figure for the page: its data: URI, its size, its file's path."""
    path = path and str(path)
    if not svg:
        return {"uri": None, "size": None, "path": path, **extra}
    return {"uri": svg_data_uri(svg), "size": svg_size(svg), "path": path, **extra}


def mlp_context(tables, figures):
    """What the MLP's sections (templates/mlp.html.j2) are rendered with.
    figures: {"headline"|"attenuation"|"heatmap": svg bytes,
              "axes": [(axis, svg bytes, svg path), ...],
              "profile": (svg bytes, svg path) of the headline's variant,
              "profiles": results/figures/profiles.json (read_json())}."""
    swept = tables["sweep"]["swept"]
    numbers = figures.get("profiles") or {"arms": [], "variants": []}
    pick = picker(tables, [v["variant"] for v in numbers["variants"]])
    svg, path = figures.get("profile") or (None, None)
    profile = _figure(svg, path, variant=pick["base"],
                      label=variant_label(pick["base"], swept) if pick["base"] else "",
                      key=variant_key(pick["base"], pick["axes"]) if pick["base"] else "",
                      n=len(numbers["variants"]), lines=numbers.get("lines"),
                      data=profile_script_data(numbers, pick["axes"]))
    headline = tables["headline"]
    variants = tables["sweep"].get("variants") or []
    base = headline_variant(tables)
    return {
        "t": tables, "swept": swept, "profile": profile, "picker": pick,
        "main": headline["rows"][headline["main"]] if headline["rows"] else None,
        "mlp_fig": {name: _figure(figures.get(name))
                    for name in ("headline", "attenuation", "heatmap")},
        "axis_figures": [_figure(svg, path, axis=axis)
                         for axis, svg, path in figures.get("axes", [])],
        "words": headline_words(tables), "states": state_rows(tables),
        "book_axes": book_axes_text(tables), "base": base,
        "attenuation_shown": overview_variants(variants, base),
        "heatmap_shown": heatmap_variants(variants, base), "n_variants": len(variants),
        "book_gradients": BOOK_GRADIENTS, "smallest_normal": SMALLEST_NORMAL["float32"],
        "mlp_switch": switch_words(top_level_family())}


# ---------------------------------------------------------------- families

GENERIC_SWITCH = ("The generic switch finds each block\u2019s residual adds by tracing which "
                  "operands of an add share the block\u2019s input and its parameters; without "
                  "shortcut the add keeps the branch alone, and with shortcut_scale \u03bb and "
                  "branch_scale \u03b1 it becomes \u03bb\u00b7skip + \u03b1\u00b7branch.")


def _count(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def switch_words(name, switch=None):
    """How a family's shortcut was removed, for its section: the means, the
    residual adds per block and where they are, and for the generic switch
    what it does.  A shipped family's from its spec; a user family's from
    its check's `switch` ({"means": "generic"|"own", "blocks": n,
    "adds_per_block": k, "where": ["file.py:L", ...]}), None where its
    check did not say."""
    own = spec(name).switch
    if own:
        return {"generic": False, "means": "its own shortcut argument", "adds": own,
                "where": [], "explain": ""}
    if not switch:
        return None
    if switch.get("means") == "none":
        return {"generic": False, "adds": "", "where": [], "explain": "",
                "means": "nothing: every cell keeps its shortcuts as built (it has no shortcut "
                         "argument, and no cell is without them or scaled)"}
    generic = switch.get("means") == "generic"
    adds = switch.get("adds_per_block")
    adds = "" if adds is None else _count(adds, "residual add") + " per block"
    if adds and switch.get("blocks"):
        adds += f" (in each of the {_count(switch['blocks'], 'block')} its check traced)"
    means = ("the generic switch" if generic else "its factory\u2019s own shortcut argument"
             + ("; its shortcut_scales and branch_scales by the generic switch" if adds else ""))
    return {"generic": generic, "means": means, "adds": adds,
            "where": list(switch.get("where") or []),
            "explain": GENERIC_SWITCH if adds else ""}


def config_key(name, key):
    """A key of a family's config section as the config names it:
    'shortcut', 'gpt.shortcut', 'families.mine.shortcut'."""
    section = spec(name).section
    return f"{section}.{key}" if section else key


def one_flag_words(name, flags):
    """Why a family that swept one shortcut flag has no with/without
    ratio, naming the config key; '' where it swept both."""
    if len(flags) != 1:
        return ""
    which = "with" if flags[0] else "without"
    return (f"only {which} its shortcut was measured ({config_key(name, 'shortcut')}: "
            f"[{str(flags[0]).lower()}])")


def shortcut_words(fams):
    """The introduction's 'with and without the shortcut', as swept: each
    family's flags; those that swept one named."""
    alone = {True: [], False: []}
    for f in fams:
        if len(f["flags"]) == 1:
            alone[f["flags"][0]].append(f["title"])
    if not alone[True] and not alone[False]:
        return "with and without the shortcut"
    if len(alone[True]) == len(fams):
        return "with the shortcut only"
    if len(alone[False]) == len(fams):
        return "without the shortcut only"
    notes = [f"{which} it only: {', '.join(titles)}"
             for which, titles in (("with", alone[True]), ("without", alone[False])) if titles]
    return f"with and without the shortcut ({'; '.join(notes)})"


def family_context(family, figures, switch=None):
    """A family's entry of results/families.json, ready for
    templates/family.html.j2: its figures ({name: (svg bytes, path)}), its
    template in families/ (a shipped family's introduction and hook), the
    rows at its deepest depth with their labels and ratios, how its
    shortcut was removed (`switch`: its check's, for a user family) and,
    where it swept one shortcut flag, why it has no ratio."""
    from shortcutbench.analysis.families import at_depth

    f = dict(family)
    flags = sorted({bool(arm["shortcut"]) for arm in f["arms"]})
    f.update(flags=flags, no_ratio=one_flag_words(f["name"], flags),
             switch=switch_words(f["name"], switch))
    scales, branches = arms.knobs(f["arms"])

    def arm_text(arm):
        return arms.label(arms.of(arm), scales, branches, short=True)

    def label(variant):
        return f["labels"][f["variants"].index(variant)]

    ratios = {(tuple(sorted(r["variant"].items())), arms.of(r["arm"]), r["depth"]): r
              for r in f["ratios"]}
    deepest = [{**r, "label": label(r["variant"]), "arm_label": arm_text(r["arm"]),
                "ratio": ratios.get((tuple(sorted(r["variant"].items())), arms.of(r["arm"]),
                                     r["depth"]))}
               for r in f["states"] if r["depth"] == f["deepest"]]
    deepest.sort(key=lambda r: (r["variant"] != f["main"], f["variants"].index(r["variant"]),
                                arms.of(r["arm"]).sort_key()))
    f.update(fig={name: _figure(svg, path) for name, (svg, path) in figures.items()},
             template=spec(f["name"]).template,
             at_deepest=at_depth(f["name"], f["deepest"]),
             main_label=label(f["main"]) if f["main"] else "", deepest_rows=deepest)
    return f


def overview_rows(families):
    """The headline table: every family's main variant at its deepest
    depth, one row per arm."""
    rows = []
    for f in families:
        for r in f["deepest_rows"]:
            if r["variant"] != f["main"]:
                continue
            ratio = r["ratio"] or {}
            rows.append({"title": f["title"], "depth": f["deepest"], "arm": r["arm"],
                         "arm_label": r["arm_label"], "n": r["n"],
                         "healthy": r["counts"]["healthy"], "share": r["healthy"] or 0.0,
                         "dominant": r["dominant"], "first": r["first"]["gmean"],
                         "ratio": ratio.get("ratio"), "low": ratio.get("low"),
                         "high": ratio.get("high"),
                         # 'with shortcut only' where it swept one flag: no ratio
                         "no_ratio": f["no_ratio"] and
                         f"{'with' if f['flags'][0] else 'without'} shortcut only"})
    return rows


def software_rows(prov):
    """The software table: every package of provenance's `versions` (the
    core ones, then each library a measuring job imported), its version
    where the report was built and the versions the measuring jobs found,
    with the families whose jobs imported it where not every family's did."""
    from shortcutbench.analysis.provenance import canonical

    jobs = {canonical(p["name"]): p for p in prov.get("job_packages", [])}
    everyone = {model for p in jobs.values() for model in p["families"]}
    pythons = sorted({m["python"] for m in prov.get("machines", []) if m.get("python")})
    rows = []
    for name, version in prov["versions"].items():
        job = jobs.get(canonical(name), {})
        families = job.get("families", [])
        rows.append({"name": name, "here": version,
                     "jobs": pythons if name == "python" else job.get("versions", []),
                     "families": families if set(families) != everyone else []})
    return rows


# The top-level keys that sweep the MLP alone (the other families take
# their devices, dtypes and seeds_per_job from the top level where their
# sections name none).
MLP_KEYS = ("depths", "widths", "seeds", "shortcut", "shortcut_scales", "branch_scales",
            "activations", "inits", "norms", "studies")


def config_as_run(config):
    """The validated config without the sections of families that did not
    run: their defaults say nothing about this run."""
    models = config.get("models", ["mlp"])
    shown = {}
    for key, value in config.items():
        if key in SHIPPED_SECTIONS and key not in models:
            continue
        if key in MLP_KEYS and "mlp" not in models:
            continue
        if key == "families":
            value = {name: family for name, family in value.items() if name in models}
            if not value:
                continue
        shown[key] = value
    return shown


def contents(families, has_mlp):
    """The page's sections, in order, as (id, title): numbered by position."""
    toc = [("headline", "Headline")]
    if has_mlp:
        toc += [("mlp", "The book\u2019s MLP"), ("book", "The book, reproduced"),
                ("axes", "Axis effects"), ("profile", "Gradient profile"),
                ("attenuation", "Attenuation"), ("heatmap", "Heat map"), ("devices", "Devices"),
                ("nonfinite", "Non-finite cells")]
    toc += [(f"family-{f['name']}", f["title"]) for f in families if f["name"] != "mlp"]
    toc += [("laws", "What the sweep shows"), ("provenance", "Config & provenance")]
    return toc


def render(provenance, families, family_figures, laws=None, mlp=None, training=None,
           switches=None):
    """The report as one HTML string.

    provenance: what provenance.gather() returned.
    families: results/families.json (read_json()), every family's numbers.
    family_figures: {family: {figure: (svg bytes, svg path)}}.
    laws: the findings of results/laws.json (analysis/laws.py), or None.
    mlp: the MLP's sections (models lists mlp): {"tables": results/tables.json,
         "figures": mlp_context's figures}, or None.
    training: the training figure's svg bytes, or None.
    switches: {family: its check's `switch`}, how a user family's shortcut
              was removed (core/family_check.py), where its check said.
    """
    fams = [family_context(f, family_figures.get(f["name"], {}),
                           (switches or {}).get(f["name"]))
            for f in families["families"]]
    toc = contents(fams, mlp is not None)
    import yaml

    config_yaml = yaml.safe_dump(config_as_run(provenance.get("config", {})), sort_keys=False,
                                 default_flow_style=None, width=88)
    context = mlp_context(mlp["tables"], mlp["figures"]) if mlp else {"t": None}
    template = environment().get_template("report.html.j2")
    return template.render(
        **context, families=fams, overview=overview_rows(fams),
        shortcut_words=shortcut_words(fams),
        n_cells=sum(f["n_cells"] for f in fams), band=families.get("band", 2),
        toc=toc, num={key: i for i, (key, _) in enumerate(toc, 1)},
        states_order=STATES, prov=provenance, config_yaml=config_yaml, laws=laws,
        family_titles={f["name"]: f["title"] for f in fams}, software=software_rows(provenance),
        fig={"training": _figure(training)})


def write_report(html_path, provenance, families_path, family_stems, laws_path=None,
                 mlp=None, axis_paths=None, training_path=None, switches=None):
    """The report job: every family's numbers and figures, the findings,
    the MLP's tables and figures (where it ran) and the provenance ->
    report/index.html.
    family_stems: {family: {figure: path without extension}};
    mlp: {"tables"|"headline"|"attenuation"|"heatmap"|"profile"|"profiles": path}
         or None; axis_paths: {axis: svg path} of the MLP's axis figures;
    switches: {family: its check's `switch`} (render)."""
    def read(path):
        return Path(path).read_bytes() if path else None

    family_figures = {name: {figure: (read(f"{stem}.svg"), f"{stem}.svg")
                             for figure, stem in stems.items()}
                      for name, stems in family_stems.items()}
    sections = None
    if mlp:
        figures = {name: read(mlp[name]) for name in ("headline", "attenuation", "heatmap")}
        figures["profile"] = (read(mlp["profile"]), str(mlp["profile"]))
        figures["profiles"] = read_json(mlp["profiles"])
        figures["axes"] = [(axis, read(p), str(p)) for axis, p in (axis_paths or {}).items()]
        sections = {"tables": read_json(mlp["tables"]), "figures": figures}
    html = render(provenance, read_json(families_path), family_figures,
                  read_json(laws_path) if laws_path else None, sections, read(training_path),
                  switches)
    with atomic_write(html_path, encoding="utf-8") as f:
        f.write(html)
    return html
