"""Devices: a cuda cell on a host without CUDA fails inside its job, naming
the device and the host; with --keep-going the rest of the sweep is
unaffected."""

import re
import socket

import pytest

from shortcutbench.core.config import validate_config
from shortcutbench.core.store import read_chunk
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
def test_a_cuda_chunk_fails_alone_naming_device_and_host(reference, tmp_path, counts):
    if host_has_cuda():
        pytest.skip("this host has CUDA: a cuda chunk would not fail here")
    config = {**reference.config, "devices": ["cpu", "cuda"]}
    workdir = tmp_path / "work"
    result = run(workdir, config, "--keep-going", check=False)
    host = socket.gethostname()

    # The overall run fails, naming the rule and the cuda chunk.
    assert result.returncode != 0
    assert "Error in rule measure" in result.stdout
    failed = re.findall(r"Error in rule (\w+)", result.stdout)
    assert set(failed) == {"measure"}, failed
    sweep = validate_config(dict(config), str(SCHEMA_PATH))
    chunks = plan_chunks(sweep, "/nonexistent")
    cuda = [c for c in chunks if c.device == "cuda"]
    cpu = [c for c in chunks if c.device == "cpu"]
    assert cuda and cpu
    # Each cuda job's one-line summary names the device and the host ...
    summaries = job_summaries(result.stdout)
    assert sorted(summaries) == sorted(chunk.name for chunk in cuda), result.stdout[-6000:]
    for line in summaries.values():
        assert line.startswith("error: DeviceUnavailable: device 'cuda' is not available on "
                               f"host {host!r}"), line
    assert "Traceback (most recent call last)" not in result.stdout, result.stdout[-6000:]
    # ... and so does its log, with the traceback.
    for chunk in cuda:
        log = (workdir / "logs" / "measure" / f"{chunk.name}.log").read_text()
        assert "DeviceUnavailable" in log and "'cuda'" in log and repr(host) in log
        assert not (workdir / "results" / f"{chunk.name}.parquet").exists()

    # Every cpu chunk was measured, is valid, and is the very file a
    # cpu-only run makes.
    results = tree(workdir / "results")
    for chunk in cpu:
        path = workdir / "results" / f"{chunk.name}.parquet"
        read_chunk(path, chunk.params())
        assert results[f"{chunk.name}.parquet"] == reference.results[f"{chunk.name}.parquet"]
    # Nothing downstream was made from a partial sweep.
    assert "gradients.csv" not in results and not (workdir / "report").exists()
    counts.add("devices", cuda_chunks_failed_in_their_job=len(cuda),
               cpu_chunks_completed_valid=len(cpu))
