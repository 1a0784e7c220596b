"""The report's words and marks come from the data: the headline in cell
states (issue 12), subnormal marks, verdict styling, the variant picker and
the SVGs made smaller for the page."""

import copy
import json
import re

import pytest
from report_inputs import contract_tables
from test_report import PROVENANCE, TINY_SVG, make_gradients, page_html, text_of

from shortcutbench.analysis.findings import Finding, Verdict
from shortcutbench.analysis.mlp import report as mlp_report
from shortcutbench.analysis.svg import compact_svg, svg_size
from shortcutbench.core.states import STATES

VARIANT = {"width": 3, "activation": "gelu_tanh", "init": "pytorch", "norm": "none",
           "dtype": "float32", "device": "cpu"}


def states_row(shortcut, depth, scale=None, branch="1", variant=VARIANT, first=0.1, **counts):
    n = sum(counts.values())
    return {"variant": dict(variant), "shortcut": shortcut,
            "scale": (1.0 if scale is None else scale) if shortcut else 0.0,
            "branch": branch, "depth": depth, "n": n,
            "counts": {s: counts.get(s.replace("-", "_"), 0) for s in STATES},
            "first_gmean": first, "first_subnormal": 0}


def made_tables(rows, variants=(VARIANT,)):
    """results/tables.json as the report job reads it, with these states."""
    data = contract_tables(make_gradients(depths=(2, 64), seeds=(1, 2)))
    data["states"] = {"band": 2.0, "rows": rows}
    data["sweep"]["variants"] = [dict(v) for v in variants]
    return data


def page_of(data, laws=None):
    numbers = {"arms": [{"label": "without shortcut", "color": "#de8f05"}],
               "variants": [{"variant": v, "label": str(v), "panels": []}
                            for v in data["sweep"]["variants"]]}
    figures = {"headline": TINY_SVG, "attenuation": TINY_SVG, "heatmap": TINY_SVG,
               "profile": (TINY_SVG, "results/figures/profile.svg"), "profiles": numbers}
    return page_html(data, figures, PROVENANCE, laws)


# The book's network at depth 64, width 3 (issue 12's facts, rounded).
BOOK_AT_64 = [states_row(False, 64, vanished=30, first=9.8e-38),
              states_row(True, 64, exploded=19, dead=11, first=8.8e7)]


def test_the_headline_says_the_books_shortcut_network_explodes():
    words = mlp_report.headline_words(made_tables(BOOK_AT_64))
    assert words[0] == ("Without a shortcut, the network loses its gradient (vanished) at depth "
                        "64: all 30 seeds vanished.")
    assert words[1] == ("With the book\u2019s shortcut (x + f(x)), the network explodes at depth "
                        "64: 19 of 30 seeds exploded, 11 dead.")
    assert words[2] == "No arm stays healthy at depth 64."


def test_a_healthy_shortcut_is_never_said_to_explode():
    rows = [states_row(False, 64, vanished=10), states_row(True, 64, healthy=10)]
    words = mlp_report.headline_words(made_tables(rows))
    assert not any("explode" in w for w in words)
    assert words[1] == ("With the book\u2019s shortcut (x + f(x)), the network stays healthy at "
                        "depth 64: all 10 seeds healthy.")
    assert words[2] == "Stays healthy at depth 64: with shortcut (10 of 10 seeds)."
    text = text_of(page_of(made_tables(rows)))
    assert "explode" not in text.split("Hover a number")[0].split("A cell is healthy")[0]


def test_the_headline_names_the_variant_that_stays_healthy():
    ln = dict(VARIANT, width=32, norm="pre_layernorm")
    rows = BOOK_AT_64 + [states_row(False, 64, variant=ln, healthy=10),
                         states_row(True, 64, variant=ln, healthy=9, vanished=1)]
    data = made_tables(rows, variants=(VARIANT, ln))
    data["sweep"]["swept"] = ["width", "norm"]
    words = mlp_report.headline_words(data)
    # only the headline's variant (the book's) is described arm by arm ...
    assert sum(w.startswith(("With", "Without")) for w in words) == 2
    # ... and the healthiest variant and arm is named
    assert words[-1] == ("Stays healthy at depth 64: width 32 \u00b7 pre_layernorm, without "
                         "shortcut (10 of 10 seeds).")


def test_other_arms_are_named_by_lambda_and_alpha():
    rows = [states_row(False, 8, vanished=4), states_row(True, 8, exploded=4),
            states_row(True, 8, branch="0.1", healthy=3, exploded=1)]
    data = made_tables(rows)
    data["sweep"]["axes"]["branch_scale"] = ["0.1", "1"]
    words = mlp_report.headline_words(data)
    assert words[2] == ("With a shortcut (\u03b1=0.1), the network stays healthy at depth 8: "
                        "3 of 4 seeds healthy, 1 exploded.")
    assert words[1].startswith("With the book\u2019s shortcut (x + f(x)), the network explodes")
    assert words[3] == "Stays healthy at depth 8: with shortcut, \u03b1=0.1 (3 of 4 seeds)."


def test_the_headline_table_marks_subnormal_values():
    rows = copy.deepcopy(BOOK_AT_64)
    rows[0]["first_gmean"], rows[0]["first_subnormal"] = 3e-39, 21  # < 1.18e-38
    data = made_tables(rows)
    table = mlp_report.state_rows(data)
    assert [r["subnormal"] for r in table] == [True, False]
    page = page_of(data)
    assert re.search(r'class="num subnormal"[^>]*>3.00e-39 <abbr title="subnormal', page)
    # the ratio table marks seeds whose denominator is subnormal
    data["headline"]["rows"][0]["without_subnormal"] = 2
    assert re.search(r'class="num subnormal" data-v="2">&dagger; 2 of 2<', page_of(data))


def test_the_headline_says_which_axes_take_the_books_values():
    data = made_tables(BOOK_AT_64)
    data["headline"]["book_axes"] = ["activation", "init", "norm", "dtype", "device"]
    text = mlp_report.book_axes_text(data)
    assert text.startswith("the book\u2019s value on every axis the sweep includes "
                           "(activation gelu_tanh, init pytorch, norm none")
    # the sweep has width 3 only: the book's, not lacking it
    assert text.endswith("the book\u2019s value too where the sweep fixes it (width 3)")
    assert "This section and section 3 are about the book\u2019s variant" in text_of(
        page_of(data))


def test_an_axis_the_sweep_fixes_at_the_books_value_does_not_lack_it():
    data = made_tables(BOOK_AT_64)
    data["headline"]["book_axes"] = []  # main_choice's: no axis has more than one value
    text = mlp_report.book_axes_text(data)
    assert text == ("the book\u2019s value where the sweep fixes it (width 3, activation "
                    "gelu_tanh, init pytorch, norm none, dtype float32, device cpu)")
    assert "lacks" not in text_of(page_of(data))


def test_an_axis_whose_values_miss_the_books_lacks_it():
    data = made_tables(BOOK_AT_64)
    data["headline"]["book_axes"] = []
    for row in data["headline"]["rows"]:
        row["variant"].update(width=8, init="kaiming")
    data["sweep"]["axes"].update(width=[8], init=["kaiming", "pytorch"])
    text = mlp_report.book_axes_text(data)
    assert text == ("the book\u2019s value where the sweep fixes it (activation gelu_tanh, "
                    "norm none, dtype float32, device cpu); where the sweep lacks the "
                    "book\u2019s value: width 8; where the sweep has the book\u2019s value "
                    "only in other variants: init kaiming")


@pytest.mark.parametrize("verdict, css", [
    ("agrees", "pass"), ("confirmed", "pass"), ("close", "neutral"), ("partly", "neutral"),
    ("not measured", "neutral"), ("differs", "fail"), ("not confirmed", "fail")])
def test_verdicts_are_styled_by_their_value(verdict, css):
    assert Verdict(verdict).outcome == css
    finding = Finding("attenuation", Verdict(verdict), detail="(the detail)").to_json()
    page = page_of(made_tables(BOOK_AT_64), laws=[finding])
    assert f'<span class="badge {css}">{verdict}</span>' in page


def test_the_picker_shows_the_headline_variant_without_script():
    relu = dict(VARIANT, activation="relu")
    wide = dict(VARIANT, width=8)
    data = made_tables(BOOK_AT_64, variants=(relu, VARIANT, wide))
    page = page_of(data)
    # the headline's variant's figure shows; the drawn one waits for the script
    assert re.findall(r'<div class="variant" id="profile-static" data-variant="([^"]*)">',
                      page) == ["3|gelu_tanh"]
    assert '<figure class="variant" id="profile-drawn" hidden>' in page
    assert '<div class="picker" id="picker" hidden>' in page
    assert re.search(r'<option value="gelu_tanh" selected>', page)
    assert "<noscript>" in page
    # every variant's numbers, keyed as the picker keys them
    embedded = re.search(r'<script type="application/json" id="profile-data">(.*?)</script>',
                         page, re.S).group(1)
    assert sorted(json.loads(embedded)["variants"]) == ["3|gelu_tanh", "3|relu", "8|gelu_tanh"]


def test_embedded_numbers_cannot_end_their_script():
    numbers = {"arms": [{"label": "</script><script>alert(1)</script>", "color": "#000"}],
               "variants": [{"variant": VARIANT, "label": "x", "panels": []}]}
    text = str(mlp_report.profile_script_data(numbers, ["width"]))
    assert "<" not in text
    assert json.loads(text)["arms"][0]["label"].startswith("</script>")


def test_compact_svg_keeps_the_drawing_and_drops_the_bytes():
    svg = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="72pt" '
           b'height="36pt"><metadata>m</metadata><defs><style type="text/css">*{a: b}</style>'
           b'</defs>\n  <!-- a -->\n  <g id="figure_1">\n   <path d="M 1.234567 2.345678 \n'
           b'L 3.5 4.25 \nz\n" style="fill: #fff; stroke: #000"/>\n'
           b'<text style="font-size: 9px; font-family: \'DejaVu Sans\', sans-serif; fill: #262626"'
           b' x="1.23456" y="2.5" transform="rotate(-0 1.23456 2.5)">1</text></g></svg>')
    out = compact_svg(svg)
    assert b'<path d="M1.2 2.3L3.5 4.2z" style="fill:#fff;stroke:#000"/>' in out
    assert b'<text style="font-size:9px;fill:#262626" x="1.2" y="2.5">1</text>' in out
    assert b"text{font-family:'DejaVu Sans', sans-serif}*{a: b}" in out
    assert b"<!--" not in out and b"metadata" not in out and b'id="figure_1"' not in out
    assert svg_size(out) == (96, 48)


def test_healthy_only_where_most_seeds_are():
    # 2 of 5 healthy is not "stays healthy": the sentence names the explosion
    rows = [states_row(False, 32, vanished=5), states_row(True, 32, healthy=2, exploded=2, dead=1)]
    words = mlp_report.headline_words(made_tables(rows))
    assert words[1] == ("With the book\u2019s shortcut (x + f(x)), the network explodes at depth "
                        "32: 2 of 5 seeds exploded, 2 healthy, 1 dead.")
    assert words[2] == ("Healthiest at depth 32, though most of its seeds are not: with "
                        "shortcut (2 of 5 seeds).")


@pytest.mark.parametrize("lines, words", [(12, "at most 12 single seeds per depth and arm"),
                                          (0, "no single seeds: too many variants")])
def test_the_drawn_profile_says_how_many_seeds_it_holds(lines, words):
    data = made_tables(BOOK_AT_64, variants=(VARIANT, dict(VARIANT, activation="relu")))
    numbers = {"arms": [], "lines": lines,
               "variants": [{"variant": v, "label": str(v), "panels": []}
                            for v in data["sweep"]["variants"]]}
    figures = {"headline": TINY_SVG, "attenuation": TINY_SVG, "heatmap": TINY_SVG,
               "profile": (TINY_SVG, "results/figures/profile.svg"), "profiles": numbers}
    assert words in text_of(page_html(data, figures, PROVENANCE))
