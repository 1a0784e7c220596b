"""Model families through the real workflow (issue 17): families without
the MLP, a user's own family from config alone (its numbers the same
computation done directly, bit for bit; its module never imported by the
analysis), and a bad family refused before any job with nothing written."""

import json
import shutil

import pytest
import torch
from conftest import REPO, snakemake

from shortcutbench.core.store import read_records

pytestmark = pytest.mark.slow

EXAMPLE = REPO / "examples" / "highway"
TINY_GPT = {"blocks": [1, 2], "emb_dim": 16, "n_heads": 2, "vocab_size": 32,
            "context_length": 16, "n_tokens": 8, "seeds": [0, 1]}
TINY_RESNET = {"depths": [8, 14], "seeds": [0, 1, 2], "batch_size": 4}
HIGHWAY = {"factory": "highway:build", "depths": [2, 6], "seeds": [3, 4],
           "shortcut": [False, True], "options": {"width": 8, "batch": 4},
           "blocks": r"blocks\.(\d+)\.", "mode": "eval"}
# The module, with a record of every process that imports it.
TRACKER = """
import os as _os
import sys as _sys
with open(_os.path.join(_os.path.dirname(__file__), "importers.txt"), "a") as _f:
    _f.write(" ".join(_sys.argv) + "\\n")
"""


@pytest.fixture(scope="module")
def without_mlp(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("no_mlp")
    snakemake(workdir, {"models": ["gpt", "resnet"], "devices": ["cpu"], "gpt": TINY_GPT,
                        "resnet": TINY_RESNET})
    return workdir


def test_families_run_without_the_mlp(without_mlp):
    results = without_mlp / "results"
    assert not (results / "tables.json").exists()  # the MLP's tables: no MLP, none
    html = (without_mlp / "report" / "index.html").read_text()
    assert '<section id="family-gpt">' in html and '<section id="family-resnet">' in html
    assert '<section id="mlp">' not in html and '<section id="book">' not in html
    numbers = json.loads((results / "families.json").read_text())
    names = [f["name"] for f in numbers["families"]]
    assert names == ["gpt", "resnet"]
    gpt, res = numbers["families"]
    assert gpt["depths"] == [1, 2] and gpt["seeds"] == [0, 1] and gpt["extra"]["collapse"]
    assert res["depths"] == [8, 14] and res["n_cells"] == 2 * 3 * 2
    assert (results / "figures" / "family" / "gpt" / "collapse.svg").exists()
    laws = {f["key"]: f for f in json.loads((results / "laws.json").read_text())}
    assert set(laws) == {"batchnorm", "xiong"}  # the MLP's findings need the MLP
    assert laws["batchnorm"]["verdict"] in ("agrees", "close", "differs")
    assert laws["xiong"]["verdict"] == "not measured" and "gpt.blocks" in laws["xiong"]["missing"]
    for name in ("resnet", "gpt"):
        assert list((results / "cells" / f"model~{name}").rglob("*.parquet"))


@pytest.fixture(scope="module")
def own_family(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("own_family")
    (workdir / "highway.py").write_text(TRACKER + (EXAMPLE / "highway.py").read_text())
    snakemake(workdir, {"models": ["highway"], "devices": ["cpu"],
                        "families": {"highway": HIGHWAY}}, "all", "results/gradients.csv")
    return workdir


def direct(depth, seed, shortcut):
    """The contract done by hand: seed, build, eval, forward, one backward
    pass, every named parameter's mean |grad| and L2 norm."""
    import highway

    torch.manual_seed(seed)
    model, inputs, loss_fn = highway.build(depth=depth, shortcut=shortcut, width=8, batch=4)
    model.eval()
    loss = loss_fn(model(*inputs))
    loss.backward()
    return [(name, p.numel(), p.grad.abs().mean().item(),
             torch.linalg.vector_norm(p.grad, dtype=torch.float64).item(), loss.item())
            for name, p in model.named_parameters()]


def test_a_user_family_gets_the_full_study_from_config_alone(own_family, monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    chunk = own_family / "results" / "cells" / "model~highway" / "device~cpu" / \
        "dtype~float32" / "seeds~3-4.parquet"
    rows = read_records(chunk).to_pylist()
    measured = {}
    for r in rows:
        measured.setdefault((r["depth"], r["seed"], r["shortcut"]), []).append(
            (r["param"], r["numel"], r["grad_abs_mean"], r["grad_l2"], r["loss"]))
    assert len(measured) == 2 * 2 * 2
    for (depth, seed, shortcut), records in measured.items():
        assert records == direct(depth, seed, shortcut), (depth, seed, shortcut)
    layers = {r["param"]: r["layer"] for r in rows if r["depth"] == 6 and r["shortcut"]}
    assert layers["blocks.5.gate.weight"] == 5 and layers["head.weight"] == -1
    html = (own_family / "report" / "index.html").read_text()
    assert '<section id="family-highway">' in html and "highway:build" in html
    # the plain net has no gates: a cell's rows are those of its arm's architecture
    with open(own_family / "results" / "gradients.csv") as f:
        assert sum(1 for _ in f) - 1 == len(rows)
    numbers = json.loads((own_family / "results" / "families.json").read_text())
    assert numbers["families"][0]["name"] == "highway"
    # its head is in no block: listed, with why; its section can say zero-branch
    assert [(p["param"], p["side"]) for p in numbers["families"][0]["outside"]] == [
        ("head.weight", "after"), ("head.bias", "after")]
    assert "<code>head.weight</code>" in html and "after the last block" in html
    assert "zero-branch" in numbers["families"][0]["states_order"] and "SkipInit" in html


def test_the_analysis_never_imports_the_users_module(own_family):
    importers = (own_family / "importers.txt").read_text().splitlines()
    assert importers  # the check and the measuring jobs did
    assert {program(argv) for argv in importers} == {"measure", "user_family"}, importers


def program(argv):
    """A process's program from its sys.argv: a measuring job's script
    (.snakemake/scripts/tmpXXXX.measure.py) or the check (.../user_family.py)."""
    name = argv.split()[0].rsplit("/", 1)[-1]
    return name.removesuffix(".py").rsplit(".", 1)[-1]


@pytest.mark.parametrize("change, module, words", [
    ({"blocks": r"layers\.(\d+)\."}, None,
     ["config key families.highway.blocks:", "matches none of the parameter names"]),
    ({"factory": "highway_typo:build"}, None,
     ["config key families.highway.factory:", "highway_typo"]),
    ({}, "import no_such_package\n", ["config key families.highway.factory:",
                                       "no_such_package"]),
    ({}, "def build(depth, shortcut, **options):\n    raise ValueError('width too small')\n",
     ["config key families.highway", "width too small"]),
], ids=["blocks match nothing", "no such module", "module fails to import",
        "factory raises"])
def test_a_bad_user_family_is_refused_before_any_job(tmp_path, change, module, words):
    shutil.copy(EXAMPLE / "highway.py", tmp_path / "highway.py")
    if module is not None:
        (tmp_path / "highway.py").write_text(module)
    result = snakemake(tmp_path, {"models": ["highway"], "devices": ["cpu"],
                                  "families": {"highway": {**HIGHWAY, **change}}}, check=False)
    assert result.returncode != 0
    for word in words:
        assert word in result.stdout, result.stdout[-3000:]
    assert "Traceback" not in result.stdout
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
