"""The report a person reads: one self-contained HTML page (Jinja2).

`render(tables, figures, provenance, laws)` fills the template in
templates/ with results/tables.json, the figures (inlined as data: URIs) and
the provenance.  It needs neither pandas nor matplotlib, so the report job
starts in a fraction of a second.
"""

import base64
import math
import re
from pathlib import Path

from shortcutbench.analysis.variants import arm_label, describe_seeds, variant_label
from shortcutbench.core.book import BOOK_GRADIENTS
from shortcutbench.core.files import atomic_write, read_json

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


def svg_data_uri(svg):
    """An SVG file's bytes as a data: URI for <img src>: self-contained,
    and its ids cannot clash with another figure's."""
    if isinstance(svg, str):
        svg = svg.encode()
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii")


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
    env.filters.update(num=fmt_num, full=fmt_full, times=fmt_times, decades=fmt_decades,
                       seeds=describe_seeds)
    env.globals.update(variant_label=variant_label, arm_label=arm_label, finite=_finite,
                       verdict_class=verdict_class)
    return env


def verdict_class(verdict):
    """pass / fail / '' for a finding's verdict (laws.py's words)."""
    if verdict.startswith(("agrees", "confirmed")):
        return "pass"
    if verdict.startswith(("differs", "not confirmed")):
        return "fail"
    return ""


def render(tables, figures, provenance, laws=None, gpt=None):
    """The report as one HTML string.

    tables: what `tables()` returned (or read_json()).
    figures: {"headline"|"attenuation"|"heatmap": svg bytes or None,
              "profiles": [(variant dict, svg bytes, svg path), ...]}.
    provenance: what provenance.gather() returned.
    laws: the findings of results/laws.json (shortcutbench.laws), or None.
    gpt: the GPT section's numbers (results/gpt.json) with "fig": {name: svg
         bytes} of analysis/figures_gpt.FIGURES, or None (no GPT section).
    """
    swept = tables["sweep"]["swept"]

    def figure(svg, path=None, **extra):
        if not svg:
            return {"uri": None, "size": None, "path": path, **extra}
        return {"uri": svg_data_uri(svg), "size": svg_size(svg), "path": path, **extra}

    fig = {name: figure(figures.get(name))
           for name in ("headline", "attenuation", "heatmap", "training")}
    profiles = [figure(svg, str(path), variant=v, label=variant_label(v, swept))
                for v, svg, path in figures.get("profiles", [])]
    headline = tables["headline"]
    main = headline["rows"][headline["main"]] if headline["rows"] else None
    import yaml

    config_yaml = yaml.safe_dump(provenance.get("config", {}), sort_keys=False,
                                 default_flow_style=None, width=88)
    template = environment().get_template("report.html.j2")
    return template.render(t=tables, main=main, swept=swept, fig=fig,
                           profiles=profiles, prov=provenance, config_yaml=config_yaml,
                           book_gradients=BOOK_GRADIENTS, laws=laws,
                           gpt=gpt and {**gpt, "fig": {name: figure(svg)
                                                       for name, svg in gpt["fig"].items()}})


def write_report(tables_path, figure_paths, profile_paths, variants, provenance, html_path,
                 laws_path=None, gpt_path=None, gpt_figures=None):
    """The report job: tables + figure files + provenance (+ findings) -> report/index.html."""
    def read(path):
        return Path(path).read_bytes() if path else None

    figures = {name: read(path) for name, path in figure_paths.items()}
    figures["profiles"] = [(v, read(p), str(p)) for v, p in zip(variants, profile_paths)]
    laws = read_json(laws_path) if laws_path else None
    gpt = None
    if gpt_path:  # the GPT section: results/gpt.json and {name: svg path}
        gpt = {**read_json(gpt_path), "fig": {n: read(p) for n, p in gpt_figures.items()}}
    html = render(read_json(tables_path), figures, provenance, laws, gpt)
    with atomic_write(html_path, encoding="utf-8") as f:
        f.write(html)
    return html
