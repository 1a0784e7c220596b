"""Cells into chunks: deterministic, visible in the paths, incremental."""

import re

import pytest
from mlp_chunks import mlp_chunk

from shortcutbench.core.records import COLUMNS, SORT_COLUMNS, branch_label, branch_value
from shortcutbench.core.sweep import (
    CHUNK_PATTERN,
    _choose_chunks,
    branch_labels,
    n_cells,
    parse_seeds_slug,
    plan_chunks,
    seeds_slug,
)

CONFIG = {"depths": [5, 1, 12], "widths": [3, 32], "seeds": list(range(10)),
          "shortcut": [True, False], "shortcut_scales": [1.0], "devices": ["cpu", "cuda:1"],
          "activations": ["gelu_tanh"], "inits": ["pytorch"], "norms": ["none"],
          "dtypes": ["float32"], "seeds_per_job": 100, "studies": {}}


@pytest.mark.parametrize("seeds, text", [([0], "0"), ([3, 1, 2], "1-3"),
                                         ([0, 1, 2, 3, 7, 9, 10], "0-3_7_9-10"),
                                         ([5, 7, 9], "5_7_9")])
def test_seed_names_round_trip(seeds, text):
    assert seeds_slug(seeds) == text
    assert parse_seeds_slug(text) == tuple(sorted(seeds))


def test_plan_covers_every_cell_once(tmp_path):
    chunks = plan_chunks(CONFIG, tmp_path)
    cells = [tuple(sorted(c.items())) for chunk in chunks for c in chunk.cells()]
    assert len(cells) == len(set(cells)) == n_cells(CONFIG) == 3 * 2 * 10 * 2 * 2
    assert len(chunks) == 4  # one per (device, width): seeds 0-9 fit one job


def test_chunk_names_are_visible_and_match_the_rule_pattern(tmp_path):
    names = sorted(chunk.name for chunk in plan_chunks(CONFIG, tmp_path))
    assert names[0] == "cells/device~cpu/dtype~float32/activation~gelu_tanh/width~3/seeds~0-9"
    assert "cells/device~cuda-1/dtype~float32/activation~gelu_tanh/width~32/seeds~0-9" in names
    assert all(re.fullmatch(CHUNK_PATTERN, name) for name in names)


def test_config_order_does_not_change_the_jobs(tmp_path):
    shuffled = {**CONFIG, "depths": [12, 5, 1], "shortcut": [False, True],
                "seeds": list(reversed(CONFIG["seeds"]))}
    assert ([c.params() for c in plan_chunks(shuffled, tmp_path)]
            == [c.params() for c in plan_chunks(CONFIG, tmp_path)])


def test_seeds_split_into_blocks_by_value():
    assert _choose_chunks(range(25), [], 10) == [tuple(range(10)), tuple(range(10, 20)),
                                                 tuple(range(20, 25))]
    assert _choose_chunks([3, 17, 18], [], 10) == [(3,), (17, 18)]


def test_adding_a_seed_keeps_the_finished_chunks():
    assert _choose_chunks(range(11), [tuple(range(10))], 100) == [tuple(range(10)), (10,)]


def test_dropping_a_seed_does_not_reuse_a_chunk_that_holds_it():
    assert _choose_chunks(range(5), [tuple(range(10))], 100) == [tuple(range(5))]


def test_overlapping_chunks_on_disk_are_resolved_deterministically():
    existing = [(0, 1, 2), (2, 3), (4,), (0, 1, 2, 3, 4, 5)]
    assert _choose_chunks(range(6), existing, 100) == [(0, 1, 2, 3, 4, 5)]
    assert _choose_chunks(range(5), existing, 100) == [(0, 1, 2), (3,), (4,)]


def test_plan_reuses_chunk_files_on_disk(tmp_path):
    chunk = plan_chunks(CONFIG, tmp_path)[0]
    path = tmp_path / f"{chunk.name}.parquet"
    path.parent.mkdir(parents=True)
    path.write_text("")
    grown = {**CONFIG, "seeds": list(range(12))}
    names = [c.name for c in plan_chunks(grown, tmp_path) if c.group_path == chunk.group_path]
    assert names == [chunk.name, chunk.name.replace("seeds~0-9", "seeds~10-11")]


def test_chunk_cells_follow_its_params():
    chunk = mlp_chunk("", "cpu", "float32", "relu", 3, (1, 2), (1, 5), (False, True), (0.5, 1.0),
                  ("pytorch",), ("none", "pre_layernorm"))
    cells = chunk.cells()
    # no shortcut once, with a shortcut once per lambda; times 2 norms, 2 depths, 2 seeds
    assert len(cells) == 3 * 2 * 2 * 2
    assert cells[0] == {"model": "mlp", "depth": 1, "width": 3, "seed": 1, "shortcut": False,
                        "shortcut_scale": 0.0, "branch_scale": "1", "activation": "relu",
                        "init": "pytorch", "norm": "none", "device": "cpu", "dtype": "float32"}
    assert {c["shortcut_scale"] for c in cells if c["shortcut"]} == {0.5, 1.0}


def test_studies_get_their_own_chunks_and_folders(tmp_path):
    config = {**CONFIG, "devices": ["cpu"], "studies": {
        "scale": {"shortcut": [True], "shortcut_scales": [0.0, 0.5], "widths": [32]}}}
    chunks = plan_chunks(config, tmp_path)
    study = [c for c in chunks if c.study == "scale"]
    assert [c.name for c in study] == [
        "studies/scale/cells/device~cpu/dtype~float32/activation~gelu_tanh/width~32/seeds~0-9"]
    assert study[0].study_prefix == "studies/scale/"
    assert len(study[0].cells()) == 3 * 10 * 2
    assert n_cells(config["studies"]["scale"] | {k: v for k, v in config.items()
                                                  if k not in config["studies"]["scale"]}) == 60
    assert all(re.fullmatch(CHUNK_PATTERN, c.name) for c in chunks)


def test_branch_scales_multiply_the_shortcut_cells_only(tmp_path):
    config = {**CONFIG, "devices": ["cpu"], "widths": [3], "shortcut_scales": [0.9, 1.0],
              "branch_scales": [1, 0.1, "1/sqrt(depth)", 0.7071067811865476]}
    chunks = plan_chunks(config, tmp_path)
    cells = [c for chunk in chunks for c in chunk.cells()]
    assert chunks[0].options["branch_scales"] == ("0.1", "0.7071067811865476", "1", "1/sqrt(depth)")
    # per depth and seed: 1 plain cell + 2 lambdas x 4 alphas
    assert len(cells) == n_cells(config) == 3 * 10 * (1 + 2 * 4)
    assert {c["branch_scale"] for c in cells if not c["shortcut"]} == {"1"}
    assert {c["branch_scale"] for c in cells if c["shortcut"]} == {
        "0.1", "0.7071067811865476", "1", "1/sqrt(depth)"}
    assert len({tuple(sorted(c.items())) for c in cells}) == len(cells)


def test_branch_labels_are_canonical():
    assert branch_labels([1.0, 1, 0.1, "1/sqrt(depth)", 2]) == ("0.1", "1", "2", "1/sqrt(depth)")
    assert branch_value("1/sqrt(depth)", 16) == 0.25 and branch_value("0.1", 16) == 0.1
    assert branch_label(0.7071067811865476) == "0.7071067811865476"


def test_columns_put_the_branch_scale_after_the_skip_scale():
    assert COLUMNS[:7] == ["model", "depth", "width", "seed", "shortcut", "shortcut_scale",
                           "branch_scale"]
    assert SORT_COLUMNS.index("branch_scale") == SORT_COLUMNS.index("shortcut_scale") + 1


def test_plan_ignores_csv_chunks_of_earlier_versions(tmp_path):
    """Chunks are Parquet now: a CSV chunk left by an earlier version is
    not reused (a Parquet one would be: test_plan_reuses_chunk_files_on_disk)."""
    chunk = plan_chunks(CONFIG, tmp_path)[0]
    old = tmp_path / f"{chunk.name}.csv"
    old.parent.mkdir(parents=True)
    old.write_text("")
    grown = {**CONFIG, "seeds": list(range(12))}
    names = [c.name for c in plan_chunks(grown, tmp_path) if c.group_path == chunk.group_path]
    assert names == [chunk.name.replace("seeds~0-9", "seeds~0-11")]
