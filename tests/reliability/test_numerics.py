"""Numerics: cells that overflow (deep networks with shortcuts, float32) are
recorded with finite=False and shown in the report; groups where every seed
overflowed (all NaN) break neither the aggregation nor the figures.

At width 3 in float32 with shortcuts, depth 205 overflows for seeds 1 and 4
but not 2 and 3 (a mixed group), and depth 250 overflows for every seed (an
all-NaN group); without shortcuts the gradients vanish but stay finite.
"""

import csv
import io
import math
import re
import xml.etree.ElementTree as ElementTree
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from .helpers import run, workflow_config

NUMERICS_CONFIG = workflow_config(depths=[2, 5, 205, 250], seeds=[1, 2, 3, 4], seeds_per_job=4)
MIXED, ALL_NAN = 205, 250
VALUES = ("grad_abs_mean", "grad_l2", "bias_grad_abs_mean", "output_rms", "loss", "output")


def read_csv(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture(scope="module")
def overflow_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("numerics")
    # The default target (tables, figures, report), and every record in one
    # table: results/gradients.csv is made only when asked for.
    result = run(workdir, NUMERICS_CONFIG, "all", "results/gradients.csv")
    return workdir, result


def cells_of(workdir):
    cells = defaultdict(list)
    for row in read_csv(workdir / "results" / "gradients.csv"):
        cells[(int(row["depth"]), row["shortcut"] == "True", int(row["seed"]))].append(row)
    return cells


@pytest.mark.slow
def test_overflowing_cells_are_recorded_as_not_finite(overflow_run, counts):
    workdir, _ = overflow_run
    cells = cells_of(workdir)
    nonfinite = set()
    for key, cell_rows in cells.items():
        flags = {row["finite"] for row in cell_rows}
        assert len(flags) == 1, f"cell {key} has mixed finite flags"
        if flags == {"False"}:
            values = [float(row[c]) for row in cell_rows for c in VALUES]
            assert not all(math.isfinite(v) for v in values), key
            nonfinite.add(key)
        else:  # the gradient itself, the loss and the output are finite
            assert all(math.isfinite(float(row[c])) for row in cell_rows
                       for c in ("grad_abs_mean", "bias_grad_abs_mean", "loss", "output")), key
    # Where the overflow is: only deep cells with a shortcut.
    assert {(d, s) for d, s, _ in nonfinite} == {(MIXED, True), (ALL_NAN, True)}
    assert {seed for d, _, seed in nonfinite if d == ALL_NAN} == {1, 2, 3, 4}
    assert 0 < len({seed for d, _, seed in nonfinite if d == MIXED}) < 4
    # Their gradients are written as nan/inf, not dropped or clipped.
    texts = {row["grad_abs_mean"] for key in nonfinite for row in cells[key]}
    assert texts & {"nan", "inf"}
    # The Parquet chunks the CSV is made from say the same.
    chunks = sorted((workdir / "results" / "cells").rglob("*.parquet"))  # chunks and packs
    assert chunks
    flagged = set()
    for chunk in chunks:
        table = pq.read_table(chunk, columns=["depth", "shortcut", "seed", "finite"]).to_pydict()
        flagged |= {(d, s, seed) for d, s, seed, finite in zip(
            table["depth"], table["shortcut"], table["seed"], table["finite"]) if not finite}
    assert flagged == nonfinite
    counts.add("numerics", cells=len(cells), nonfinite_cells_recorded=len(nonfinite))


@pytest.mark.slow
def test_a_row_marked_finite_holds_only_finite_numbers(overflow_run):
    # Once a gap: a float32 norm of gradients ~1e33 overflowed while the row
    # said finite=True.  Norms and RMS are now taken in float64, and `finite`
    # covers every number written.
    workdir, _ = overflow_run
    bad = sorted({key for key, cell_rows in cells_of(workdir).items() for row in cell_rows
                  if row["finite"] == "True"
                  and not all(math.isfinite(float(row[c])) for c in VALUES)})
    assert bad == [], f"finite=True cells holding inf/nan: {bad}"


@pytest.mark.slow
def test_the_summary_counts_them_and_survives_all_nan_groups(overflow_run, counts):
    workdir, _ = overflow_run
    summary = read_csv(workdir / "results" / "summary.csv")
    by_group = defaultdict(list)
    for row in summary:
        by_group[(int(row["depth"]), row["shortcut"] == "True")].append(row)
    for (depth, shortcut), rows in by_group.items():
        for row in rows:
            n, n_finite = int(row["n"]), int(row["n_finite"])
            assert n == 4
            if (depth, shortcut) == (ALL_NAN, True):
                assert n_finite == 0
                assert row["mean"] in ("", "nan"), row  # no number made up
            elif (depth, shortcut) == (MIXED, True):
                assert 0 < n_finite < n
                assert math.isfinite(float(row["mean"]))
            else:
                assert n_finite == n
    counts.add("numerics", all_nan_summary_rows=len(by_group[(ALL_NAN, True)]),
               partly_finite_summary_rows=len(by_group[(MIXED, True)]))


@pytest.mark.slow
def test_the_figures_are_drawn_and_the_report_lists_the_non_finite_cells(overflow_run, counts):
    workdir, _ = overflow_run
    figures = sorted((workdir / "results" / "figures").rglob("*.svg"))
    assert figures
    for svg in figures:
        ElementTree.parse(svg)  # whole, well-formed SVG
    assert all(p.stat().st_size > 1000 for p in (workdir / "results" / "figures").rglob("*.png"))

    html = (workdir / "report" / "index.html").read_text()
    section = re.search(r'<section id="nonfinite">(.*?)</section>', html, re.S)
    assert section, "the report has no non-finite section"
    text = section.group(1)
    rows = read_csv(workdir / "results" / "gradients.csv")
    cells = {(r["depth"], r["shortcut"], r["seed"]) for r in rows}
    bad = {(r["depth"], r["shortcut"], r["seed"]) for r in rows if r["finite"] == "False"}
    assert re.search(rf"\b{len(bad)} of {len(cells)} cells overflowed", text), text[:2000]
    for depth in (MIXED, ALL_NAN):
        n = len({c for c in bad if c[0] == str(depth)})
        assert re.search(rf'<td class="num">{depth}</td>.*?<td class="num">{n} / 4</td>', text,
                         re.S), f"depth {depth} ({n} of 4 cells) is not listed"
    counts.add("numerics", reports_listing_nonfinite_cells=1)
