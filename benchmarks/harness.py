"""What every benchmark script shares: running the real workflow in a scratch
directory (the same command the tests build, tests/conftest.py) and counting
a config's cells (the planner's own count)."""

import copy
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from conftest import snakemake_command, snakemake_environment  # noqa: E402

from shortcutbench.core.config import validate_config  # noqa: E402
from shortcutbench.core.sweep import n_cells as sweep_cells  # noqa: E402

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def snakemake(workdir, config, *args):
    """Run the real workflow on `config` in `workdir`; returns (seconds, output).
    Exits with snakemake's output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(snakemake_command(workdir, config, *args), cwd=workdir,
                            env=snakemake_environment(), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if result.returncode:
        sys.exit(f"snakemake failed:\n{result.stdout[-4000:]}")
    return seconds, result.stdout


def n_cells(config):
    """The main sweep's cell count, as the planner counts it (defaults filled)."""
    return sweep_cells(validate_config(copy.deepcopy(config), str(SCHEMA)))
