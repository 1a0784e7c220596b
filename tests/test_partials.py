"""Partial results (core/partials.py): merged over any split of the seeds
into chunks, they equal the whole table's statistics; merge order does not
matter; a partial.json that does not match its chunk is refused by name."""

import json
import math
import random

import numpy as np
import pandas as pd
import pytest
from mlp_chunks import mlp_chunk
from test_report import make_gradients

from shortcutbench.analysis.aggregate import summary_table
from shortcutbench.analysis.partials_frame import (
    merge_sweep,
    partials_of_records,
    read_partials,
    summary_frame,
    to_frames,
)
from shortcutbench.core import partials
from shortcutbench.core.files import sha256_of
from shortcutbench.core.records import Cell
from shortcutbench.measuring.measure import run_chunk
from shortcutbench.measuring.mlp.exact import measure_cells

RTOL = 1e-12


def records(seeds=tuple(range(100, 131)), **kwargs):
    """Made-up records with non-finite and all-zero cells, a group where
    every seed is non-finite (depth 7 without) and spread over seeds."""
    def value(cell, layer):
        rng = random.Random(hash((cell["seed"], cell["depth"], cell["shortcut"], layer)))
        base = 10.0 ** rng.uniform(-12, 1)
        return base * (1e3 if cell["shortcut"] else 1.0)

    pick = [seeds[i % len(seeds)] for i in range(3)]
    nonfinite = {(3, False, pick[1]), (5, True, seeds[-1])} | {(7, False, s) for s in seeds}
    zero = {(5, False, pick[2]), (3, True, pick[0])}
    g = make_gradients(depths=(1, 3, 5, 7), seeds=seeds, value=value, nonfinite=nonfinite,
                       zero=zero, **kwargs)
    g["grad_stream_cos"] = np.where(g["layer"] % 3 == 0, np.nan, 0.01 * g["layer"])
    g["output_rms"] = 10.0 ** (g["layer"] % 5 - 2.0)
    return g


def close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.allclose(a, b, rtol=RTOL, atol=0, equal_nan=True)


def assert_frames_equal(a, b):
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        x, y = a[column].to_numpy(), b[column].to_numpy()
        if x.dtype.kind == "f":
            assert close(x, y), column
        else:
            assert list(x) == list(y), column


def whole_log10_moments(g, statistic):
    """log10 moments of the usable values per group and layer, on the whole table."""
    out = {}
    key = partials.LAYER_KEY
    for k, group in g.groupby(key, sort=True):
        v = group[statistic].to_numpy(dtype=float)
        ok = np.isfinite(v) & (v > 0)
        out[k] = partials.moments(np.log10(v[ok]))
    return out


@pytest.mark.parametrize("chunks", [1, 2, 3, 7, 31])
def test_merged_chunks_equal_the_whole_table(chunks):
    g = records()
    merged = partials_of_records(g, chunks=chunks)
    frames = to_frames(merged)
    whole = summary_table(g)
    summary = summary_frame(frames["layers"])
    assert_frames_equal(whole, summary[whole.columns])
    for statistic in partials.STATISTICS:
        expected = whole_log10_moments(g, statistic)
        layers = frames["layers"]
        for row in layers.to_dict("records"):
            n, mean, m2 = expected[tuple(row[c] for c in partials.LAYER_KEY)]
            assert row[f"{statistic}_n_pos"] == n
            assert close(row[f"{statistic}_log10_mean"], mean), statistic
            assert close(row[f"{statistic}_log10_m2"], m2) or abs(
                row[f"{statistic}_log10_m2"] - m2) < 1e-9 * max(1.0, n), statistic


def test_split_and_whole_give_the_same_tables():
    from shortcutbench.analysis.mlp.tables import tables

    g = records()
    one = json.dumps(tables(to_frames(partials_of_records(g, chunks=1))), sort_keys=True)
    many = json.loads(json.dumps(tables(to_frames(partials_of_records(g, chunks=5)))))
    whole = json.loads(one)

    def walk(a, b, path=""):
        if isinstance(a, dict):
            assert a.keys() == b.keys(), path
            for k in a:
                walk(a[k], b[k], f"{path}.{k}")
        elif isinstance(a, list):
            assert len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")
        elif isinstance(a, float):
            assert close(a, b) or abs(a - b) < 1e-12, (path, a, b)
        else:
            assert a == b, path

    walk(whole, many)


def test_cells_states_and_special_cells_are_counted():
    g = records()
    frames = to_frames(partials_of_records(g, chunks=4))
    cells = frames["cells"]
    assert cells["n_cells"].sum() == g.drop_duplicates(
        ["depth", "shortcut", "seed", "width"]).shape[0]
    states = [c for c in cells.columns if c.startswith("state_")]
    assert (cells[states].sum(axis=1) == cells["n_cells"]).all()
    deep = cells[(cells["depth"] == 7) & ~cells["shortcut"]].iloc[0]
    assert deep["state_non_finite"] == deep["n_cells"] == 31
    assert deep["log10_first_grad_n"] == 0 and math.isnan(deep["log10_first_grad_mean"])
    special = frames["special"].set_index(["depth", "shortcut", "kind"])
    assert special.loc[(7, False, "non_finite"), "n"] == 31
    assert special.loc[(7, False, "non_finite"), "seeds"] == list(range(100, 120))
    assert special.loc[(5, False, "zero"), "seeds"] == [102]
    assert special.loc[(3, True, "zero"), "output_zero"]


def test_a_single_seed_and_an_all_zero_group():
    g = records(seeds=(5,))
    frames = to_frames(partials_of_records(g))
    whole = summary_table(g)
    assert_frames_equal(whole, summary_frame(frames["layers"])[whole.columns])
    zero = make_gradients(depths=(2,), seeds=(1, 2, 3), book=False,
                          zero={(2, f, s) for f in (False, True) for s in (1, 2, 3)})
    frames = to_frames(partials_of_records(zero, chunks=2))
    layers = frames["layers"]
    assert (layers["grad_abs_mean_n_zero"] == 3).all()
    assert (layers["grad_abs_mean_n_pos"] == 0).all()
    assert frames["pairs"]["n_usable"].tolist() == [0]
    assert frames["pairs"]["excluded_seeds"].tolist() == [[1, 2, 3]]
    assert_frames_equal(summary_table(zero), summary_frame(layers)[summary_table(zero).columns])


def test_merge_order_does_not_matter():
    g = records()
    seeds = sorted(g["seed"].unique())
    parts = [partials.chunk_partials(g[g["seed"].isin(seeds[i::4])]) for i in range(4)]
    parts = [{"n_cells": 1, "band": 2.0, **p} for p in parts]
    a = partials.merge_partials(parts)
    b = partials.merge_partials(parts[::-1])
    c = partials.merge_partials([parts[2], parts[0], parts[3], parts[1]])
    for other in (b, c):
        for name in partials.TABLES:
            x, y = a[name], other[name]
            assert x["columns"] == y["columns"] and len(x["rows"]) == len(y["rows"])
            for r, s in zip(x["rows"], y["rows"]):
                for u, v in zip(r, s):
                    if isinstance(u, float):
                        assert close(u, v) or abs(u - v) < 1e-12
                    else:
                        assert u == v


def test_lines_keep_the_smallest_seeds_and_moments_combine():
    g = records(seeds=tuple(range(60)))
    lines = to_frames(partials_of_records(g, chunks=6))["lines"]
    per_group = lines.groupby(["depth", "shortcut"])["seed"].unique()
    assert all(sorted(s) == list(range(partials.LINES)) for s in per_group)
    values = np.random.default_rng(1).normal(size=101)
    left, right = partials.moments(values[:40]), partials.moments(values[40:])
    n, mean, m2 = partials.combine(left, right)
    assert n == 101 and close(mean, values.mean()) and close(m2 / 100, values.var(ddof=1))
    assert partials.combine((0, math.nan, math.nan), right) == right


CHUNK = mlp_chunk("", "cpu", "float32", "gelu_tanh", 3, (122, 123), (1, 5), (False, True), (1.0,),
              ("pytorch",), ("none",))


@pytest.fixture
def measured(tmp_path):
    records_path = tmp_path / "chunk.parquet"
    partial_path = tmp_path / "chunk.partial.json"
    run_chunk(CHUNK.params(), records_path, tmp_path / "machine.json", progress=None,
              partial_path=partial_path, band=2.0)
    return records_path, partial_path, tmp_path


def merge(measured, params=None, band=2.0):
    records_path, partial_path, tmp = measured
    return merge_sweep([partial_path], [records_path], [params or CHUNK.params()], band,
                       tmp / "partials.json", tmp / "summary.csv", tmp / "lines.csv")


def test_the_measuring_job_writes_partials_the_merge_reads(measured):
    records_path, partial_path, tmp = measured
    data = json.loads(partial_path.read_text())
    assert data["records_sha256"] == sha256_of(records_path)
    assert data["n_cells"] == 8 and data["chunk"] == CHUNK.params() and data["band"] == 2.0
    merge(measured)
    frames = read_partials(tmp / "partials.json")
    assert frames["cells"]["n_cells"].sum() == 8
    book = frames["book"]
    assert len(book) == 10 and set(book["shortcut"]) == {False, True}
    whole = summary_table(pd.read_parquet(records_path))
    summary = pd.read_csv(tmp / "summary.csv", dtype={"branch_scale": str})
    assert_frames_equal(whole, summary[whole.columns])
    lines = pd.read_csv(tmp / "lines.csv")
    assert len(lines) == len(pd.read_parquet(records_path))


def test_a_partial_whose_line_end_became_crlf_is_still_read(measured):
    """One line, ending in "\n" wherever it was written; a copy that turned
    it into "\r\n" (a checkout, an editor) holds the same content."""
    records_path, partial_path, tmp = measured
    raw = partial_path.read_bytes()
    assert raw.count(b"\n") == 1 and raw.endswith(b"\n") and b"\r" not in raw
    partial_path.write_bytes(raw[:-1] + b"\r\n")
    assert merge(measured)["n_cells"] == 8


@pytest.mark.parametrize("how", ["records edited", "records truncated", "other chunk",
                                 "other band", "partial truncated", "other version",
                                 "same value, other bytes"])
def test_a_partial_that_does_not_match_is_refused_by_name(measured, how):
    records_path, partial_path, tmp = measured
    params, band, named = None, 2.0, partial_path
    if how == "records edited":
        data = bytearray(records_path.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, in the middle of the file
        records_path.write_bytes(bytes(data))
        named = records_path
    elif how == "records truncated":
        records_path.write_bytes(records_path.read_bytes()[:-10])
        named = records_path
    elif how == "other chunk":
        params = {**CHUNK.params(), "seeds": [122, 123, 124]}
    elif how == "other band":
        band = 3.0
    elif how == "partial truncated":
        partial_path.write_text(partial_path.read_text()[:-100])
    elif how == "other version":
        data = json.loads(partial_path.read_text())
        partial_path.write_text(json.dumps({**data, "version": 0}))
    elif how == "same value, other bytes":  # every check on values passes
        text = partial_path.read_text()
        assert text.count('"band":2.0,') == 1
        partial_path.write_text(text.replace('"band":2.0,', '"band":2.00,'))
    with pytest.raises(partials.CorruptChunk) as error:
        merge(measured, params, band)
    assert str(named) in str(error.value)
    assert "delete it and run snakemake again" in str(error.value).replace("Delete", "delete")
    assert not (tmp / "partials.json").exists()


def test_partials_of_real_cells_equal_the_whole_table():
    chunk = mlp_chunk("", "cpu", "float32", "gelu_tanh", 3, tuple(range(6)), (1, 4, 16),
                  (False, True), (1.0,), ("pytorch",), ("none",))
    recs = measure_cells([Cell(**c) for c in chunk.cells()], progress=None)
    frame = pd.DataFrame(recs)
    whole = summary_table(frame)
    for split in (1, 2, 6):
        merged = partials_of_records(frame, chunks=split)
        assert_frames_equal(whole, summary_frame(to_frames(merged)["layers"])[whole.columns])


@pytest.mark.parametrize("chunks", [1, 4])
def test_the_mlps_blocks_derived_from_its_layers_equal_its_profile_counted(chunks):
    """The MLP's blocks rows are not stored: derived from the layers table,
    they equal the counts and log10 moments of every layer's weight."""
    from shortcutbench.core import cell_stats

    g = records()
    frame = to_frames(partials_of_records(g, chunks=chunks))["blocks"]
    assert set(frame["model"]) == {"mlp"}
    columns = {name: np.asarray(g[name]) for name in g.columns}
    order = np.lexsort((columns["layer"], partials._codes(columns, partials.CELL_COLUMNS)))
    columns = {name: v[order] for name, v in columns.items()}
    starts, depths = cell_stats.cell_bounds(columns["layer"])
    cells = {name: columns[name][starts] for name in partials.CELL_COLUMNS}
    direct = partials._blocks(cells, np.repeat(np.arange(len(starts)), depths),
                              columns["layer"], columns["grad_abs_mean"])
    direct = pd.DataFrame(direct["rows"], columns=direct["columns"])
    assert len(direct) == len(frame) and set(direct["n_finite"] < direct["n"]) == {False, True}
    if chunks == 1:  # the same arithmetic: the same bits
        pd.testing.assert_frame_equal(frame.reset_index(drop=True), direct, check_dtype=False)
    else:
        assert_frames_equal(frame.reset_index(drop=True), direct)
