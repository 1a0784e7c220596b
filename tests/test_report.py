"""The report's numbers (shortcutbench.report.tables) and its HTML, on small
hand-made sweeps: with and without the book's case, with non-finite and
all-zero cells, one seed, one depth, one shortcut flag, several devices."""

import html
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from report_inputs import contract_tables
from scipy import stats

from shortcutbench.analysis import families, formats, provenance
from shortcutbench.analysis import render as page
from shortcutbench.analysis.mlp import tables as report
from shortcutbench.analysis.variants import describe_seeds
from shortcutbench.core.book import BOOK_CASE, BOOK_GRADIENTS
from shortcutbench.core.records import COLUMNS

BOOK_CELL = {**BOOK_CASE, "init": "pytorch", "norm": "none"}


def _value(cell, layer):
    """A made-up gradient: decays with distance from the output without a
    shortcut, stays put with one; the seed scatters it a little."""
    jitter = 1 + (cell["seed"] % 7) / 10
    if cell["shortcut"]:
        return 0.2 * jitter * cell["shortcut_scale"] ** 0.5
    return 0.01 * 0.1 ** (cell["depth"] - 1 - layer) * jitter


def make_gradients(depths=(1, 5), widths=(3,), seeds=(122, 123), shortcuts=(False, True),
                   scales=(1.0,), devices=("cpu",), activations=("gelu_tanh",),
                   dtypes=("float32",), nonfinite=(), zero=(), value=_value, book=True):
    """A results/gradients.csv as the workflow writes it, made up.

    nonfinite / zero: (depth, shortcut, seed) cells that overflow / whose
    output and gradients are exactly 0.  The book's cell gets the book's
    numbers when `book` (and the sweep has it).
    """
    rows = []
    arms = [(False, 0.0)] * (False in shortcuts) + [(True, float(s)) for s in scales] * (
        True in shortcuts)
    for device in devices:
        for dtype in dtypes:
            for activation in activations:
                for width in widths:
                    for depth in depths:
                        for shortcut, scale in arms:
                            for seed in seeds:
                                cell = {"model": "mlp", "depth": depth, "width": width,
                                        "seed": seed,
                                        "shortcut": shortcut, "shortcut_scale": scale,
                                        "branch_scale": "1",
                                        "activation": activation, "init": "pytorch",
                                        "norm": "none", "device": device, "dtype": dtype}
                                rows += _cell_rows(cell, nonfinite, zero, value, book)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return frame.sort_values(["device", "dtype", "activation", "init", "norm", "width",
                              "depth", "shortcut", "shortcut_scale", "seed", "layer"],
                             ignore_index=True)


def _cell_rows(cell, nonfinite, zero, value, book):
    key = (cell["depth"], cell["shortcut"], cell["seed"])
    is_book = book and all(cell[k] == v for k, v in BOOK_CELL.items()) and \
        cell["shortcut_scale"] in (0.0, 1.0)
    rows = []
    for layer in range(cell["depth"]):
        if key in zero:
            g, loss, out, finite = 0.0, 0.0, 0.0, True
        elif key in nonfinite:
            g = math.inf if layer == 0 else math.nan
            loss, out, finite = math.inf, math.inf, False
        elif is_book:
            g, loss, out, finite = BOOK_GRADIENTS[cell["shortcut"]][layer], 0.1, 0.3, True
        else:
            g, loss, out, finite = value(cell, layer), 0.1, 0.3, True
        rows.append({**cell, "layer": layer, "param": f"layers.{layer}.0.weight", "tied": "",
                     "ndim": 2,
                     "numel": cell["width"] * (cell["width"] if layer < cell["depth"] - 1 else 1),
                     "grad_abs_mean": g, "grad_l2": g * 2, "grad_zero_share": float(g == 0),
                     "bias_grad_abs_mean": g,
                     "output_rms": 1.0, "loss": loss, "output": out,
                     "token_cosine": math.nan, "finite": finite})
    return rows


PROVENANCE = {
    "versions": {"python": "3.11.7", "torch": "2.13.0", "snakemake": "9.27.1"},
    "report_host": {"host": "h", "os": "Linux", "cpu": "CPU", "python_executable": "python"},
    "machines": [{"host": "h", "os": "Linux", "cpu": "CPU", "gpu": None, "python": "3.11.7",
                  "torch": "2.13.0", "torch_threads": 1, "devices": ["cpu"], "jobs": 1,
                  "cells": 8}],
    "engines": [{"family": "mlp", "engine": "batched", "jobs": 1, "cells": 8}],
    "gpus": [], "missing_machine_files": [],
    "git": {"commit": "0123456789abcdef", "dirty": True, "untracked": 2, "note": None,
            "subject": "a commit"},
    "config": {"depths": [1, 5], "devices": ["auto"]}, "sweep_devices": ["cpu"],
    "config_hash": "ab" * 32, "started": "2026-01-01T00:00:00+00:00", "measure_seconds": 1.5,
    "built": "2026-01-01T00:01:00+00:00",
    "jobs": [{"rule": "measure", "job": "cells/x", "s": 2.5, "max_rss_mb": 200.0,
              "cpu_time": 2.0, "mean_load": 90.0, "finished": "2026-01-01T00:00:03+00:00"}],
    "stale_benchmarks": 0, "job_seconds": 2.5, "max_rss_mb": 200.0,
}

TINY_SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="72pt" '
            b'height="36pt" viewBox="0 0 72 36"><rect width="72" height="36"/></svg>')


def families_of(gradients):
    """results/families.json of hand-made records: the MLP's numbers, as rule
    families computes them from the partial results."""
    frames = report.frames_of(gradients)
    return json.loads(json.dumps({"band": 2.0,
                                  "families": [families.family_numbers(frames, "mlp")]}))


FAMILY_FIGURES = {"mlp": {}}


def page_html(tables, figures, provenance, laws=None, gradients=None):
    """The page from the MLP's tables and figures, and every family's numbers
    (those of `gradients`, else a small default sweep's)."""
    numbers = families_of(make_gradients() if gradients is None else gradients)
    return page.render(provenance, numbers, FAMILY_FIGURES, laws,
                       {"tables": tables, "figures": figures})


def render(gradients, config=None, svg=TINY_SVG):
    # as the report job reads it, with the issue-11 contract's additions (states, ...)
    data = json.loads(json.dumps(contract_tables(gradients)))
    variants = data["sweep"]["variants"]
    numbers = {"arms": [], "variants": [{"variant": v, "label": str(v), "panels": []}
                                        for v in variants]}
    figures = {"headline": svg, "attenuation": svg, "heatmap": svg,
               "profile": (svg, "results/figures/profile.svg"), "profiles": numbers}
    prov = dict(PROVENANCE, config=config or PROVENANCE["config"])
    return page_html(data, figures, prov, gradients=gradients)


def text_of(page):
    """The page's text, tags dropped and entities decoded, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def assert_self_contained(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|ftp:)""", page, re.I)
    assert "@import" not in page and "url(" not in page
    # inline script only (the variant picker, sortable tables): none with a src
    assert not re.search(r"<script[^>]*\ssrc", page, re.I) and "<link" not in page.lower()
    assert "@font-face" not in page


# ---------------------------------------------------------------- numbers

def test_headline_ratio_is_paired_by_seed_with_a_t_interval_in_log_space():
    seeds = list(range(100, 110))
    rng = np.random.default_rng(0)
    without = dict(zip(seeds, 10.0 ** rng.normal(-20, 2, len(seeds))))
    ratio = dict(zip(seeds, 10.0 ** rng.normal(15, 1, len(seeds))))

    def value(cell, layer):
        base = without[cell["seed"]]
        return base * ratio[cell["seed"]] if cell["shortcut"] else base

    g = make_gradients(depths=(3, 8), seeds=seeds, value=value, book=False)
    row = report.headline_table(g)["rows"][0]
    logs = np.log10([ratio[s] for s in seeds])
    half = stats.t.ppf(0.975, len(seeds) - 1) * logs.std(ddof=1) / np.sqrt(len(seeds))
    assert row["depth"] == 8 and row["n"] == 10 and row["pairs"] == 10
    assert row["ratio"] == pytest.approx(10 ** logs.mean(), rel=1e-9)
    assert row["ci_low"] == pytest.approx(10 ** (logs.mean() - half), rel=1e-9)
    assert row["ci_high"] == pytest.approx(10 ** (logs.mean() + half), rel=1e-9)
    assert row["without_gmean"] == pytest.approx(
        10 ** np.mean(np.log10([without[s] for s in seeds])), rel=1e-9)


def test_headline_counts_the_seeds_it_cannot_use():
    g = make_gradients(depths=(4,), seeds=(1, 2, 3, 4), nonfinite={(4, False, 2)},
                       zero={(4, True, 3)}, book=False)
    row = report.headline_table(g)["rows"][0]
    assert (row["pairs"], row["n"], row["excluded"]) == (4, 2, 2)
    assert row["excluded_seeds"] == "2\u20133"
    assert row["with_zero"] == 1 and row["with_silent"] == 1 and row["without_nonfinite"] == 1


def test_headline_per_width_with_the_books_width_first():
    g = make_gradients(depths=(2, 6), widths=(32, 3), book=False)
    rows = report.headline_table(g)["rows"]
    assert [r["variant"]["width"] for r in rows] == [3, 32]


@pytest.mark.parametrize("seeds", [(123,), (5,)])
def test_one_seed_gives_a_ratio_without_an_interval(seeds):
    row = report.headline_table(make_gradients(depths=(5,), seeds=seeds))["rows"][0]
    assert row["n"] == 1 and math.isfinite(row["ratio"])
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])


def test_one_shortcut_flag_gives_no_ratio():
    row = report.headline_table(make_gradients(shortcuts=(True,)))["rows"][0]
    assert row["flags"] == [True] and math.isnan(row["ratio"]) and row["n"] == 0


def test_book_case_passes_within_rtol_and_fails_beyond():
    book = report.book_table(make_gradients())
    assert book["found"] and book["all_pass"] and book["passed"] == book["compared"] == 10

    def nudged(factor):
        g = make_gradients()
        mask = (g["seed"] == 123) & (g["depth"] == 5) & g["shortcut"] & (g["layer"] == 0)
        g.loc[mask, "grad_abs_mean"] *= factor
        return report.book_table(g)

    # the 7th significant digit (a newer torch) passes; the 5th does not
    assert nudged(1 + 3e-7)["all_pass"]
    off = nudged(1 + 2e-5)
    assert not off["all_pass"] and off["passed"] == 9
    assert [r["pass"] for r in off["rows"] if not r["pass"]] == [False]


def test_book_case_absent_says_what_is_missing():
    book = report.book_table(make_gradients(seeds=(1, 2)))
    assert not book["found"] and book["missing"] == ["seed 123"]
    book = report.book_table(make_gradients(depths=(4, 6), devices=("cuda",)))
    assert book["missing"] == ["depth 5", "device cpu"]


def test_book_case_is_the_plain_shortcut_only():
    g = make_gradients(scales=(0.5, 1.0))
    book = report.book_table(g)
    assert book["all_pass"] and book["compared"] == 10


def test_attenuation_is_first_over_last_layer_per_seed():
    g = make_gradients(depths=(1, 4), seeds=(1, 2, 3), book=False)
    rows = {(r["depth"], r["shortcut"]): r for r in report.attenuation_table(g)}
    assert rows[(1, False)]["ratio"] == pytest.approx(1.0)
    assert rows[(4, False)]["ratio"] == pytest.approx(1e-3)  # 0.1 per layer, 3 layers
    assert rows[(4, True)]["ratio"] == pytest.approx(1.0)
    assert rows[(4, False)]["ci_low"] == pytest.approx(1e-3)  # no spread: a zero-width interval


def test_special_cells_are_listed_with_seed_ranges():
    g = make_gradients(depths=(3,), seeds=(1, 2, 3, 5),
                       nonfinite={(3, False, 1), (3, False, 2), (3, False, 5)},
                       zero={(3, True, 3)}, book=False)
    nonfinite, zero = report.special_cells(g)
    assert [(r["depth"], r["shortcut"], r["n"], r["of"], r["seeds"]) for r in nonfinite] == [
        (3, False, 3, 4, "1\u20132, 5")]
    assert [(r["shortcut"], r["seeds"], r["output_zero"]) for r in zero] == [(True, "3", True)]


def test_devices_are_compared_per_cell():
    g = make_gradients(depths=(2,), devices=("cpu", "cuda"), book=False)
    mask = (g["device"] == "cuda") & (g["seed"] == 123) & (g["layer"] == 1) & g["shortcut"]
    g.loc[mask, "grad_abs_mean"] *= 1.001
    dev = report.device_table(g)
    assert dev["compared"] and dev["reference"] == "cpu"
    assert dev["worst"][0]["seed"] == 123 and dev["worst"][0]["rel"] == pytest.approx(
        0.001 / 1.001)
    assert dev["groups"][0]["cells"] == 4 and dev["groups"][0]["max"] == pytest.approx(
        0.001 / 1.001)
    assert not report.device_table(make_gradients())["compared"]


def test_tables_are_json_and_fill_missing_axes():
    g = make_gradients(nonfinite={(5, False, 122)})
    old_style = g.drop(columns=["shortcut_scale", "init", "norm"])
    assert json.dumps(report.tables(old_style), sort_keys=True, allow_nan=True) == \
        json.dumps(report.tables(g), sort_keys=True, allow_nan=True)


# ---------------------------------------------------------------- the page

def test_report_shows_the_book_reproduced():
    page = render(make_gradients(depths=(1, 5, 12), seeds=(122, 123, 124)))
    text = text_of(page)
    assert "0.2216979" in text and "0.22169792652130127" in text
    assert "reproduced: 10 of 10 layers" in text and text.count("✓ pass") == 10
    assert "1 Headline" in text and "depth 12" in text
    assert "95% CI" in text and "Only one device ran" in text
    assert "None: in all 18 cells" in text
    assert "mlp: batched (1 job, 8 cells)" in text  # how the cells were measured
    assert_self_contained(page)


def test_report_without_the_books_case_says_so():
    text = text_of(render(make_gradients(depths=(2, 8), seeds=(1, 2, 3))))
    assert "does not contain the book’s case" in text
    assert "missing: depth 5; seed 123" in text
    assert "0.22169792652130127" in text  # the book's numbers, for reference
    assert "✓ pass" not in text and "reproduced:" not in text


def test_report_lists_non_finite_and_zero_cells():
    g = make_gradients(depths=(5, 12), seeds=(122, 123, 124),
                       nonfinite={(12, False, s) for s in (122, 123, 124)} | {(12, True, 124)},
                       zero={(12, True, 122)})
    page = render(g)
    text = text_of(page)
    assert "4 of 12 cells overflowed" in text
    assert re.search(r"width 3 12 without 3 / 3 122\u2013124", text)
    assert re.search(r"width 3 12 with 1 / 3 124", text)
    assert ("In 1 cell every layer’s gradient is exactly 0. "
            "In it the network’s output is exactly 0") in text
    # every seed without shortcut at depth 12 overflowed, and the headline says so
    assert "Without a shortcut, the network overflows (non-finite) at depth 12" in text
    assert "reproduced: 10 of 10" in text
    assert_self_contained(page)


def test_report_with_all_cells_of_a_group_non_finite():
    g = make_gradients(depths=(3,), seeds=(1, 2),
                       nonfinite={(3, f, s) for f in (False, True) for s in (1, 2)}, book=False)
    text = text_of(render(g))
    assert "4 of 4 cells overflowed" in text and "No arm stays healthy at depth 3" in text


def test_report_with_one_seed_one_depth_one_flag():
    one_seed = text_of(render(make_gradients(depths=(5,), seeds=(123,))))
    assert "its one seed healthy" in one_seed and "reproduced: 10 of 10" in one_seed
    one_flag = text_of(render(make_gradients(shortcuts=(True,))))
    assert "so there is no with/without ratio" in one_flag
    assert "the sweep has no cell without shortcut" in one_flag
    assert "reproduced: 5 of 5" in one_flag
    without_only = text_of(render(make_gradients(shortcuts=(False,), depths=(5,))))
    assert "without shortcut only" in without_only


def test_report_with_several_variants_devices_and_scales():
    g = make_gradients(depths=(2, 5), widths=(3, 32), devices=("cpu", "cuda"),
                       scales=(0.5, 1.0))
    text = text_of(render(g))
    assert "width 3 · cpu" in text and "width 32 · cuda" in text
    assert "cpu vs cuda" in text
    assert "With a shortcut (λ=0.5), the network" in text
    assert "λ=0.5" in text


def test_strings_from_the_config_are_escaped():
    g = make_gradients()
    g["activation"] = "<script>alert(1)</script>"
    page = render(g, config={"note": "<b>&'\"", "devices": ["auto"]})
    assert "<script>alert" not in page and "<b>&" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_figures_are_inline_with_their_size():
    page = render(make_gradients())
    images = re.findall(r"<img [^>]*>", page)
    # the MLP's headline, one profile, attenuation and heat map (it has no
    # generic family figures: its own sections show what they would)
    assert len(images) == 4
    for tag in images:
        assert 'src="data:image/svg+xml;base64,' in tag
        assert 'width="96" height="48"' in tag and 'alt="' in tag


def test_the_training_caption_covers_a_profile_missing_altogether():
    finding = {"key": "training", "family": "mlp", "title": "Learning", "claim": "c",
               "sources": ["s"], "sweep": None, "measured": "m", "verdict": "partly",
               "outcome": "neutral", "detail": "", "table": None, "missing": None}
    text = text_of(page.render(PROVENANCE, families_of(make_gradients()), FAMILY_FIGURES,
                               [finding], training=TINY_SVG))
    assert "A curve that ends is a gradient of exactly 0" not in text
    assert ("A log axis has no 0: where every seed\u2019s gradient is exactly 0 (or not finite) "
            "a profile has no point, so a profile that stops short of its panel\u2019s edge, or "
            "is missing from the panel altogether, is 0 or not finite there.") in text


def test_number_formats():
    assert formats.fmt_num(math.nan) == "\u2013" and formats.fmt_num(math.inf) == "\u221e"
    assert formats.fmt_num(0.000123456) == "1.23e-4" and formats.fmt_num(12.345) == "12.3"
    assert formats.fmt_num(1560) == "1,560" and formats.fmt_num(0.0) == "0"
    assert str(formats.fmt_times(3.7e48)) == "3.7&thinsp;&times;&thinsp;10<sup>48</sup>"
    assert str(formats.fmt_times(2.9e-40)) == "2.9&thinsp;&times;&thinsp;10<sup>\u221240</sup>"
    assert describe_seeds([5, 1, 2, 3, 9]) == "1\u20133, 5, 9"


@pytest.mark.parametrize("x, digits, text", [
    (3296.59, 3, "3.30e3"), (1002.45, 3, "1.00e3"), (-3296.59, 3, "-3.30e3"),
    (9999.9, 3, "1.00e4"), (999.7, 3, "1.00e3"), (999.4, 3, "999"), (1.46e7, 3, "1.46e7"),
    (1.77e5, 3, "1.77e5"), (0.000999, 3, "9.99e-4"), (123.4, 2, "1.2e2"), (12.34, 2, "12")])
def test_numbers_keep_their_significant_digits_in_one_notation(x, digits, text):
    # plain only where 3 (digits) significant digits fit before the point,
    # e-notation as '1.46e7' (never '3.3e+03', nor '1e+03' for 1002.45)
    assert formats.fmt_num(x, digits) == text


@pytest.mark.parametrize("x, text", [(999.7, "1.0&thinsp;&times;&thinsp;10<sup>3</sup>"),
                                     (999.4, "999"), (0.0123, "0.0123")])
def test_ratios_switch_to_powers_of_ten_where_rounding_reaches_1e3(x, text):
    assert str(formats.fmt_times(x)) == text


# ---------------------------------------------------------------- provenance

def test_provenance_reads_logs_of_this_sweep_only(tmp_path):
    chunk = "cells/device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~1-2"
    machine = tmp_path / "logs" / "measure" / f"{chunk}.machine.json"
    machine.parent.mkdir(parents=True)
    machine.write_text(json.dumps({"host": "h1", "os": "Linux", "cpu": "Some CPU",
                                   "python": "3.11.7", "torch": "2.13.0+cpu", "device": "cpu",
                                   "torch_threads": 1, "cells": 8, "started": 1.7e9,
                                   "seconds": 2.5}))
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    bench = tmp_path / "logs" / "benchmark"
    for name, s in [(f"measure/{chunk}", 3.5), ("measure/cells/old/seeds~9", 9.0),
                    ("figures", 1.25), ("report", 0.5), ("families", 0.75),
                    ("train/pack~0123456789ab", 2.0), ("train/pack~ba9876543210", 4.0),
                    ("figures_profile", 1.0)]:
        path = bench / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{s}\t0:00:03\t150.5\t300\t1\t1\t0\t0\t50\t2.25\n")
    facts = provenance.gather({"depths": [1]}, ["cpu"], [chunk, "cells/missing/seeds~3"],
                               str(tmp_path / "logs"), str(tmp_path),
                               training_jobs=["pack~0123456789ab"],
                               rules=["measure", "train", "figures", "families", "report"])
    # in the workflow's order of its rules
    assert [(j["rule"], j["s"]) for j in facts["jobs"]] == [
        ("measure", 3.5), ("train", 2.0), ("figures", 1.25), ("families", 0.75)]
    # another config's chunk and training job, and a rule this workflow has not
    assert facts["stale_benchmarks"] == 3
    assert facts["missing_machine_files"] == ["cells/missing/seeds~3"]
    assert facts["machines"][0]["cpu"] == "Some CPU" and facts["machines"][0]["cells"] == 8
    # a machine file without the chunk's params or engine: the top-level family, exact
    assert facts["engines"] == [{"family": "mlp", "engine": "exact", "jobs": 1, "cells": 8}]
    assert facts["started"] == "2023-11-14T22:13:20+00:00"
    assert facts["git"]["commit"] is None and facts["git"]["note"] == "not a git checkout"
    assert facts["versions"]["torch"] and facts["versions"]["snakemake"]
    assert facts["config_hash"] == provenance.config_hash({"depths": [1]})
    assert facts["config_hash"] != provenance.config_hash({"depths": [2]})
    json.dumps(facts)


def test_provenance_of_this_checkout():
    state = provenance.git_state(page.TEMPLATES.parents[1])
    assert state["note"] in (None, "no commit yet")
    assert state["dirty"] in (True, False)


def test_analysis_modules_never_import_torch():
    code = ("import sys; import shortcutbench.analysis.mlp.tables, "
            "shortcutbench.analysis.provenance, "
            "shortcutbench.analysis.style; shortcutbench.analysis.style.setup(); "
            "shortcutbench.analysis.provenance.package_versions(); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------- what the sweep shows

def test_report_shows_each_finding_with_its_verdict_and_escapes_it():
    from partials_builder import build_partials

    from shortcutbench.analysis.laws import check_laws

    gradients = make_gradients(depths=(1, 5, 12), seeds=(122, 123, 124))
    partials = {"main": build_partials(gradients.to_dict("records"))}
    laws = json.loads(json.dumps([f.to_json() for f in check_laws(partials)]))  # laws.json
    laws[0]["claim"] = "<script>alert(1)</script> claim"
    data = json.loads(json.dumps(contract_tables(gradients)))
    numbers = {"arms": [], "variants": []}
    figures = {"headline": TINY_SVG, "attenuation": TINY_SVG, "heatmap": TINY_SVG,
               "profile": (TINY_SVG, "results/figures/profile.svg"), "profiles": numbers}
    html = page_html(data, figures, dict(PROVENANCE), laws, gradients)
    text = text_of(html)
    assert "What the sweep shows" in text
    for finding in laws:
        assert finding["title"] in text and finding["verdict"] in text
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert "To measure it, add a study with" in text  # the main sweep alone lacks the studies
    assert_self_contained(html)


def test_report_without_findings_says_so():
    page = render(make_gradients(depths=(5,), seeds=(123,)))
    assert "Not computed for this run" in text_of(page)
