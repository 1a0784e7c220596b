"""The bumps a new user hit (issue 10), each pinned by a test that runs what
the user ran: the real snakemake on the repo's Snakefile."""

import copy
import re
import subprocess

import pytest
import torch
import yaml
from conftest import BIN, REPO, SMALL_CONFIG, snakemake, snakemake_environment

from shortcutbench.analysis.families import family_numbers
from shortcutbench.analysis.partials_frame import merge_sweep, read_partials
from shortcutbench.core import families
from shortcutbench.core.config import (
    ConfigError,
    coerce_command_line,
    load_schema,
    validate_config,
)
from shortcutbench.core.families import FamilySpec, Layout
from shortcutbench.core.sweep import Chunk
from shortcutbench.measuring.family import Family
from shortcutbench.measuring.measure import run_chunk

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def dry_run(workdir, *args, config=None):
    """`snakemake -n` (with --configfile when `config`), output as text."""
    return snakemake(workdir, config, "-n", *args, check=False)


def planned_jobs(output):
    """{rule: count} from snakemake's job stats table."""
    table = output.split("Job stats:")[1].split("total")[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


# ------------------------------------------------------------ --config coercion

def test_command_line_text_takes_the_schemas_types():
    schema = load_schema(SCHEMA)
    files = {"depths": [5], "widths": [3], "seeds": [123]}
    typed = {**files, "depths": ["1", "2"], "shortcut": ["true", "False"], "devices": "cpu",
             "seeds_per_job": "7", "healthy_band": "1.5", "branch_scales": ["1/sqrt(depth)", "0.5"]}
    assert coerce_command_line(typed, schema, files) == {
        "depths": [1, 2], "widths": [3], "seeds": [123], "shortcut": [True, False],
        "devices": ["cpu"], "seeds_per_job": 7, "healthy_band": 1.5,
        "branch_scales": ["1/sqrt(depth)", 0.5]}


def test_a_config_files_text_is_not_coerced():
    # "5" in a YAML file is a mistake to report, not a value to guess at.
    config = {"depths": ["5"], "widths": [3], "seeds": [1]}
    with pytest.raises(ConfigError, match=r"depths\[0\]"):
        validate_config(copy.deepcopy(config), str(SCHEMA), file_config=copy.deepcopy(config))


@pytest.mark.slow
def test_config_on_the_command_line_edits_the_default_sweep(tmp_path):
    result = dry_run(tmp_path, "--config", "depths=[1,2]", "widths=[3]", "seeds=[1,2]",
                     "shortcut=[true]", "devices=cpu")
    assert result.returncode == 0, result.stdout
    jobs = planned_jobs(result.stdout)
    assert jobs["measure"] >= 1 and "train" in jobs  # the default config's training stays


@pytest.mark.slow
def test_text_that_is_not_the_type_gets_a_hint_and_no_traceback(tmp_path):
    result = dry_run(tmp_path, "--config", "depths=[1,x]")
    assert result.returncode != 0
    assert "config key depths[1]: 'x' is not of type 'integer'" in result.stdout
    assert "write lists as depths=[1,2]" in result.stdout
    assert 'File "' not in result.stdout and "Traceback" not in result.stdout
    assert not (tmp_path / "results").exists()


def test_models_typed_without_the_mlp_skips_its_studies_and_training_with_a_note():
    files = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert files["studies"] and files["training"].get("enabled", True)
    sweep = validate_config({**copy.deepcopy(files), "models": "[gpt]"}, str(SCHEMA),
                            file_config=copy.deepcopy(files))
    assert sweep["models"] == ["gpt"] and sweep["studies"] == {}
    assert sweep["training"]["enabled"] is False
    assert [n.split(": ")[1].split(",")[0] for n in sweep["notes"]] == [
        "the config file's studies (branch_scale", "the config file's training runs"]
    # written in a config file, the same is a mistake to report
    with pytest.raises(ConfigError, match="studies: the studies are further sweeps of mlp"):
        validate_config({**copy.deepcopy(files), "models": ["gpt"]}, str(SCHEMA))


@pytest.mark.slow
def test_models_on_the_command_line_runs_one_family_of_the_default_sweep(tmp_path):
    result = dry_run(tmp_path, "--config", "models=[resnet]")
    assert result.returncode == 0, result.stdout
    assert "Note: models=[resnet] leaves out mlp" in result.stdout
    jobs = planned_jobs(result.stdout)
    assert "train" not in jobs and jobs["merge"] == 1 and "figures" not in jobs
    assert jobs["measure"] >= 1 and jobs["report"] == 1


# ------------------------------------------------------------ --configfile

@pytest.mark.slow
def test_a_config_file_without_optional_keys_takes_the_defaults(tmp_path):
    result = dry_run(tmp_path, config={"depths": [2], "widths": [3], "seeds": [1]})
    assert result.returncode == 0, result.stdout
    assert "activation~gelu_tanh" in result.stdout


@pytest.mark.slow
def test_a_config_file_replaces_the_default_sweep(tmp_path):
    # Pins the behaviour the Snakefile builds on (workflow.configfiles holds
    # the command line's files before a configfile: directive runs): the
    # default config's studies and training do not leak into a small sweep.
    small = {k: v for k, v in SMALL_CONFIG.items() if k != "training"}
    jobs = planned_jobs(dry_run(tmp_path, config=small).stdout)
    assert "train" not in jobs
    assert jobs["merge"] == 1  # the main sweep only: no studies


# ------------------------------------------------------------ errors

@pytest.mark.slow
def test_a_config_error_shows_its_message_alone(tmp_path):
    result = dry_run(tmp_path, config={"depths": [2], "widths": [3], "seeds": [1],
                                       "devices": ["tpu9"]})
    assert result.returncode != 0
    assert "ConfigError: Invalid config; nothing was run." in result.stdout
    assert "devices[0]: 'tpu9'" in result.stdout
    assert 'File "' not in result.stdout and "line " not in result.stdout.split("ConfigError")[1]


# ------------------------------------------------------------ profiles

def test_the_job_grouping_lives_in_the_workflow_profile():
    site = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    workflow = yaml.safe_load((REPO / "workflow/profiles/default/config.yaml").read_text())
    assert "group-components" not in site and site["executor"] == "slurm"
    assert workflow["group-components"] == {"measure-cpu": 8}


# ------------------------------------------------------------ --report in the runtime env

def modules_not_in(requirements):
    """Top-level modules of the installed distributions that `requirements`
    (a pip freeze) does not name: what `make test-env` adds to `make env`."""
    import importlib.metadata

    def canonical(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    runtime = {"shortcutbench", "pip", "setuptools", "wheel"}
    for line in requirements.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            runtime.add(canonical(re.split(r"[=<>!~\[; ]", line)[0]))
    return sorted(module for module, dists in importlib.metadata.packages_distributions().items()
                  if not any(canonical(dist) in runtime for dist in dists))


# Imported at every interpreter's start (PYTHONPATH): the test tools' modules
# then fail to import as if they were not installed.
HIDE_MODULES = """\
import sys
HIDDEN = set({modules!r})
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            raise ModuleNotFoundError(f"No module named {{name!r}} (a test tool)", name=name)
sys.meta_path.insert(0, Hide())
"""


@pytest.mark.slow
def test_snakemakes_own_report_works_in_the_runtime_environment(tmp_path):
    """`make env`'s environment alone (requirements.txt and the package, no
    test tools) runs the sweep and builds `snakemake --report`: this venv,
    with every module requirements.txt does not pin hidden.  (That
    requirements.txt installs alone, `make test-env` shows: it installs it
    first, by itself.)"""
    hidden = tmp_path / "hidden"
    hidden.mkdir()
    modules = modules_not_in(REPO / "requirements.txt")
    assert {"pytest", "playwright", "hypothesis"} <= set(modules)
    (hidden / "sitecustomize.py").write_text(HIDE_MODULES.format(modules=modules))
    env = {**snakemake_environment(), "PYTHONPATH": str(hidden),
           "PATH": f"{BIN}:/usr/bin:/bin"}
    probe = subprocess.run([str(BIN / "python"), "-c", "import pytest"], env=env,
                           text=True, capture_output=True)
    assert "No module named 'pytest' (a test tool)" in probe.stderr  # the hiding works
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "c.yaml").write_text(yaml.safe_dump(
        {"depths": [2, 5], "widths": [3], "seeds": [123], "devices": ["cpu"]}))
    base = [str(BIN / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", str(workdir),
            "--cores", "2", "--configfile", str(workdir / "c.yaml")]
    run = subprocess.run(base, env=env, text=True, capture_output=True)
    assert run.returncode == 0, run.stderr[-3000:]
    report = subprocess.run([*base, "--report", str(workdir / "report.zip")], env=env,
                            text=True, capture_output=True)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (workdir / "report.zip").stat().st_size > 10_000


# ------------------------------------------------- a new family, one module

class TinyResidualNet(torch.nn.Module):
    """depth linear layers of width 4, each with its own residual add."""

    def __init__(self, depth, shortcut):
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(depth))
        self.shortcut = shortcut

    def forward(self, x):
        for layer in self.layers:
            x = x + torch.tanh(layer(x)) if self.shortcut else torch.tanh(layer(x))
        return x


class TinyFamily(Family):
    """The whole measuring side of a new family: its build and its layers."""
    name = "tiny"
    mode = "eval"

    def build(self, depth, shortcut, norm, options):
        model = TinyResidualNet(depth, shortcut)
        return model, (torch.randn(8, 4),), lambda out: out.pow(2).mean()

    def layer_of(self, name, depth):
        return int(name.split(".")[1])


TINY = FamilySpec(
    "tiny", "A tiny residual net", "layers", "tiny", Layout(profile=r"layers\.\d+\.weight"),
    f"{__name__}:TinyFamily",
    fields={"width": 4, "activation": "tanh", "init": "pytorch", "norm": "none"},
    memory=lambda section, dtype, checked: 300, order=10)


@pytest.fixture
def tiny_family():
    """The family registered the way its own module would register it."""
    registered = families.register_family(TINY)
    yield registered
    families.SPECS.pop(registered.name)


def test_a_family_of_one_module_runs_through_the_same_runner(tiny_family, tmp_path):
    assert "tiny" in families.SHIPPED and families.spec("tiny") is tiny_family
    chunk = Chunk("tiny", "", "cpu", "float32", (0, 1), (2, 6), (False, True), ("none",),
                  options={})
    paths = {name: tmp_path / name for name in ("records.parquet", "machine.json",
                                                "partial.json")}
    run_chunk(chunk.params(), paths["records.parquet"], paths["machine.json"], progress=None,
              partial_path=paths["partial.json"])
    merged = merge_sweep([paths["partial.json"]], [paths["records.parquet"]], [chunk.params()],
                         2.0, tmp_path / "partials.json", tmp_path / "summary.csv",
                         tmp_path / "lines.csv")
    assert merged["family_seeds"] == {"tiny": [0, 1]}
    numbers = family_numbers(read_partials(tmp_path / "partials.json"), "tiny")
    # every cell is counted in one state, at both depths, with and without shortcut
    counted = {(r["depth"], r["arm"]["shortcut"]): sum(r["counts"].values())
               for r in numbers["states"]}
    assert counted == {(depth, flag): 2 for depth in (2, 6) for flag in (False, True)}
    assert numbers["title"] == "A tiny residual net" and numbers["deepest"] == 6
