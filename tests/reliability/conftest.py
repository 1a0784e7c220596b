"""Fixtures of the reliability tests; the helpers are in helpers.py."""

import copy
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import Background, Counts, tree, workflow_config

# The sweep the interruption, concurrency and tampering tests run: three
# measuring jobs (seeds {1}, {2, 3}, {4}; cells_per_job 1: each block of
# seeds a job of its own, not one pack of them, tests/test_packing.py), then
# merge, aggregate, the figures and the report -- every rule of the default
# target, in seconds.
INTERRUPT_CONFIG = workflow_config(depths=[1, 4, 16, 64], seeds=[1, 2, 3, 4], seeds_per_job=2,
                                   cells_per_job=1)


@pytest.fixture(scope="session")
def counts():
    """Tests add what they tried here; the numbers go to
    tests/output/reliability-counts.json when the session ends."""
    recorder = Counts()
    yield recorder
    recorder.write()


@dataclass
class Reference:
    config: dict
    workdir: object
    results: dict  # tree() of results/
    span: float  # seconds from the first job's start to the end


@pytest.fixture(scope="session")
def reference(tmp_path_factory):
    """An uninterrupted run of INTERRUPT_CONFIG (the default target)."""
    workdir = tmp_path_factory.mktemp("reference")
    sweep = Background(workdir, INTERRUPT_CONFIG)
    try:
        first_job = sweep.wait_for("rule measure:")
        returncode = sweep.wait(timeout=600)
    finally:
        sweep.kill()
    assert returncode == 0, sweep.output[-5000:]
    end = sweep.lines[-1][0]
    return Reference(INTERRUPT_CONFIG, workdir, tree(workdir / "results"), end - first_job)


@pytest.fixture(scope="module")
def schema_parsed_once():
    """Snakemake's validate() (which validate_config calls) parses its schema
    file again on every call, with the pure-Python YAML parser: a tenth of a
    second, most of the time of a test that validates hundreds of configs.
    The schema does not change while tests run; parse each file once, and
    hand out copies (validate() sets the schema's defaults into the config
    by reference)."""
    import snakemake.utils

    parse = snakemake.utils._load_configfile
    parsed = {}

    def once(source, filetype="Config"):
        if not isinstance(source, (str, os.PathLike)):
            return parse(source, filetype)
        path = Path(source).resolve()
        stat = path.stat()
        key = (path, stat.st_mtime_ns, stat.st_size, filetype)
        if key not in parsed:
            parsed[key] = parse(source, filetype)
        return copy.deepcopy(parsed[key])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(snakemake.utils, "_load_configfile", once)
        yield
