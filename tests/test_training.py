"""Short training runs: deterministic, recorded, and they learn."""

import csv
import dataclasses
import io
import json
import math
import re

import pytest

from shortcutbench.core.sweep import TRAINING_JOB_PATTERN, pack_name, training_jobs
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.mlp.batched_training import BATCH, train_runs_batched
from shortcutbench.measuring.mlp.training import (
    COLUMNS,
    TrainingRun,
    regression_task,
    train_job,
    train_run,
)

SMALL = {"enabled": True, "depths": [3], "widths": [8], "seeds": [1, 2],
         "shortcut": [False, True], "activations": ["gelu_tanh"], "norms": ["none"],
         "steps": 20, "optimizer": "adam", "learning_rate": 0.01, "samples": 16,
         "runs_per_job": 48}


def test_the_task_is_fixed():
    x1, y1 = regression_task(4, 16)
    x2, y2 = regression_task(4, 16)
    assert x1.equal(x2) and y1.equal(y2) and y1.shape == (16, 1)


def test_a_run_is_reproducible_and_learns():
    configure_torch()
    first = train_run(TrainingRun(3, 8, 1, True, steps=40, learning_rate=1e-2))
    assert first == train_run(TrainingRun(3, 8, 1, True, steps=40, learning_rate=1e-2))
    losses, start, end = first
    assert len(losses) == 41 and len(start) == len(end) == 3
    assert losses[-1] < 0.5 * losses[0]


def test_a_run_that_blows_up_is_recorded_not_raised():
    configure_torch()
    losses, _, _ = train_run(TrainingRun(4, 8, 1, True, steps=5, optimizer="sgd",
                                         learning_rate=1e6))
    assert len(losses) == 6 and not all(math.isfinite(v) for v in losses)


def test_jobs_split_by_depth_and_norm_and_write_tidy_rows(tmp_path):
    training = {"enabled": True, "depths": [2, 3], "widths": [4], "seeds": [1, 2],
                "shortcut": [False, True], "activations": ["relu"], "norms": ["none"],
                "steps": 2, "optimizer": "adam", "learning_rate": 0.01, "samples": 8,
                "runs_per_job": 4}  # a group a job
    jobs = training_jobs(training, results_dir=tmp_path)
    assert sorted(jobs) == ["activation~relu/width~4/norm~none/depth~2",
                            "activation~relu/width~4/norm~none/depth~3"]
    assert training_jobs({**training, "enabled": False}) == {}
    out = tmp_path / "t.csv"
    train_job(jobs["activation~relu/width~4/norm~none/depth~3"], out, progress=None)
    with open(out) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == COLUMNS
    kinds = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    # 2 seeds x 2 flags: 3 losses (steps 0..2) and 3 layers at start and end
    assert kinds == {"loss": 12, "grad_start": 12, "grad_end": 12}


def test_the_training_figure_is_drawn_and_deterministic(tmp_path):
    from shortcutbench.analysis.mlp.training_figure import make_training

    training = {"enabled": True, "depths": [3], "widths": [4], "seeds": [1, 2],
                "shortcut": [False, True], "activations": ["gelu_tanh"], "norms": ["none"],
                "steps": 3, "optimizer": "adam", "learning_rate": 0.01, "samples": 8,
                "runs_per_job": 48}
    job = training_jobs(training)["activation~gelu_tanh/width~4/norm~none/depth~3"]
    train_job(job, tmp_path / "t.csv", progress=None)
    make_training(tmp_path / "t.csv", tmp_path / "a")
    make_training(tmp_path / "t.csv", tmp_path / "b")
    for ext in ("svg", "png"):
        first = (tmp_path / f"a.{ext}").read_bytes()
        assert len(first) > 1000 and first == (tmp_path / f"b.{ext}").read_bytes()


def _batched(runs):
    configure_torch()
    return list(train_runs_batched(runs, *regression_task(runs[0].width, runs[0].samples)))


def _worst_relative_difference(a, b):
    return max(abs(p - q) / abs(p) for p, q in zip(a, b))


@pytest.mark.parametrize("optimizer, learning_rate", [("adam", 1e-2), ("sgd", 1e-1)])
@pytest.mark.parametrize("norm", ["none", "pre_layernorm"])
def test_batched_training_is_within_1e_5_of_the_exact_runs(optimizer, learning_rate, norm):
    runs = [TrainingRun(3, 8, seed, shortcut, norm=norm, steps=20, optimizer=optimizer,
                        learning_rate=learning_rate, samples=16)
            for seed in (1, 2) for shortcut in (False, True)]
    configure_torch()
    exact = [train_run(run) for run in runs]
    batched = _batched(runs)
    assert len(batched) == len(runs)
    for (losses, start, end), (b_losses, b_start, b_end) in zip(exact, batched):
        assert len(b_losses) == len(losses) and len(b_start) == len(b_end) == len(start)
        assert _worst_relative_difference(losses + start + end,
                                          b_losses + b_start + b_end) < 1e-5


def test_a_batched_run_does_not_depend_on_its_companions_or_place():
    run = TrainingRun(3, 8, 5, True, steps=10, samples=16)
    alone = _batched([run])
    others = [dataclasses.replace(run, seed=seed, shortcut=shortcut)
              for seed in (1, 2, 3) for shortcut in (False, True)]
    first = _batched([run] + others[:3])[0]
    last = _batched(others + [run])[len(others)]
    # more runs than a batch: it lands in the second one
    second_batch = _batched(others + others[:BATCH - len(others)] + [run])[BATCH]
    assert alone[0] == first == last == second_batch


def test_batched_training_writes_the_same_bytes_twice_and_the_exact_rows(tmp_path):
    exact = training_jobs(SMALL)["activation~gelu_tanh/width~8/norm~none/depth~3"]
    batched = training_jobs(SMALL, "batched")["activation~gelu_tanh/width~8/norm~none/depth~3"]
    assert "engine" not in exact and batched == {**exact, "engine": "batched"}
    logs = [io.StringIO(), io.StringIO()]
    for name, log in zip(("a", "b"), logs):
        train_job(batched, tmp_path / f"{name}.csv", progress=log)
    train_job(exact, tmp_path / "exact.csv", progress=None)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert logs[0].getvalue().startswith("training 4 runs of gelu_tanh, depth 3, width 8, "
                                         "norm none, engine batched")
    with open(tmp_path / "a.csv") as f, open(tmp_path / "exact.csv") as g:
        rows, exact_rows = list(csv.DictReader(f)), list(csv.DictReader(g))
    # the same runs, steps and layers in the same order; the values within 1e-5
    key = [c for c in COLUMNS if c != "value"]
    assert [[r[c] for c in key] for r in rows] == [[r[c] for c in key] for r in exact_rows]
    assert _worst_relative_difference([float(r["value"]) for r in exact_rows],
                                      [float(r["value"]) for r in rows]) < 1e-5


def test_the_exact_engine_trains_each_run_as_train_run_does(tmp_path):
    job = training_jobs({**SMALL, "steps": 3})["activation~gelu_tanh/width~8/norm~none/depth~3"]
    train_job(job, tmp_path / "t.csv", progress=None)
    with open(tmp_path / "t.csv") as f:
        losses = [float(r["value"]) for r in csv.DictReader(f)
                  if r["kind"] == "loss" and r["seed"] == "2" and r["shortcut"] == "True"]
    configure_torch()
    assert losses == train_run(TrainingRun(3, 8, 2, True, steps=3, learning_rate=0.01,
                                           samples=16))[0]


def test_short_groups_share_a_job_and_give_the_same_table(tmp_path):
    from shortcutbench.analysis.aggregate import concatenate_tables

    training = {**SMALL, "depths": [2, 3, 4], "steps": 2}
    names = [f"activation~gelu_tanh/width~8/norm~none/depth~{d}" for d in (2, 3, 4)]
    alone = training_jobs({**training, "runs_per_job": 4})
    assert sorted(alone) == names
    # 4 runs a group (2 seeds x 2 flags): two groups fit 9 runs, the third is its own job
    packed = training_jobs({**training, "runs_per_job": 9})
    pack = pack_name(names[:2])
    assert sorted(packed) == [names[2], pack]
    assert re.fullmatch(TRAINING_JOB_PATTERN, pack) and re.fullmatch(TRAINING_JOB_PATTERN,
                                                                     names[2])
    assert [g["depth"] for g in packed[pack]["groups"]] == [2, 3]
    assert packed[names[2]] == alone[names[2]]
    # a group bigger than runs_per_job is still one job
    assert training_jobs({**training, "runs_per_job": 1}) == alone
    # everything in one job: the same table, byte for byte
    (one,) = training_jobs(training).values()
    train_job(one, tmp_path / "one.csv", progress=None)
    for name, params in alone.items():
        train_job(params, tmp_path / f"{name.replace('/', '_')}.csv", progress=None)
    concatenate_tables([tmp_path / "one.csv"], tmp_path / "from-one.csv")
    concatenate_tables(sorted(tmp_path.glob("activation~*.csv")), tmp_path / "from-three.csv")
    assert (tmp_path / "from-one.csv").read_bytes() == (tmp_path / "from-three.csv").read_bytes()


def test_a_grown_training_config_keeps_its_finished_jobs(tmp_path):
    training = {**SMALL, "depths": [2, 3], "steps": 2}
    (pack,) = training_jobs(training, results_dir=tmp_path)
    folder = tmp_path / "training"
    train_job(training_jobs(training)[pack], folder / f"{pack}.csv", progress=None)
    # the job wrote its groups' names beside its table
    assert json.loads((folder / f"{pack}.groups.json").read_text()) == [
        f"activation~gelu_tanh/width~8/norm~none/depth~{d}" for d in (2, 3)]
    grown = training_jobs({**training, "depths": [1, 2, 3]}, results_dir=tmp_path)
    new = "activation~gelu_tanh/width~8/norm~none/depth~1"
    assert sorted(grown) == sorted([new, pack])  # only the new group is trained
    # a finished group of its own is kept too
    (folder / "activation~gelu_tanh/width~8/norm~none").mkdir(parents=True)
    (folder / f"{new}.csv").write_text("")
    regrouped = training_jobs({**training, "depths": [1, 2, 3, 4]}, results_dir=tmp_path)
    assert sorted(regrouped) == sorted(
        [new, pack, "activation~gelu_tanh/width~8/norm~none/depth~4"])
    # a list of groups that is not the pack's (edited) is ignored: its groups go again
    (folder / f"{pack}.groups.json").write_text(json.dumps([new]))
    assert pack not in training_jobs({**training, "depths": [1, 2, 3, 4]},
                                     results_dir=tmp_path)
    # a group no longer wanted: the pack that holds it is not kept
    (folder / f"{pack}.groups.json").write_text(json.dumps(
        [f"activation~gelu_tanh/width~8/norm~none/depth~{d}" for d in (2, 3)]))
    assert pack not in training_jobs({**training, "depths": [3]}, results_dir=tmp_path)
