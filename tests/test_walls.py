"""The walls between the package's three parts, found by walking the folders:

- core imports neither torch nor pandas (it runs where Snakemake builds the DAG);
- measuring never loads pandas, seaborn, matplotlib, Snakemake or the analysis side;
- analysis never loads torch (it would pay ~1.7 s of import for nothing);
- the laws never load scipy.stats (~0.9 s of import, a third of their job).
"""

import pkgutil
import subprocess
import sys

import pytest
from conftest import REPO

import shortcutbench


def modules_of(part):
    package = f"shortcutbench.{part}"
    path = [str(REPO / "shortcutbench" / part)]
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(path)]


def loaded_after_import(module):
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True,
                         capture_output=True, text=True).stdout
    return set(out.split())


def top_level(names):
    return {name.split(".")[0] for name in names}


def test_every_module_belongs_to_one_part():
    top = [m.name for m in pkgutil.iter_modules(shortcutbench.__path__)]
    assert sorted(top) == ["analysis", "core", "measuring"]
    assert len(modules_of("core")) > 5 and len(modules_of("analysis")) > 5


@pytest.mark.parametrize("module", modules_of("core"))
def test_core_loads_neither_torch_nor_pandas(module):
    assert not top_level(loaded_after_import(module)) & {"torch", "pandas", "seaborn"}


@pytest.mark.parametrize("module", modules_of("measuring"))
def test_measuring_side_loads_no_analysis(module):
    loaded = loaded_after_import(module)
    assert not top_level(loaded) & {"pandas", "seaborn", "matplotlib", "snakemake"}
    assert not {name for name in loaded if name.startswith("shortcutbench.analysis")}


@pytest.mark.parametrize("module", modules_of("analysis"))
def test_analysis_side_never_loads_torch(module):
    loaded = loaded_after_import(module)
    assert "torch" not in top_level(loaded)
    assert not {name for name in loaded if name.startswith("shortcutbench.measuring")}


def imported_names(module):
    """Top-level packages a module's source imports anywhere, lazily inside a
    function included: the walls hold for the code, not only at import time."""
    import importlib.util
    import re
    from pathlib import Path

    source = Path(importlib.util.find_spec(module).origin).read_text()
    return set(re.findall(r"^\s*(?:import|from)\s+([A-Za-z_]\w*)", source, re.M))


@pytest.mark.parametrize("module", modules_of("core"))
def test_core_source_never_imports_torch_or_pandas(module):
    assert not imported_names(module) & {"torch", "pandas", "seaborn", "matplotlib"}


@pytest.mark.parametrize("module", modules_of("analysis"))
def test_analysis_source_never_imports_torch(module):
    assert "torch" not in imported_names(module)


def test_the_laws_do_not_load_scipy_stats():
    assert "scipy.stats" not in loaded_after_import("shortcutbench.analysis.laws")
