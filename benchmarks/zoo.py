"""What the zoo's families (config/zoo.yaml: transformers and timm models)
and the generic shortcut switch cost, printed (nothing asserted).

    .venv/bin/python benchmarks/zoo.py [--no-workflow]

1. per cell, through the contract's runner, at a middle depth of each zoo
   family: with its shortcuts as built (no switch), and without them by the
   generic switch (its plan made once per depth, as a job does), median of
   several runs, and their ratio; and the book's GPT and the CIFAR ResNet
   without shortcuts by their own argument against the generic switch on
   their with-shortcut models;
2. each zoo family's check (core/family_check.py: the process that builds
   and measures its smallest cells before any job), beside the time to
   import its library alone, in fresh processes;
3. config/zoo.yaml through the real workflow from an empty directory: its
   wall time (unless --no-workflow).

One intra-op thread throughout, as measuring jobs run.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from shortcutbench.core import families  # noqa: E402
from shortcutbench.core.config import validate_config  # noqa: E402
from shortcutbench.measuring.family import Family, configure_torch, family_of  # noqa: E402

sys.path.insert(0, str(REPO / "benchmarks"))
from families import REPEATS, median_time  # noqa: E402  (benchmarks/families.py)

ZOO = yaml.safe_load((REPO / "config" / "zoo.yaml").read_text())
SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def cell(model, depth, shortcut, options, norm="-"):
    fields = families.spec(model).cell_fields(options)
    return {"model": model, "depth": depth, "seed": 0, "shortcut": shortcut,
            "shortcut_scale": 1.0 if shortcut else 0.0, "branch_scale": "1",
            "device": "cpu", "dtype": "float32", **fields, "norm": fields.get("norm", norm)}


def per_cell():
    print(f"1. per cell (median of {REPEATS}), as built against the generic switch without "
          f"shortcuts")
    sweep = validate_config(json.loads(json.dumps(ZOO)), SCHEMA)
    for name, section in families.sections(sweep).items():
        depths = sorted(section["depths"])
        depth = depths[len(depths) // 2]
        options = families.spec(name).options(section)
        family = family_of(name, options)
        built = median_time(family, cell(name, depth, True, options), options)
        switched = median_time(family, cell(name, depth, False, options), options)
        print(f"   {name:18s} depth {depth:2d}: {built * 1e3:7.1f} ms with shortcuts, "
              f"{switched * 1e3:7.1f} ms without by the switch: {switched / built:.2f}x")
    print("   the shipped families without shortcuts: their own argument against the generic "
          "switch on the with-shortcut model")
    for name, depth, norm, options in (
            ("gpt", 8, "pre_layernorm", {k: DEFAULT["gpt"][k] for k in families.gpt.MODEL_KEYS}),
            ("resnet", 20, "batchnorm", {"batch_size": DEFAULT["resnet"]["batch_size"]})):
        family = family_of(name, options)
        own = median_time(family, cell(name, depth, False, options, norm), options)
        generic = median_time(_Switched(family), cell(name, depth, False, options, norm), options)
        print(f"   {name:18s} depth {depth:2d}: {own * 1e3:7.1f} ms by its own argument, "
              f"{generic * 1e3:7.1f} ms by the generic switch: {generic / own:.2f}x")


class _Switched(Family):
    """A shipped family built with its shortcuts and switched off by the
    generic switch (its spec's switch_blocks), as a family without a
    shortcut argument is."""

    own_switch = False

    def __init__(self, family):
        self.family, self.name, self.mode = family, family.name, family.mode

    def build(self, depth, shortcut, norm, options):
        return self.family.build(depth, True, norm, options)

    def layer_of(self, name, depth):
        return self.family.layer_of(name, depth)

    def watch(self, model, depth):  # the same work as the family's own cells
        return self.family.watch(model, depth)


CHECK = """
import json, sys, time
started = time.perf_counter()
from shortcutbench.core.family_check import check_user_families
from shortcutbench.core.config import validate_config
config = validate_config(json.loads(sys.argv[1]), sys.argv[2])
check_user_families(config, sys.argv[3])
print(time.perf_counter() - started)
"""
IMPORT = """
import json, sys, time
started = time.perf_counter()
from shortcutbench.measuring import zoo
zoo.factory(json.loads(sys.argv[1]), "families.x")  # the library and the model's module
print(time.perf_counter() - started)
"""


def seconds(code, *args):
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          check=True, cwd=REPO)
    return float(done.stdout.strip().splitlines()[-1])


def checks():
    print("2. each zoo family's check against importing its library and model module alone, "
          "fresh processes")
    for name, section in ZOO["families"].items():
        config = {"models": [name], "devices": ["cpu"], "families": {name: section}}
        with tempfile.TemporaryDirectory() as workdir:  # no kept check
            check = seconds(CHECK, json.dumps(config), SCHEMA, workdir)
        imported = seconds(IMPORT, json.dumps(section))
        print(f"   {name:18s} check {check:5.1f} s, import {imported:4.1f} s: "
              f"+{check - imported:4.1f} s")


def workflow():
    print("3. config/zoo.yaml through the real workflow, from an empty directory")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        subprocess.run([str(bin_dir / "snakemake"), "-s", str(REPO / "Snakefile"), "-d", workdir,
                        "--cores", "4", "-q", "--configfile", str(REPO / "config" / "zoo.yaml")],
                       check=True, capture_output=True,
                       env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
        print(f"   {time.perf_counter() - started:.1f} s (--cores 4)")


if __name__ == "__main__":
    configure_torch()
    per_cell()
    checks()
    if "--no-workflow" not in sys.argv:
        workflow()
