"""Devices: a local run with a cuda cell on a host without CUDA is refused
before any job, naming the key, the device and the host (on a cluster the
cuda job fails alone, inside the job: tests/cluster)."""

import re
import socket

import pytest

from shortcutbench.core.config import validate_config
from shortcutbench.core.sweep import plan_chunks

from .helpers import SCHEMA_PATH, run, tree

# A measuring job's one-line summary of its error (core/files.py's job_log).
SUMMARY = re.compile(r"error: \w+: .*?\(full traceback in logs/measure/(\S+?)\.log\)")


def job_summaries(output):
    """{chunk name: its job's summary} from snakemake's merged output.

    A job writes its summary in one write, so the line arrives whole; but it
    need not start a line: Snakemake's logger writes a many-line message and
    its final newline in two writes, and a job's summary can land between
    them, after that message's last line."""
    found = list(SUMMARY.finditer(output))
    names = [match.group(1) for match in found]
    assert len(set(names)) == len(names), output[-6000:]  # one summary a job
    return {match.group(1): match.group(0) for match in found}


def host_has_cuda():
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
def test_a_local_run_refuses_a_cuda_chunk_before_any_job(reference, tmp_path, counts):
    if host_has_cuda():
        pytest.skip("this host has CUDA: a cuda chunk would not fail here")
    config = {**reference.config, "devices": ["cpu", "cuda"]}
    workdir = tmp_path / "work"
    result = run(workdir, config, "--keep-going", check=False)
    host = socket.gethostname()
    sweep = validate_config(dict(config), str(SCHEMA_PATH))
    cuda = [c for c in plan_chunks(sweep, "/nonexistent") if c.device == "cuda"]
    assert cuda

    # One line names the key, the device, the host and the fix; no job ran.
    assert result.returncode != 0
    assert re.search(rf"^ConfigError: config key devices: device 'cuda' is not available on "
                     rf"host {re.escape(repr(host))}: .* remove 'cuda' from 'devices' in the "
                     rf"config\. Nothing was run\.$", result.stdout, re.M), result.stdout[-6000:]
    assert "Traceback (most recent call last)" not in result.stdout, result.stdout[-6000:]
    assert not job_summaries(result.stdout) and "Error in rule" not in result.stdout
    assert tree(workdir / "results") == {} and not (workdir / "logs" / "measure").exists()
    counts.add("devices", local_runs_refused_before_any_job=1, cuda_chunks_never_started=len(cuda))
