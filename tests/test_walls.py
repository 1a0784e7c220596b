"""The two walls: measuring never loads pandas, seaborn or Snakemake; the
analysis never loads torch (it would pay ~1.7 s of import for nothing)."""

import subprocess
import sys

import pytest

from conftest import REPO

MEASURING = ["shortcutbench.measure", "shortcutbench.training", "shortcutbench.model"]
ANALYSIS = ["shortcutbench.collect", "shortcutbench.aggregate", "shortcutbench.laws",
            "shortcutbench.theory", "shortcutbench.figures", "shortcutbench.report",
            "shortcutbench.provenance", "shortcutbench.sweep", "shortcutbench.config",
            "shortcutbench.devices"]


def loaded_after_import(module):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize("module", MEASURING)
def test_measuring_side_loads_no_analysis_libraries(module):
    assert not loaded_after_import(module) & {"pandas", "seaborn", "matplotlib", "snakemake"}


@pytest.mark.parametrize("module", ANALYSIS)
def test_analysis_side_never_loads_torch(module):
    assert "torch" not in loaded_after_import(module)
