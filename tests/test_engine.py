"""The batched engine (`engine: batched`, measuring/mlp/batched.py): the exact
engine's columns and cells, its numbers within the precision contract, and
a cell's bits that depend on its seed and config alone."""

import copy
import json
import math

import pytest
from conftest import REPO, SMALL_CONFIG
from mlp_chunks import mlp_chunk

from shortcutbench.analysis import provenance
from shortcutbench.core.cell_stats import cell_values
from shortcutbench.core.config import ConfigError, validate_config
from shortcutbench.core.records import Cell
from shortcutbench.core.store import read_records
from shortcutbench.core.sweep import cells_of, plan_chunks
from shortcutbench.measuring.measure import run_chunk
from shortcutbench.measuring.mlp.batched import BATCH, batchable, measure_cells_batched
from shortcutbench.measuring.mlp.exact import measure_cell, measure_cells

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")


def chunk(seeds, depths=(1, 2, 8), width=32, engine="batched"):
    return mlp_chunk("", "cpu", "float32", "gelu_tanh", width, tuple(seeds), tuple(depths),
                 (False, True), (1.0,), ("pytorch",), ("none",), ("1",), engine=engine)


def measured(params):
    return measure_cells_batched([Cell(**c) for c in cells_of(params)], progress=None)


def test_engine_defaults_to_exact_and_only_a_batched_chunk_names_it(tmp_path):
    sweep = validate_config(copy.deepcopy(SMALL_CONFIG), SCHEMA)
    assert sweep["engine"] == "exact"
    assert all("engine" not in c.params() for c in plan_chunks(sweep, str(tmp_path)))
    batched = validate_config({**copy.deepcopy(SMALL_CONFIG), "engine": "batched"}, SCHEMA)
    assert all(c.params()["engine"] == "batched" for c in plan_chunks(batched, str(tmp_path)))
    with pytest.raises(ConfigError, match="engine"):
        validate_config({**copy.deepcopy(SMALL_CONFIG), "engine": "fast"}, SCHEMA)


@pytest.mark.parametrize("width", [3, 32])
def test_batched_records_are_the_exact_ones_within_the_contract(width):
    params = chunk(range(5), depths=(1, 2, 8, 16), width=width).params()
    cells = [Cell(**c) for c in cells_of(params)]
    exact, batched = measure_cells(cells, progress=None), measured(params)
    assert len(batched) == len(exact)
    for e, b in zip(exact, batched):
        assert b.keys() == e.keys()
        for key, value in e.items():
            if isinstance(value, float) and not math.isnan(value):
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-300), key
            elif not isinstance(value, float):
                assert b[key] == value and type(b[key]) is type(value), key
    for i in range(len(cells)):
        depth = cells[i].depth
        rows = slice(sum(c.depth for c in cells[:i]), sum(c.depth for c in cells[:i]) + depth)
        assert cell_values(batched[rows])["state"] == cell_values(exact[rows])["state"]


def test_a_cells_bits_do_not_depend_on_its_chunk():
    """Seed 7 alone (padded), 7th of 40 seeds, and last of 32 others in a
    chunk of other depths too: the same bytes."""
    def of_seed_7(params):
        return [repr(r) for r in measured(params) if r["seed"] == 7 and r["depth"] == 8]

    alone = of_seed_7(chunk([7], depths=(8,)).params())
    assert alone == of_seed_7(chunk(range(40)).params())
    assert alone == of_seed_7(chunk([*range(100, 100 + BATCH - 1), 7], depths=(2, 8)).params())
    assert len(alone) == 2 * 8


def test_cells_too_big_to_stack_are_measured_the_exact_way():
    cell = Cell(2, 400, 3, True)
    assert not batchable(cell) and batchable(Cell(64, 32, 3, True))
    assert measure_cells_batched([cell], progress=None) == measure_cell(cell)


@pytest.mark.parametrize("engine", ["exact", "batched"])
def test_the_log_names_the_engine(tmp_path, engine):
    params = chunk([0, 1], depths=(3,), width=3, engine=engine).params()
    with open(tmp_path / "log", "w") as log:
        run_chunk(params, tmp_path / "records.parquet", tmp_path / "machine.json", log)
    assert f"engine: {engine} (" in (tmp_path / "log").read_text()
    # the report's provenance reads which path the chunk took
    facts = json.loads((tmp_path / "machine.json").read_text())
    assert facts["engine"] == engine
    assert len(read_records(tmp_path / "records.parquet")) == 2 * 2 * 3
    # ... and sums it per family and path, jobs and cells
    gpt_job = {"chunk": {"model": "gpt"}, "engine": "exact", "cells": 5}
    assert provenance.engines([facts, facts, gpt_job, {"missing": True}]) == [
        {"family": "gpt", "engine": "exact", "jobs": 1, "cells": 5},
        {"family": "mlp", "engine": engine, "jobs": 2, "cells": 2 * facts["cells"]}]
