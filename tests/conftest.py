"""Shared test helpers: running the real workflow in a scratch directory."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

# A small sweep that holds the book's case; seconds to run.
SMALL_CONFIG = {
    "depths": [1, 5, 12],
    "widths": [3],
    "seeds": [122, 123],
    "shortcut": [False, True],
    "devices": ["cpu"],
    "activations": ["gelu_tanh"],
    # token training runs, so that the default target stays quick: two
    # groups, which share one job (training.runs_per_job)
    "training": {"depths": [2, 3], "widths": [3], "seeds": [1], "norms": ["none"], "steps": 3},
}


def snakemake_command(workdir, config=None, *args):
    """The argv that runs the real snakemake on the repo's Snakefile in
    `workdir`; `config` (a dict) is written to workdir/config.yaml and passed
    with --configfile."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
               "--cores", "2", *args]
    if config is not None:
        # Last: --configfile takes every word after it.
        config_path = workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(config))
        command += ["--configfile", str(config_path)]
    return command


def snakemake_environment():
    """The environment jobs need: this venv's python and snakemake first on PATH."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def snakemake(workdir, config=None, *args, timeout=600, check=True):
    """Run snakemake_command(...); returns the CompletedProcess (stdout and
    stderr merged)."""
    result = subprocess.run(snakemake_command(workdir, config, *args), cwd=workdir,
                            env=snakemake_environment(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n{result.stdout[-6000:]}")
    return result



def pytest_collection_modifyitems(config, items):
    """Tests marked `zoo` build Hugging Face and timm models (seconds of
    imports each, minutes through the workflow): `make test-zoo` runs them
    (SHORTCUTBENCH_ZOO_TESTS=1), plain `pytest` skips them."""
    import pytest

    if os.environ.get("SHORTCUTBENCH_ZOO_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="a zoo test: run by make test-zoo")
    for item in items:
        if "zoo" in item.keywords:
            item.add_marker(skip)
