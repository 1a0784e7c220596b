"""Memory known before a job runs (shortcutbench.core.resources): each
chunk's peak estimated from its cells, used as the measure rule's mem_mb,
and a cell that cannot fit refused before any job, naming max_mem_mb."""

import re

import pytest
from conftest import SMALL_CONFIG, snakemake
from mlp_chunks import mlp_chunk

from shortcutbench.core import resources
from shortcutbench.core.resources import cell_mem_mb, cell_parameters, chunk_mem_mb
from shortcutbench.core.sweep import memory_problem, plan_chunks, records_mb


def test_the_parameter_count_is_the_model_s():
    from shortcutbench.measuring.mlp.model import init_parameters, layer_sizes

    for depth, width in [(1, 3), (5, 3), (4, 32), (3, 100)]:
        drawn = init_parameters(layer_sizes(depth, width), "pytorch")
        assert cell_parameters(depth, width) == sum(w.numel() + b.numel() for w, b in drawn)


def test_the_estimate_grows_with_depth_times_width_squared():
    base = resources.BASELINE_MB
    small = cell_mem_mb(64, 1024) - base
    assert cell_mem_mb(128, 1024) - base == pytest.approx(2 * small, rel=0.02)
    assert cell_mem_mb(64, 2048) - base == pytest.approx(4 * small, rel=0.02)
    assert cell_mem_mb(64, 1024, "float64") - base == pytest.approx(2 * small, rel=0.02)
    # issue 7: peak RSS ~2.04x the parameters' bytes for a depth-1024 x width-1024 cell
    gib = cell_parameters(1024, 1024) * 4 / 2 ** 20
    assert 2.0 * gib < cell_mem_mb(1024, 1024) - base < 2.5 * gib
    assert cell_mem_mb(1, 3) == base + 1


def test_a_chunk_needs_what_its_biggest_cell_needs():
    chunk = mlp_chunk("", "cpu", "float64", "relu", 512, (0, 1), (1, 8, 64), (False, True),
                      (1.0,), ("pytorch",), ("none",))
    # and its records until its job writes them: 2 seeds x 2 flags x (3 + 10 + 66) rows
    assert chunk_mem_mb(chunk) == cell_mem_mb(64, 512, "float64") + records_mb(chunk)
    assert records_mb(chunk) == 1


def chunks(**axes):
    config = {"depths": [1, 5], "widths": [3], "seeds": [0], "shortcut": [False, True],
              "shortcut_scales": [1.0], "devices": ["cpu"], "activations": ["gelu_tanh"],
              "inits": ["pytorch"], "norms": ["none"], "dtypes": ["float32"],
              "seeds_per_job": 100, **axes}
    return plan_chunks(config, "no-such-results-dir")


def test_a_normal_sweep_fits():
    assert resources.machine_mem_mb() > 0
    assert memory_problem(chunks()) is None
    assert memory_problem(chunks(), max_mem_mb=1000) is None


def test_a_cell_that_cannot_fit_is_refused_with_its_numbers(monkeypatch):
    monkeypatch.setattr(resources, "machine_mem_mb", lambda: 16000)
    message = memory_problem(chunks(depths=[1, 100000], widths=[3, 65536]))
    assert message.startswith("config key max_mem_mb: the cell depth 100000 x width 65536 "
                              "(float32) would need ~")
    estimate = cell_mem_mb(100000, 65536)
    assert f"~{estimate:,} MB" in message and "16,000 MB allowed (this machine's memory" in message
    assert "Fix: lower the largest depth or width" in message
    # the limit the user sets, and a study named
    message = memory_problem(
        chunks(depths=[1], studies={"wide": {"widths": [4096], "depths": [64]}}),
        max_mem_mb=2000)
    assert "depth 64 x width 4096 (float32) of study 'wide'" in message
    assert "more than the 2,000 MB allowed (max_mem_mb in the config)" in message


def test_snakemake_refuses_before_any_job_and_asks_each_job_s_memory(tmp_path):
    refused = snakemake(tmp_path / "big", {**SMALL_CONFIG, "widths": [2048], "max_mem_mb": 512},
                        "-n", check=False)
    assert refused.returncode != 0
    assert re.search(r"^ConfigError: config key max_mem_mb: the cell depth 12 x width 2048 "
                     r"\(float32\) would need ~[0-9,]+ MB .* more than the 512 MB allowed "
                     r"\(max_mem_mb in the config\)", refused.stdout, re.M), refused.stdout
    assert "Traceback" not in refused.stdout
    assert not (tmp_path / "big" / "results").exists()
    planned = snakemake(tmp_path / "small", SMALL_CONFIG, "-n", "results/gradients.csv")
    # one chunk: its 12 x 3 cell and its 96 records (1 MB)
    assert re.findall(r"mem_mb=(\d+)", planned.stdout) == [str(cell_mem_mb(12, 3) + 1)]


def test_a_batched_chunk_asks_for_its_stacked_batch_and_stays_under_it():
    import subprocess
    import sys

    from shortcutbench.core.families.mlp import chunk_mem_mb as mlp_chunk_mem_mb

    exact = mlp_chunk_mem_mb((1, 8, 32), 64, "float32")
    batched = mlp_chunk_mem_mb((1, 8, 32), 64, "float32", "batched")
    assert batched > exact == cell_mem_mb(32, 64)
    # a cell too big to stack is measured the exact way: its own estimate
    assert mlp_chunk_mem_mb((1024,), 1024, "float32", "batched") == cell_mem_mb(1024, 1024)
    # a process measuring the biggest batch of that chunk peaks under the estimate
    code = (
        "from shortcutbench.core.records import Cell\n"
        "from shortcutbench.measuring.mlp.batched import measure_cells_batched\n"
        "measure_cells_batched([Cell(32, 64, seed, shortcut) for seed in range(32)\n"
        "                       for shortcut in (False, True)], progress=None)\n"
        "print(next(line.split()[1] for line in open('/proc/self/status')\n"
        "           if line.startswith('VmHWM')))\n")
    peak_kb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout)
    # (measured here: ~335 MB, above the one-cell estimate it used to ask for)
    assert peak_kb / 1024 <= batched, (peak_kb / 1024, exact, batched)


def training_group(depth, width, engine, samples=64):
    return {"activation": "gelu_tanh", "width": width, "norm": "none", "depth": depth,
            "seeds": [0, 1, 2, 3], "shortcut": [False, True], "steps": 2, "optimizer": "adam",
            "learning_rate": 1e-3, "samples": samples,
            **({"engine": engine} if engine == "batched" else {})}


@pytest.mark.parametrize("engine", ["exact", "batched"])
def test_a_training_job_stays_under_its_estimate(engine, tmp_path):
    import subprocess
    import sys

    from shortcutbench.core.families.mlp import training_job_mem_mb

    group = training_group(8, 1024, engine)
    estimate = training_job_mem_mb({"groups": [training_group(2, 3, engine), group]})
    code = (
        "import io\n"
        "from shortcutbench.measuring.mlp.training import train_job\n"
        f"train_job({group!r}, {str(tmp_path / 'runs.csv')!r}, io.StringIO())\n"
        "print(next(line.split()[1] for line in open('/proc/self/status')\n"
        "           if line.startswith('VmHWM')))\n")
    peak_mb = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout) / 1024
    # safe for a scheduler that kills a job above its request, and not far above it
    assert peak_mb <= estimate <= 1.5 * peak_mb, (peak_mb, estimate)


def test_a_training_group_that_cannot_fit_is_refused_before_any_job(tmp_path):
    training = {"depths": [8], "widths": [32768], "seeds": [1], "norms": ["none"], "steps": 2}
    refused = snakemake(tmp_path, {**SMALL_CONFIG, "training": training, "max_mem_mb": 4000},
                        "-n", check=False)
    assert refused.returncode != 0
    assert re.search(r"^ConfigError: config key max_mem_mb: the training group depth 8 x width "
                     r"32768 \(one run, 64 samples\) would need ~[0-9,]+ MB .* more than the "
                     r"4,000 MB allowed \(max_mem_mb in the config\)\. Nothing was run\. Fix: "
                     r"smaller training.widths", refused.stdout, re.M), refused.stdout
    assert "Traceback" not in refused.stdout
    assert not (tmp_path / "results").exists()
