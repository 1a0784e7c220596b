"""Jobs that pack variants (core/sweep.py's Pack): a measuring job holds up
to `cells_per_job` cells of several variants of one family, study, device
and dtype; every cell's bytes and the merged tables are those of the
unpacked jobs; a killed sweep re-runs only unfinished jobs and a grown one
measures only its new seeds."""

import copy
import json
import re

import pytest
from conftest import REPO, snakemake

from shortcutbench.analysis.partials_frame import merge_sweep
from shortcutbench.core.config import ConfigError, validate_config
from shortcutbench.core.resources import cell_mem_mb
from shortcutbench.core.store import read_records
from shortcutbench.core.sweep import (
    CHUNK_PATTERN,
    Chunk,
    Pack,
    job_named,
    pack_chunks_path,
    plan_chunks,
    records_mb,
    write_pack_lists,
)
from shortcutbench.measuring.measure import run_chunk

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
# 3 activations x 2 widths (2 inits each), two blocks of seeds: 12 chunks of 16 cells
MANY = {"depths": [1, 4], "widths": [3, 8], "seeds": [0, 1, 2, 3], "shortcut": [False, True],
        "devices": ["cpu"], "activations": ["gelu_tanh", "relu", "tanh"],
        "inits": ["pytorch", "kaiming_normal"], "seeds_per_job": 2, "cells_per_job": 100}


def planned(tmp_path, **changes):
    config = validate_config({**copy.deepcopy(MANY), **changes}, SCHEMA)
    return plan_chunks(config, str(tmp_path / "results"))


def units(jobs):
    return [chunk for job in jobs for chunk in getattr(job, "chunks", (job,))]


def test_a_job_holds_up_to_cells_per_job_cells_of_many_variants(tmp_path):
    jobs = planned(tmp_path)
    unpacked = planned(tmp_path, cells_per_job=1)
    assert all(isinstance(job, Chunk) for job in unpacked) and len(unpacked) == 12
    assert len(jobs) == 2  # 6 chunks a job (96 cells <= 100)
    assert all(isinstance(job, Pack) and len(job.cells()) <= 100 for job in jobs)
    # the same chunks, so the same cells, each once
    assert sorted(c.name for c in units(jobs)) == sorted(c.name for c in unpacked)
    cells = [tuple(sorted(c.items())) for job in jobs for c in job.cells()]
    assert len(cells) == len(set(cells)) == 12 * 16
    for job in jobs:
        assert len({(c.model, c.study, c.device, c.dtype) for c in job.chunks}) == 1
        assert job.mem_mb() == max(cell_mem_mb(4, c.options["width"]) for c in job.chunks) + \
            sum(records_mb(c) for c in job.chunks)
        assert job.name.startswith("cells/model~mlp/device~cpu/dtype~float32/pack~")
        assert re.fullmatch(CHUNK_PATTERN, job.name)


def test_cells_per_job_is_checked():
    with pytest.raises(ConfigError, match="cells_per_job"):
        validate_config({**copy.deepcopy(MANY), "cells_per_job": 0}, SCHEMA)
    assert validate_config({k: v for k, v in MANY.items() if k != "cells_per_job"},
                           SCHEMA)["cells_per_job"] > 0


def measure(jobs, root):
    """Run every job in this process, as rule measure does."""
    for job in jobs:
        base = root / "results" / job.name
        base.parent.mkdir(parents=True, exist_ok=True)
        partial = root / "results" / "partials" / f"{job.name}.json"
        partial.parent.mkdir(parents=True, exist_ok=True)
        run_chunk(job.params(), f"{base}.parquet", root / "machine.json", progress=None,
                  partial_path=partial)


def merged(root, jobs):
    """merge_sweep over `jobs` (measured under root), as rule merge runs it."""
    jobs = sorted(jobs, key=lambda j: j.name)
    merge_sweep([root / "results" / "partials" / f"{j.name}.json" for j in jobs],
                [root / "results" / f"{j.name}.parquet" for j in jobs],
                [j.params() for j in jobs], 2.0, root / "partials.json",
                root / "summary.csv", root / "lines.csv", [j.name for j in jobs])
    return {name: (root / name).read_bytes()
            for name in ("partials.json", "summary.csv", "lines.csv")}


@pytest.mark.parametrize("engine", ["exact", "batched"])
def test_packed_results_are_the_unpacked_bytes(tmp_path, engine):
    out = {}
    for label, per_job in (("packed", 100), ("unpacked", 1)):
        root = tmp_path / label
        jobs = planned(root, cells_per_job=per_job, engine=engine)
        measure(jobs, root)
        out[label] = merged(root, jobs)
    assert out["packed"] == out["unpacked"]


def test_a_grown_sweep_s_interleaved_packs_are_read_once_and_merge_the_same(tmp_path,
                                                                            monkeypatch):
    from shortcutbench.core import partials

    grown = {"seeds": [0, 1, 2, 3, 4, 5]}
    root = tmp_path / "grown"
    measure(planned(root), root)
    jobs = planned(root, **grown)
    measure([j for j in jobs if not (root / "results" / f"{j.name}.parquet").exists()], root)
    # the old packs' chunks and the new pack's alternate in name order
    assert len(jobs) >= 3 and sum(isinstance(j, Pack) for j in jobs) == len(jobs)
    reads = []
    read_partial = partials.read_partial
    monkeypatch.setattr(partials, "read_partial",
                        lambda path, *args: reads.append(path) or read_partial(path, *args))
    ours = merged(root, jobs)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == len(jobs)
    fresh = tmp_path / "fresh"
    at_once = planned(fresh, cells_per_job=1, **grown)
    measure(at_once, fresh)
    assert ours == merged(fresh, at_once)


def test_a_cells_bytes_do_not_depend_on_its_pack(tmp_path):
    """Seed 3 of tanh x width 8 x kaiming_normal in three different packs."""
    wanted = {"seed": 3, "activation": "tanh", "width": 8, "init": "kaiming_normal"}
    seen = []
    for n, per_job in enumerate((32, 64, 100)):
        jobs = planned(tmp_path / str(n), cells_per_job=per_job)
        job = next(j for j in jobs if any(all(c[k] == v for k, v in wanted.items())
                                          for c in j.cells()))
        path = tmp_path / f"{n}.parquet"
        run_chunk(job.params(), path, tmp_path / "machine.json", progress=None)
        seen.append(([c.name for c in units([job])],
                     [repr(r) for r in read_records(path).to_pylist()
                      if all(r[k] == v for k, v in wanted.items())]))
    assert len({tuple(names) for names, _ in seen}) == 3  # three different packs
    assert seen[0][1] and seen[0][1] == seen[1][1] == seen[2][1]


def finish(job, root):
    """What a finished job leaves for the planner: its records (and a pack's
    chunk names beside its partial results)."""
    path = root / "results" / f"{job.name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    if isinstance(job, Pack):
        manifest = root / "results" / pack_chunks_path(f"partials/{job.name}.json")
        manifest.parent.mkdir(parents=True, exist_ok=True)
        manifest.write_text(
            json.dumps([c.name for c in job.chunks]))


def test_a_killed_sweep_plans_its_unfinished_jobs_again(tmp_path):
    first = planned(tmp_path)
    finish(first[1], tmp_path)
    again = planned(tmp_path)
    assert sorted(j.name for j in again) == sorted(j.name for j in first)
    assert len(first) == 2


def test_more_seeds_keep_the_finished_packs_and_measure_only_the_new_seeds(tmp_path):
    first = planned(tmp_path)
    for job in first:
        finish(job, tmp_path)
    grown = planned(tmp_path, seeds=[0, 1, 2, 3, 4])
    kept = [j for j in grown if j.name in {f.name for f in first}]
    assert len(kept) == len(first)
    new = [c for j in grown if j not in kept for c in units([j])]
    assert {c.seeds for c in new} == {(4,)} and len(new) == 6


def test_a_plan_s_packs_are_found_by_name_while_the_sweep_runs(tmp_path):
    """A cluster job's Snakemake plans again while other jobs finish, and
    may then pack the rest differently; the job it runs is still found by
    the name the first plan gave it, as the same cells."""
    config = {"seeds": [0, 1, 2, 3, 4], "seeds_per_job": 2, "cells_per_job": 32}
    first = planned(tmp_path, **config)
    write_pack_lists(first, str(tmp_path / "results"))
    changed = 0
    for done in first:
        finish(done, tmp_path)
        again = {job.name: job for job in planned(tmp_path, **config)}
        changed += sorted(again) != sorted(job.name for job in first)
        for job in first:
            found = job_named(job.name, again, str(tmp_path / "results"))
            assert found.name == job.name and found.params() == job.params()
        (tmp_path / "results" / f"{done.name}.parquet").unlink()
    assert changed  # the plan did change under the sweep: the lookup mattered
    with pytest.raises(KeyError, match="run snakemake again"):
        job_named("cells/model~mlp/device~cpu/dtype~float32/pack~000000000000", again,
                  str(tmp_path / "results"))


def test_a_pack_s_chunk_names_are_written_beside_its_partial_results(tmp_path):
    job = planned(tmp_path)[0]
    measure([job], tmp_path)
    names = json.loads((tmp_path / "results" / pack_chunks_path(f"partials/{job.name}.json"))
                       .read_text())
    assert names == [c.name for c in job.chunks]
    assert json.loads((tmp_path / "machine.json").read_text())["engine"] == "exact"


def test_the_workflow_measures_packs_and_asks_their_memory(tmp_path):
    config = {**MANY, "activations": ["relu"], "inits": ["pytorch"], "widths": [3, 64],
              "cells_per_job": 16, "training": {"enabled": False}}
    dry = snakemake(tmp_path / "run", config, "-n", "--until", "measure").stdout
    assert dry.count("rule measure:") == 2  # a pack of each width's two blocks of seeds
    assert not (tmp_path / "run" / "results").exists()  # a dry run writes nothing
    # each pack: its biggest cell and its two chunks' records (1 MB each)
    assert sorted(map(int, re.findall(r"mem_mb=(\d+)", dry))) == [cell_mem_mb(4, 3) + 2,
                                                                   cell_mem_mb(4, 64) + 2]


@pytest.mark.slow
def test_the_workflow_s_results_are_the_same_bytes_packed_or_not(tmp_path):
    config = {**MANY, "activations": ["relu", "tanh"], "training": {"enabled": False}}
    targets = ["results/gradients.csv", "results/tables.json", "results/partials.json",
               "results/summary.csv", "results/lines.csv"]
    out = {}
    for label, per_job in (("packed", 100), ("unpacked", 1)):
        snakemake(tmp_path / label, {**config, "cells_per_job": per_job}, *targets)
        out[label] = {t: (tmp_path / label / t).read_bytes() for t in targets}
    packs = list((tmp_path / "packed" / "results" / "cells").rglob("pack~*.parquet"))
    assert len(packs) == 2 and not list((tmp_path / "unpacked").rglob("pack~*"))
    assert out["packed"] == out["unpacked"]
    # results/cells/ reads as one dataset (README), packs and all: nothing but
    # Parquet files under it
    import pandas as pd

    frames = {label: pd.read_parquet(tmp_path / label / "results" / "cells")
              for label in out}
    assert len(frames["packed"]) == len(frames["unpacked"]) > 0
