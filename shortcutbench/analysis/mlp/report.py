"""The book's MLP's own sections of the report (its spec's `sections`):
its headline in words, its states table, the book's case, the variant
picker of its gradient profiles, and what its template
(templates/families/mlp.html.j2) is rendered with, from results/tables.json
and its figures.
"""

from pathlib import Path

from shortcutbench.analysis.family_sections import switch_words
from shortcutbench.analysis.formats import finite
from shortcutbench.analysis.svg import figure
from shortcutbench.analysis.variants import (
    BOOK_VARIANT,
    VARIANT_AXES,
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
from shortcutbench.core.families import layout
from shortcutbench.core.families.mlp import NAME
from shortcutbench.core.files import read_json
from shortcutbench.core.states import SMALLEST_NORMAL

STATES = layout(NAME).states  # never zero-branch

# Its sections in the page's contents, in order, as (id, title).
SECTIONS = [(NAME, "The book\u2019s MLP"), ("book", "The book, reproduced"),
            ("axes", "Axis effects"), ("profile", "Gradient profile"),
            ("attenuation", "Attenuation"), ("heatmap", "Heat map"), ("devices", "Devices"),
            ("nonfinite", "Non-finite cells")]


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
            "gmean": g, "subnormal": finite(g) and 0 < g < tiny,
            "n_subnormal": r.get("first_subnormal", 0)})
    return out


def book_axes_text(tables):
    """Which of the headline variant's values are the book's: chosen among
    the sweep's values (book_axes), the only value the sweep has, missing
    from the sweep, or in the sweep but not in this variant."""
    hl = tables.get("headline") or {}
    variant = headline_variant(tables)
    if variant is None:
        return ""
    axes = hl.get("book_axes") or []
    values = tables["sweep"].get("axes") or {}
    book, fixed, lacking, elsewhere = [], [], [], []
    for a in VARIANT_AXES:
        name = f"{a} {variant[a]}"
        swept = {str(v) for v in values.get(a, [])}
        if a in axes or (variant[a] == BOOK_VARIANT[a] and len(swept) > 1):
            book.append(name)
        # book_axes names only the axes with more than one value: an axis the
        # sweep fixes at the book's value has it all the same
        elif variant[a] == BOOK_VARIANT[a]:
            fixed.append(name)
        elif str(BOOK_VARIANT[a]) in swept:
            elsewhere.append(name)
        else:
            lacking.append(name)
    parts = []
    if book:
        parts.append("the book\u2019s value on every axis the sweep includes ("
                     + ", ".join(book) + ")")
    if fixed:
        parts.append(f"the book\u2019s value{' too' if book else ''} where the sweep fixes it ("
                     + ", ".join(fixed) + ")")
    if lacking:
        parts.append("where the sweep lacks the book\u2019s value: " + ", ".join(lacking))
    if elsewhere:
        parts.append("where the sweep has the book\u2019s value only in other variants: "
                     + ", ".join(elsewhere))
    return "; ".join(parts)


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


def context(sections):
    """What its sections (templates/families/mlp.html.j2) are rendered with.
    sections: {"tables": results/tables.json (read_json()), "figures": figures};
    figures: {"headline"|"attenuation"|"heatmap": svg bytes,
              "axes": [(axis, svg bytes, svg path), ...],
              "profile": (svg bytes, svg path) of the headline's variant,
              "profiles": results/figures/profiles.json (read_json())}."""
    tables, figures = sections["tables"], sections["figures"]
    swept = tables["sweep"]["swept"]
    numbers = figures.get("profiles") or {"arms": [], "variants": []}
    pick = picker(tables, [v["variant"] for v in numbers["variants"]])
    svg, path = figures.get("profile") or (None, None)
    profile = figure(svg, path, variant=pick["base"],
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
        "mlp_fig": {name: figure(figures.get(name))
                    for name in ("headline", "attenuation", "heatmap")},
        "axis_figures": [figure(svg, path, axis=axis)
                         for axis, svg, path in figures.get("axes", [])],
        "words": headline_words(tables), "states": state_rows(tables),
        "book_axes": book_axes_text(tables), "base": base,
        "attenuation_shown": overview_variants(variants, base),
        "heatmap_shown": heatmap_variants(variants, base), "n_variants": len(variants),
        "book_gradients": BOOK_GRADIENTS, "smallest_normal": SMALLEST_NORMAL["float32"],
        "mlp_switch": switch_words(NAME), "label_arm": label_arm, "toc": SECTIONS}


def read(paths):
    """Its sections' files, as the report rule names them (`section_inputs`):
    {"tables"|"headline"|"attenuation"|"heatmap"|"profile"|"profiles": path,
     "axes": [svg path of each axis' figure]} -> what `context` takes."""
    def svg(path):
        return Path(path).read_bytes()

    figures = {name: svg(paths[name]) for name in ("headline", "attenuation", "heatmap")}
    figures["profile"] = (svg(paths["profile"]), str(paths["profile"]))
    figures["profiles"] = read_json(paths["profiles"])
    # an axis' figure is named by its axis (results/figures/axis/AXIS.svg)
    figures["axes"] = [(Path(p).stem, svg(p), str(p)) for p in paths.get("axes") or []]
    return {"tables": read_json(paths["tables"]), "figures": figures}
