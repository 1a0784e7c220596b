"""Short training runs: deterministic, recorded, and they learn."""

import csv
import math

from shortcutbench.core.sweep import training_jobs
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.training import (
    COLUMNS,
    TrainingRun,
    regression_task,
    train_group,
    train_run,
)


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
                "steps": 2, "optimizer": "adam", "learning_rate": 0.01, "samples": 8}
    jobs = training_jobs(training)
    assert sorted(jobs) == ["activation~relu/width~4/norm~none/depth~2",
                            "activation~relu/width~4/norm~none/depth~3"]
    assert training_jobs({**training, "enabled": False}) == {}
    out = tmp_path / "t.csv"
    train_group(jobs["activation~relu/width~4/norm~none/depth~3"], out, progress=None)
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
                "steps": 3, "optimizer": "adam", "learning_rate": 0.01, "samples": 8}
    job = training_jobs(training)["activation~gelu_tanh/width~4/norm~none/depth~3"]
    train_group(job, tmp_path / "t.csv", progress=None)
    make_training(tmp_path / "t.csv", tmp_path / "a")
    make_training(tmp_path / "t.csv", tmp_path / "b")
    for ext in ("svg", "png"):
        first = (tmp_path / f"a.{ext}").read_bytes()
        assert len(first) > 1000 and first == (tmp_path / f"b.{ext}").read_bytes()
