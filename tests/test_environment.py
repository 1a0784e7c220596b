"""The environment is pinned, and described the same way for pip and conda."""

import re
import sys

import pytest
import yaml
from conftest import REPO

TOP_LEVEL = ["torch", "snakemake", "snakemake-executor-plugin-slurm", "pandas", "scipy",
             "seaborn", "matplotlib", "jinja2", "numpy", "pyyaml"]


def pins(lines):
    found = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"not an exact pin: {line!r}"
        found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_requirements_pin_every_package_exactly():
    runtime = pins((REPO / "requirements.txt").read_text().splitlines())
    for name in TOP_LEVEL:
        assert name in runtime, name
    assert runtime["torch"] == "2.13.0"
    assert runtime["snakemake"].startswith("9.")


def test_environment_yml_has_the_same_pins():
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins((REPO / "requirements.txt").read_text().splitlines())


def test_test_requirements_build_on_the_runtime_pins():
    lines = (REPO / "requirements-test.txt").read_text().splitlines()
    assert "-r requirements.txt" in lines
    tools = pins(lines)
    assert {"pytest", "hypothesis", "playwright"} <= set(tools)


def test_pyproject_lists_the_top_level_dependencies():
    text = (REPO / "pyproject.toml").read_text()
    for name in ("torch", "snakemake", "pandas", "seaborn", "jinja2"):
        assert f'"{name}' in text


def test_a_wheel_holds_every_file_the_analysis_reads(tmp_path):
    """The templates (the families' too) and the claims ship with the
    package, not only in an editable checkout."""
    import shutil
    import subprocess
    import zipfile

    source = tmp_path / "source"  # a copy: building leaves build/ beside the sources
    shutil.copytree(REPO / "shortcutbench", source / "shortcutbench",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "pyproject.toml", source)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(source)], check=True, capture_output=True)
    wheel, = tmp_path.glob("shortcutbench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    analysis = REPO / "shortcutbench" / "analysis"
    needed = [p.relative_to(REPO).as_posix() for p in
              [*analysis.glob("templates/**/*"), analysis / "claims.yaml"] if p.is_file()]
    assert needed and not [n for n in needed if n not in names]


@pytest.mark.zoo
def test_the_model_libraries_keep_the_pinned_cpu_torch():
    """transformers, timm and torchvision install against the torch pin (the
    CPU build here) and import beside it: torchvision's C++ ops, built for
    torch's CUDA build, do not load, and measuring/libraries.py makes its
    pure-Python parts importable anyway."""
    import torch

    from shortcutbench.measuring.libraries import import_library

    runtime = pins((REPO / "requirements.txt").read_text().splitlines())
    assert torch.__version__.split("+")[0] == runtime["torch"] == "2.13.0"
    assert torch.version.cuda is None  # the CPU build this project's machines install
    for name in ("transformers", "timm", "torchvision"):
        assert import_library(name).__version__.split("+")[0] == runtime[name]
    assert torch.__version__.split("+")[0] == "2.13.0"  # nothing replaced it
