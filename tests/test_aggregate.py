"""Collecting chunks (with corruption checks) and summarising over seeds."""

import csv
import math

import numpy as np
import pandas as pd
import pytest

from shortcutbench.analysis.aggregate import summary_table, t_interval
from shortcutbench.analysis.merge import CorruptChunk, merge_chunks, read_chunk
from shortcutbench.core.records import COLUMNS, Cell
from shortcutbench.core.sweep import Chunk
from shortcutbench.measuring.measure import measure_cells

CHUNK = Chunk("", "cpu", "float32", "gelu_tanh", 3, (4, 2), (3, 1), (False, True), (1.0,),
              ("pytorch",), ("none",))


@pytest.fixture
def chunk_file(tmp_path):
    """A chunk as CSV (the measuring job writes Parquet now; the CSV merge
    and its checks still read CSV tables)."""
    path = tmp_path / "chunk.csv"
    records = measure_cells([Cell(**c) for c in CHUNK.cells()], progress=None)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    return path


def lines(path):
    return path.read_text().splitlines(keepends=True)


def test_merge_sorts_and_keeps_the_measured_text(chunk_file, tmp_path):
    out = tmp_path / "gradients.csv"
    n = merge_chunks([chunk_file], [CHUNK.params()], out)
    assert n == 2 * 2 * (3 + 1)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    keys = [(int(r["depth"]), r["shortcut"] == "True", float(r["shortcut_scale"]),
             int(r["seed"]), int(r["layer"])) for r in rows]
    assert keys == sorted(keys)
    assert set(lines(out)[1:]) == set(lines(chunk_file)[1:])


def corrupt(path, how):
    text = lines(path)
    if how == "truncated mid-line":
        path.write_text("".join(text)[:-25])
    elif how == "last line missing":
        path.write_text("".join(text[:-1]))
    elif how == "value edited":
        path.write_text("".join(text[:3] + [text[3].replace(",True\n", ",maybe\n")] + text[4:]))
    elif how == "number edited":
        fields = text[2].split(",")
        fields[COLUMNS.index("grad_abs_mean")] = "0.1.2"
        path.write_text("".join(text[:2] + [",".join(fields)] + text[3:]))
    elif how == "header changed":
        path.write_text("".join([text[0].replace("grad_l2", "grad_norm")] + text[1:]))
    elif how == "a cell from elsewhere":
        path.write_text("".join(text + [text[1].replace(",4,", ",5,", 1)]))
        assert ",5," in path.read_text()
    elif how == "empty":
        path.write_text("")
    elif how == "binary junk":
        path.write_bytes(b"\xff\xfe\x00garbage")


@pytest.mark.parametrize("how", ["truncated mid-line", "last line missing", "value edited",
                                 "number edited", "header changed", "a cell from elsewhere",
                                 "empty", "binary junk"])
def test_a_damaged_chunk_is_refused_by_name(chunk_file, tmp_path, how):
    corrupt(chunk_file, how)
    with pytest.raises(CorruptChunk) as error:
        merge_chunks([chunk_file], [CHUNK.params()], tmp_path / "gradients.csv")
    assert str(chunk_file) in str(error.value)
    assert "run snakemake again" in str(error.value)
    assert not (tmp_path / "gradients.csv").exists()


def test_a_chunk_for_other_params_is_refused(chunk_file):
    with pytest.raises(CorruptChunk, match=r"holds 8 cells, expected 12 \(4 missing"):
        read_chunk(chunk_file, {**CHUNK.params(), "seeds": [2, 4, 6]})


def frame(values, seeds=None):
    seeds = seeds or list(range(len(values)))
    return pd.DataFrame({"depth": 1, "width": 3, "seed": seeds, "shortcut": True,
                         "shortcut_scale": 1.0, "activation": "gelu_tanh", "init": "pytorch",
                         "norm": "none", "device": "cpu", "dtype": "float32",
                         "layer": 0, "grad_abs_mean": values})


def test_t_interval_matches_the_textbook():
    n, mean, std, low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    assert (n, mean) == (4, 2.5)
    # t(0.975, 3) = 3.182446...
    assert high - mean == pytest.approx(3.182446305 * std / 2, rel=1e-8)


def test_summary_counts_non_finite_cells_but_averages_the_finite():
    row = summary_table(frame([1.0, 3.0, math.inf, math.nan])).iloc[0]
    assert (row["n"], row["n_finite"], row["mean"]) == (4, 2, 2.0)
    assert row["ci95_low"] < 2.0 < row["ci95_high"]
    assert row["log10_mean"] == pytest.approx(np.log10(3) / 2)


def test_an_all_nan_group_and_a_single_seed_do_not_break_the_summary():
    summary = summary_table(frame([math.nan, math.nan]))
    assert summary.iloc[0]["n_finite"] == 0 and math.isnan(summary.iloc[0]["mean"])
    single = summary_table(frame([0.5])).iloc[0]
    assert single["mean"] == 0.5 and math.isnan(single["ci95_low"])


def test_zero_gradients_give_minus_inf_logs_not_a_crash():
    row = summary_table(frame([0.0, 1.0, 10.0])).iloc[0]
    assert row["n_finite"] == 3 and row["log10_mean"] == pytest.approx(0.5)
