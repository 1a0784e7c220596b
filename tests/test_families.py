"""Model families through one contract (issue 17): the registry and the
chunks, He et al.'s ResNet, the contract's runner on every family, the
generic per-cell values and states, and a user family's check before any
job."""

import copy
import hashlib
import math
import shutil
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import REPO

from shortcutbench.core import cell_stats, families, family_check, partials
from shortcutbench.core.config import ConfigError, validate_config
from shortcutbench.core.families import resnet, user
from shortcutbench.core.records import COLUMNS
from shortcutbench.core.resources import BASELINE_MB
from shortcutbench.core.sweep import (
    CHUNK_PATTERN,
    plan_chunks,
    records_mb,
)
from shortcutbench.measuring import family as runner
from shortcutbench.measuring.family import configure_torch, measure_chunk
from shortcutbench.measuring.mlp.family import MLPFamily
from shortcutbench.measuring.resnet import ResNet, ResNetFamily
from shortcutbench.measuring.user_family import FamilyError, check

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
EXAMPLE = REPO / "examples" / "highway"
TINY_GPT = {"blocks": [1, 2], "emb_dim": 16, "n_heads": 2, "vocab_size": 32,
            "context_length": 16, "n_tokens": 8, "seeds": [0, 1]}


@pytest.fixture(autouse=True)
def one_thread():
    configure_torch()


# ---------------------------------------------------------------- config, chunks

def test_models_default_to_the_mlp_and_any_subset_runs():
    plain = {"depths": [1], "widths": [3], "seeds": [1]}
    validate_config(plain, SCHEMA)
    assert plain["models"] == ["mlp"]
    gpt_only = validate_config({"models": ["gpt"], "gpt": TINY_GPT, "devices": ["cpu"]}, SCHEMA)
    chunks = plan_chunks(gpt_only, "/nonexistent")
    assert [c.model for c in chunks] == ["gpt"]
    assert sum(len(c.cells()) for c in chunks) == 2 * 2 * 3 * 2
    # the GPT's defaults, when its section names nothing
    section = validate_config({"models": ["gpt"]}, SCHEMA)["gpt"]
    assert section["blocks"] == [1, 2, 4, 8, 16, 32, 48, 64] and section["emb_dim"] == 64


def test_every_familys_chunks_have_paths_the_measure_rule_matches(tmp_path):
    import re

    config = {"depths": [1], "widths": [3], "seeds": [1], "devices": ["cpu"],
              "models": ["mlp", "gpt", "resnet", "mine"], "gpt": TINY_GPT,
              "resnet": {"depths": [8, 20], "seeds": [0, 1, 2], "seeds_per_job": 2},
              "families": {"mine": {"factory": "my_models:build", "depths": [2, 4],
                                    "seeds": [5], "blocks": r"blocks\.(\d+)\.",
                                    "mem_mb": 700, "dtypes": ["float64"]}}}
    chunks = plan_chunks(validate_config(config, SCHEMA), tmp_path)
    names = sorted(c.name for c in chunks)
    assert "cells/model~resnet/device~cpu/dtype~float32/seeds~0-1" in names
    assert "cells/model~resnet/device~cpu/dtype~float32/seeds~2" in names
    assert "cells/model~mine/device~cpu/dtype~float64/seeds~5" in names
    assert all(re.fullmatch(CHUNK_PATTERN, n) for n in names)
    mine = next(c for c in chunks if c.model == "mine")
    assert mine.mem_mb() == 700  # the family's own estimate, where it gives one
    assert mine.params()["options"] == {"factory": "my_models:build", "options": {},
                                        "blocks": r"blocks\.(\d+)\.", "mode": "eval",
                                        "source_sha256": None}  # no such module here
    cell = mine.cells()[0]
    assert (cell["model"], cell["width"], cell["activation"], cell["norm"]) == \
        ("mine", 0, "-", "-")
    res = next(c for c in chunks if c.model == "resnet")
    assert res.cells()[0]["norm"] == "batchnorm" and res.cells()[0]["init"] == "kaiming_normal"
    assert res.mem == resnet.mem_mb(20, 16)  # its biggest cell's; its job's adds its records
    assert res.mem_mb() == res.mem + records_mb(res)


@pytest.mark.parametrize("change, words", [
    ({"models": ["mine"]}, ["models: 'mine' is neither a shipped family",
                            "describe it under families.mine"]),
    ({"models": ["gpt"], "families": {"gpt": {"factory": "a:b", "depths": [1], "seeds": [0],
                                              "blocks": "(x)"}}},
     ["families.gpt: 'gpt' is the name of a shipped family", "another name"]),
    ({"models": ["resnet"], "resnet": {"depths": [21]}},
     ["resnet.depths: 21 is not 6n+2", "8, 14, 20"]),
    ({"models": ["m"], "families": {"m": {"factory": "a:b", "depths": [1], "seeds": [0],
                                          "blocks": "blocks"}}},
     ["families.m.blocks: 'blocks' has no group", "in parentheses"]),
    ({"models": ["m"], "families": {"m": {"factory": "a:b", "depths": [1], "seeds": [0],
                                          "blocks": "(b[)"}}},
     ["families.m.blocks: '(b[)' is not a regular expression"]),
    ({"models": ["m"], "families": {"m": {"factory": "a.b", "depths": [1], "seeds": [0],
                                          "blocks": "(b)"}}},
     ["families.m.factory: 'a.b' does not match", "module:function"]),
    ({"models": ["gpt"], "studies": {"s": {"depths": [2]}}},
     ["studies: the studies are further sweeps of mlp", "add mlp to models, or remove studies"]),
    ({"models": ["gpt"], "training": {"depths": [2]}},
     ["training: the training runs are further sweeps of mlp"]),
])
def test_a_bad_family_config_is_refused_naming_the_key(change, words):
    with pytest.raises(ConfigError) as error:
        validate_config({"devices": ["cpu"], **change}, SCHEMA)
    for word in words:
        assert word in str(error.value)


# ---------------------------------------------------------------- the ResNet

@pytest.mark.parametrize("depth, table_6", [(20, 0.27e6), (32, 0.46e6), (44, 0.66e6),
                                           (56, 0.85e6), (110, 1.7e6)])
def test_resnet_parameters_are_he_et_als_table_6(depth, table_6):
    with torch.device("meta"):
        counted = sum(p.numel() for p in ResNet(depth).parameters())
    assert counted == resnet.n_parameters(depth)
    assert round(counted / 1e6, 2 if depth < 110 else 1) == pytest.approx(table_6 / 1e6)


def test_option_a_shortcuts_have_no_parameters():
    def named(shortcut):
        torch.manual_seed(1)
        return dict(ResNet(20, shortcut).named_parameters())

    plain, residual = named(False), named(True)
    assert list(plain) == list(residual)
    assert all(torch.equal(plain[k], residual[k]) for k in plain)
    # where the shape changes, the shortcut subsamples and zero-pads
    block = ResNet(20).stages[1][0]
    x = torch.randn(2, 16, 8, 8)
    out = block.option_a(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2]) and not out[:, :8].any()


def test_resnet_layers_are_the_weighted_layers():
    names = [n for n, _ in ResNet(20).named_parameters()]
    layers = {n: resnet.layer_of(n, 20) for n in names}
    assert layers["stem.conv.weight"] == layers["stem.bn.bias"] == 0
    assert layers["stages.0.0.conv1.weight"] == layers["stages.0.0.bn1.weight"] == 1
    assert layers["stages.0.0.conv2.weight"] == 2
    assert layers["stages.2.2.conv2.weight"] == 18 and layers["fc.weight"] == 19
    assert sorted(set(layers.values())) == list(range(20))
    assert resnet.fit_stages(20) == [-1] + [0] * 6 + [1] * 6 + [2] * 6 + [-1]
    with pytest.raises(ValueError, match="depths: 21 is not 6n"):
        resnet.blocks_per_stage(21)


def test_the_resnet_memory_estimate_covers_what_a_cell_keeps():
    """What autograd keeps of a ResNet-56 cell (counted by a saved-tensors
    hook) is within the estimate's activations."""
    family = ResNetFamily()
    torch.manual_seed(0)
    model, inputs, loss_fn = family.build(56, False, "batchnorm", {"batch_size": 4})
    model.train()
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss_fn(model(*inputs))
    estimated = resnet.SAVED_PER_ACTIVATION * resnet.activations_per_image(56) * 4 * 4
    assert saved[0] <= estimated <= 1.3 * saved[0]


# ---------------------------------------------------------------- the contract

def test_the_mlp_through_the_contract_equals_its_fast_path():
    """The book's network measured by the generic runner (nn.Module,
    backward(), per-parameter statistics) has the fast path's mean |grad|
    per layer, bit for bit: one contract, and a faster road to the same
    numbers."""
    from shortcutbench.core.records import Cell
    from shortcutbench.measuring.mlp.exact import measure_cell

    for depth, shortcut, seed in [(5, False, 123), (5, True, 123), (12, True, 7)]:
        cell = Cell(depth, 3, seed, shortcut, 1.0 if shortcut else 0.0)
        fast = measure_cell(cell)
        fields = {"model": "mlp", "depth": depth, "width": 3, "seed": seed,
                  "shortcut": shortcut, "shortcut_scale": 1.0 if shortcut else 0.0,
                  "branch_scale": "1", "activation": "gelu_tanh", "init": "pytorch",
                  "norm": "none", "device": "cpu", "dtype": "float32"}
        generic = runner.measure_cell(MLPFamily(), fields, {"width": 3})
        weights = [r for r in generic if r["param"].endswith("weight")]
        assert [r["grad_abs_mean"] for r in weights] == [r["grad_abs_mean"] for r in fast]
        assert [r["grad_l2"] for r in weights] == [r["grad_l2"] for r in fast]
        assert [r["numel"] for r in weights] == [r["numel"] for r in fast]
        assert [r["layer"] for r in weights] == list(range(depth))


def test_a_resnet_chunk_gives_one_record_per_parameter_and_states():
    params = {"model": "resnet", "device": "cpu", "dtype": "float32", "seeds": [0, 1],
              "depths": [8, 20], "shortcuts": [False, True], "norms": ["batchnorm"],
              "options": {"batch_size": 4}}
    records = measure_chunk(params, progress=None)
    assert all(list(r) == COLUMNS for r in records)
    per_cell = len(list(ResNet(8).parameters())) * 4 + len(list(ResNet(20).parameters())) * 4
    assert len(records) == per_cell
    assert {r["layer"] for r in records if r["depth"] == 8} == set(range(8))
    part = partials.chunk_partials(records)
    rows = [dict(zip(part["cells"]["columns"], r)) for r in part["cells"]["rows"]]
    assert len(rows) == 4 and all(r["n_cells"] == 2 for r in rows)
    # the plain net's per-layer factor is near Yang et al.'s sqrt(pi / (pi - 1))
    plain20 = next(r for r in rows if r["depth"] == 20 and not r["shortcut"])
    assert 10 ** plain20["log10_factor_mean"] == pytest.approx(1.2, abs=0.06)
    blocks = [dict(zip(part["blocks"]["columns"], r)) for r in part["blocks"]["rows"]]
    assert sorted({b["layer"] for b in blocks if b["depth"] == 20}) == list(range(20))
    # its head (fc, layer 19 of 20) is in the profile; the last layer is the
    # last block's conv, layer 18
    block = {(b["depth"], b["shortcut"], b["layer"]): b["log10_mean"] for b in blocks}
    assert plain20["log10_last_grad_mean"] == pytest.approx(block[20, False, 18], rel=1e-12)
    assert plain20["log10_last_grad_mean"] != pytest.approx(block[20, False, 19], rel=1e-3)


def test_an_edit_to_the_users_module_changes_its_chunks_params(tmp_path, monkeypatch):
    """The module's source is in the chunks' params (Snakemake re-runs a job
    whose params changed), found without importing it or its package."""
    package = tmp_path / "lab"
    package.mkdir()
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    (package / "nets.py").write_text("def build(depth, shortcut, **options): ...\n")
    monkeypatch.chdir(tmp_path)
    config = {"depths": [1], "widths": [3], "seeds": [1], "devices": ["cpu"], "models": ["m"],
              "families": {"m": {"factory": "lab.nets:build", "depths": [2], "seeds": [5],
                                 "blocks": r"blocks\.(\d+)\.", "mem_mb": 600}}}

    def source_sha256():
        chunk, = plan_chunks(validate_config(copy.deepcopy(config), SCHEMA), tmp_path)
        return chunk.params()["options"]["source_sha256"]

    before = source_sha256()
    assert before == hashlib.sha256((package / "nets.py").read_bytes()).hexdigest()
    assert source_sha256() == before
    (package / "nets.py").write_text("def build(depth, shortcut, **options): return 1\n")
    assert source_sha256() not in (before, None)


def test_a_user_block_is_the_element_weighted_mean_of_its_parameters():
    layout = families.layout("mine")
    columns = {"layer": [-1, 0, 0, 1, 1], "param": ["emb", "blocks.0.a", "blocks.0.b",
                                                    "blocks.1.a", "blocks.1.b"],
               "grad_abs_mean": [9.0, 1.0, 4.0, 0.1, 0.1], "numel": [5, 3, 1, 2, 2],
               "depth": [2] * 5, "shortcut": [True] * 5, "norm": ["-"] * 5,
               "output_rms": [math.nan] * 5}
    (cells, layers, values, _), = cell_stats.profile_matrix(columns, [0], layout).values()
    assert layers.tolist() == [0, 1]
    assert values[0].tolist() == [(1.0 * 3 + 4.0 * 1) / 4, 0.1]


def test_a_user_family_without_head_or_stream_is_judged_by_its_blocks():
    """No head, no stream: every block in the band, the last its reference;
    a block of exactly 0 vanished, one 10^3 above the last exploded."""
    def cell(grads, seed):
        return [{"model": "mine", "depth": len(grads), "width": 0, "seed": seed,
                 "shortcut": True, "shortcut_scale": 1.0, "branch_scale": "1",
                 "activation": "-", "init": "-", "norm": "-", "device": "cpu",
                 "dtype": "float32", "layer": i, "param": f"blocks.{i}.w", "numel": 4,
                 "grad_abs_mean": g, "grad_l2": g, "bias_grad_abs_mean": math.nan,
                 "output_rms": math.nan, "grad_stream_cos": math.nan, "loss": 1.0,
                 "output": math.nan, "token_cosine": math.nan, "finite": True}
                for i, g in enumerate(grads)]

    records = cell([1.0, 0.5, 0.2], 0) + cell([1e3, 1.0, 1.0], 1) + cell([0.0, 1, 1], 2)
    part = partials.chunk_partials(records)
    row = dict(zip(part["cells"]["columns"], part["cells"]["rows"][0]))
    assert (row["state_healthy"], row["state_exploded"], row["state_vanished"]) == (1, 1, 1)
    assert 10 ** row["log10_factor_mean"] > 1  # the gradient grows toward the input


# ---------------------------------------------------------------- a user family's check

@pytest.fixture
def workdir(tmp_path):
    """A run's directory holding the example family's module."""
    shutil.copy(EXAMPLE / "highway.py", tmp_path / "highway.py")
    return tmp_path


SECTION = {"factory": "highway:build", "depths": [2, 4], "seeds": [0, 1],
           "shortcut": [False, True], "options": {"width": 8, "batch": 4},
           "blocks": r"blocks\.(\d+)\.", "mode": "eval"}


def test_the_example_family_passes_its_check_and_is_counted(workdir):
    facts = check("highway", SECTION, str(workdir))
    assert facts["blocks"] == [0, 1]
    # at the largest depth, counted on the meta device: 4 gated layers and a head
    assert facts["parameters"] == 4 * 2 * (8 * 8 + 8) + 8 * 10 + 10
    assert facts["parameter_bytes"] == 4 * facts["parameters"] and facts["saved_bytes"] > 0


# A net of `depth` linear blocks, put where a module's text says #NET.
NET = """import torch
class Net(torch.nn.Module):
    def __init__(self, depth):
        super().__init__()
        self.blocks = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(depth)])
    def forward(self, x):
        return self.blocks(x)
"""


def write_module(workdir, body):
    (workdir / "broken.py").write_text(textwrap.dedent(body).replace("#NET\n", NET))
    sys.modules.pop("broken", None)


@pytest.mark.parametrize("change, body, key, words", [
    ({"factory": "nowhere:build"}, None, "families.t.factory",
     ["no module 'nowhere' in the run's working directory", "PYTHONPATH"]),
    ({"factory": "highway:make"}, None, "families.t.factory",
     ["has no function 'make'"]),
    ({"options": {"width": 8, "colour": "red"}}, None, "families.t.options",
     ["does not take these keyword arguments", "colour"]),
    ({"blocks": r"layers\.(\d+)\."}, None, "families.t.blocks",
     # the pattern as written, the factory as configured, a fix read from the names
     ["'layers\\.(\\d+)\\.' matches none",
      "parameter names of highway:build(depth=2, shortcut=False",
      "blocks.0.transform.weight", "e.g. 'blocks\\.(\\d+)\\.', read from these names"]),
    ({"blocks": r"(\w+)\.\d+\."}, None, "families.t.blocks",
     ["the groups of", "are ('blocks',) in the parameter", "not a block's number"]),
    ({"blocks": r"(blocks)\.(\d+)\."}, None, "families.t.blocks",
     ["the groups of", "are ('blocks', '0') in the parameter", "not a block's number"]),
    ({"factory": "broken:build", "options": {}}, """
        def build(depth, shortcut):
            raise RuntimeError("out of ideas")
        """, "families.t.factory", ["broken:build(depth=2, shortcut=False) raised "
                                    "RuntimeError: out of ideas"]),
    ({"factory": "broken:build", "options": {}}, """
        import random
        #NET
        def build(depth, shortcut):
            model = Net(depth)
            with torch.no_grad():
                model.blocks[0].weight[0, 0] = random.random()
            return model, (torch.ones(1, 2),), lambda out: out.sum()
        """, "families.t.factory", ["different numbers", "torch's global generator"]),
    ({"factory": "broken:build", "options": {}}, """
        import numpy
        #NET
        def build(depth, shortcut):
            x = torch.tensor(numpy.random.rand(1, 2), dtype=torch.float32)
            return Net(depth), (x,), lambda out: out.square().sum()
        """, "families.t.factory", ["different numbers", "not numpy's"]),
    ({"factory": "broken:build", "options": {}, "dtypes": ["float32", "float64"]}, """
        #NET
        def build(depth, shortcut):
            target = torch.zeros(1, 2)  # float32, whatever the cell's dtype
            return Net(depth), (torch.ones(1, 2),), lambda out: torch.mm(out, target.T).sum()
        """, "families.t", ["in float64 raised", "follow the output's device and dtype"]),
    ({"factory": "broken:build", "options": {}, "devices": ["cpu", "cuda"]}, """
        #NET
        def build(depth, shortcut):
            labels = torch.zeros(1, 2)  # on the CPU, whatever the output's device
            return Net(depth), (torch.ones(1, 2),), lambda out: (out - labels).square().sum()
        """, "families.t.factory", ["the loss_fn of broken:build(depth=2",
                                    "labels.to(out.device)"]),
    ({"factory": "broken:build", "options": {}, "devices": ["cuda:1"]}, """
        import torch
        class Net(torch.nn.Module):
            def __init__(self, depth):
                super().__init__()
                self.blocks = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(depth)])
            def forward(self, x):
                return self.blocks(x) + torch.ones(2)  # made on the CPU
        def build(depth, shortcut):
            return Net(depth), (torch.ones(1, 2),), lambda out: out.square().sum()
        """, "families.t.factory", ["the forward pass of", "device=x.device"]),
    ({"factory": "broken:build", "options": {}, "devices": ["cuda"]}, """
        import torch
        class Net(torch.nn.Module):
            def __init__(self, depth):
                super().__init__()
                self.pos = torch.nn.Embedding(8, 2)
                self.blocks = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(depth)])
            def forward(self, x):
                return self.blocks(x + self.pos(torch.arange(x.shape[0])))  # ids on the CPU
        def build(depth, shortcut):
            return Net(depth), (torch.ones(3, 2),), lambda out: out.square().sum()
        """, "families.t.factory", ["the forward pass of", "aten.embedding"]),
    ({"factory": "broken:build", "options": {}, "devices": ["cuda"]}, """
        import torch
        class Net(torch.nn.Module):
            def __init__(self, depth):
                super().__init__()
                self.blocks = torch.nn.Sequential(*[torch.nn.Linear(2, 2) for _ in range(depth)])
                self.w = torch.ones(2, 2)  # not a parameter, not a buffer: stays on the CPU
            def forward(self, x):
                return self.blocks(x) @ self.w
        def build(depth, shortcut):
            return Net(depth), (torch.ones(3, 2),), lambda out: out.square().sum()
        """, "families.t.factory", ["aten.mm", "register_buffer"]),
    ({"factory": "broken:build", "options": {}}, """
        import torch
        def build(depth, shortcut):
            return torch.nn.Linear(2, 2)
        """, "families.t.factory", ["must return (model, inputs, loss_fn)"]),
    ({"factory": "broken:build", "options": {}, "blocks": None}, """
        import torch
        def build(depth, shortcut):  # one layer at every depth: no names grow with depth
            return torch.nn.Linear(2, 2), (torch.ones(1, 2),), lambda out: out.sum()
        """, "families.t.blocks", ["no pattern is given, and none could be read from the "
                                   "parameter names of", "(weight, bias)"]),
    ({"factory": "broken:build", "options": {}}, """
        import torch
        def build(depth, shortcut):
            return torch.nn.Linear(2, 2), (torch.ones(1, 2),), lambda out: out
        """, "families.t.factory", ["return one floating-point number"]),
])
def test_a_bad_user_family_is_refused_naming_the_key_and_the_fix(workdir, change, body, key,
                                                                 words):
    """Each refused before any job runs, by the check that builds and
    measures the smallest cells as a job would."""
    if body:
        write_module(workdir, body)
    with pytest.raises(FamilyError) as error:
        check("t", {**SECTION, **change}, str(workdir))
    message = str(error.value)
    assert message.startswith(key + ":"), message
    for word in words:
        assert word in message, message


def test_the_check_runs_in_a_process_of_its_own_and_answers_in_json(workdir):
    top = {"devices": ["cpu"], "dtypes": ["float32"], "seeds_per_job": 100}
    ok = family_check.check_user_families(
        {**top, "models": ["mlp", "highway"], "families": {"highway": SECTION}}, str(workdir))
    assert ok["highway"]["ok"] and ok["highway"]["blocks"] == [0, 1]
    write_module(workdir, """
        print("a module that talks on stdout")
        def build(depth, shortcut):
            raise ValueError("no")
        """)
    with pytest.raises(ValueError, match=r"^families\.b\.factory: broken:build\(depth=2"):
        family_check.check_user_families(
            {**top, "models": ["b"], "families": {"b": {**SECTION, "factory": "broken:build",
                                                        "options": {}}}}, str(workdir))


def test_a_file_hiding_a_standard_module_is_named_when_the_check_crashes(workdir,
                                                                       monkeypatch):
    monkeypatch.chdir(workdir)  # as a run is: python -m puts it first on the import path
    (workdir / "random.py").write_text("x = 1\n")
    top = {"devices": ["cpu"], "dtypes": ["float32"], "seeds_per_job": 100}
    with pytest.raises(ValueError, match=r"^families\.highway: its check crashed .* random\.py "
                                         r"in the run's directory hides the standard library's "
                                         r"module of that name, which torch imports: rename it"):
        family_check.check_user_families(
            {**top, "models": ["highway"], "families": {"highway": SECTION}}, str(workdir))


def test_a_family_that_follows_the_device_passes_the_gpu_check(workdir):
    """The example's loss_fn moves its labels to the output's device: with a
    GPU among the devices it passes as on the CPU alone; so does a scalar
    made on the CPU (CUDA takes it) and an op the meta device cannot run."""
    assert check("t", {**SECTION, "devices": ["cpu", "cuda"]}, str(workdir))["blocks"] == [0, 1]
    write_module(workdir, """
        #NET
        def build(depth, shortcut):
            def loss_fn(out):
                out = out.masked_fill(out > 10, torch.tensor(10.0))  # a 0-dim CPU value
                return out[out.nonzero(as_tuple=True)].square().sum()  # data-dependent
            return Net(depth), (torch.ones(3, 2),), loss_fn
        """)
    section = {**SECTION, "factory": "broken:build", "options": {}, "devices": ["cuda"]}
    assert check("t", section, str(workdir))["blocks"] == [0, 1]


def test_a_check_that_passed_runs_again_only_when_the_module_changes(workdir, monkeypatch):
    config = {"devices": ["cpu"], "dtypes": ["float32"], "seeds_per_job": 100,
              "models": ["highway"], "families": {"highway": SECTION}}
    runs = []
    real_run = family_check.subprocess.run
    monkeypatch.setattr(family_check.subprocess, "run",
                        lambda *a, **k: runs.append(1) or real_run(*a, **k))
    first = family_check.check_user_families(config, str(workdir))
    assert family_check.check_user_families(config, str(workdir)) == first
    assert len(runs) == 1  # the second answer was the kept one
    module = workdir / "highway.py"
    module.write_text(module.read_text() + "\n# an edit\n")
    assert family_check.check_user_families(config, str(workdir)) == first
    assert len(runs) == 2
    other = {**config, "families": {"highway": {**SECTION, "depths": [2, 4, 6]}}}
    family_check.check_user_families(other, str(workdir))
    assert len(runs) == 3


def test_a_user_familys_memory_comes_from_its_check():
    estimate = user.user_mem_mb({"parameter_bytes": 2 ** 30, "saved_bytes": 2 ** 29}, 4)
    assert estimate == BASELINE_MB + math.ceil(2.2 * 1024 + 1.25 * 512)
    assert user.user_mem_mb({"parameter_bytes": 2 ** 30, "saved_bytes": 0}, 8) == \
        BASELINE_MB + math.ceil(2 * 2.2 * 1024)
    mine = families.spec("mine")
    assert mine.mem_mb({"mem_mb": 900}, "float32") == 900  # its own, where it gives one


def test_the_example_family_measured_directly_is_the_runners(workdir, monkeypatch):
    """The contract in a few lines, against the runner: seed, build, forward,
    one backward pass, mean |grad| per named parameter."""
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    from shortcutbench.measuring.user_family import UserFamily

    options = {"factory": "highway:build", "options": {"width": 8, "batch": 4},
               "blocks": r"blocks\.(\d+)\.", "mode": "eval"}
    family = UserFamily("highway", options)
    fields = {"model": "highway", "depth": 3, "width": 0, "seed": 4, "shortcut": True,
              "shortcut_scale": 1.0, "branch_scale": "1", "activation": "-", "init": "-",
              "norm": "-", "device": "cpu", "dtype": "float32"}
    records = runner.measure_cell(family, fields, options)
    import highway

    torch.manual_seed(4)
    model, inputs, loss_fn = highway.build(depth=3, shortcut=True, width=8, batch=4)
    model.eval()
    loss_fn(model(*inputs)).backward()
    expected = [(n, p.grad.abs().mean().item()) for n, p in model.named_parameters()]
    assert [(r["param"], r["grad_abs_mean"]) for r in records] == expected
    assert [r["layer"] for r in records][:4] == [0, 0, 0, 0]
    assert records[-1]["layer"] == -1 and records[-1]["param"] == "head.bias"
    assert np.isnan(records[0]["output_rms"])  # no stream: the family has no watch hook


def test_a_factory_failing_in_a_measuring_job_names_the_family_and_the_cell(workdir,
                                                                           monkeypatch):
    monkeypatch.chdir(workdir)
    monkeypatch.syspath_prepend(str(workdir))
    from shortcutbench.measuring.user_family import UserFamily

    write_module(workdir, """
        import highway
        def build(depth, shortcut, width, batch):
            if depth > 2:
                raise ValueError("too deep for my model")
            return highway.build(depth, shortcut, width, batch)
        """)
    options = {"factory": "broken:build", "options": {"width": 8, "batch": 4},
               "blocks": r"blocks\.(\d+)\.", "mode": "eval"}
    family = UserFamily("t", options)
    family.build(2, True, None, options)
    with pytest.raises(FamilyError, match=r"^families\.t\.factory: .*depth=4.* raised "
                                          r"ValueError: too deep for my model; fix the factory"):
        family.build(4, True, None, options)


def test_a_factory_the_meta_device_cannot_build_is_counted_from_its_smallest_cell(workdir):
    """A model that reads a number while it is built (no meta tensors) and
    returns its input as a bare tensor: accepted, its memory scaled from the
    smallest cell, and measured by the runner as the check measured it."""
    write_module(workdir, """
        import torch
        class Net(torch.nn.Module):
            def __init__(self, depth):
                super().__init__()
                self.blocks = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(depth))
                self.gain = float(self.blocks[0].weight.abs().mean().item())
            def forward(self, x):
                for block in self.blocks:
                    x = x + self.gain * torch.tanh(block(x))
                return x
        def build(depth, shortcut):
            return Net(depth), torch.randn(3, 4), lambda out: out.square().mean()
        """)
    section = {**SECTION, "factory": "broken:build", "options": {}, "depths": [2, 8]}
    facts = check("t", section, str(workdir))
    per_block = 4 * 4 + 4
    assert facts["parameters"] == 4 * 2 * per_block  # the smallest cell's, x 8 / 2
    assert facts["blocks"] == [0, 1]
    from shortcutbench.measuring.user_family import UserFamily

    family = UserFamily("t", {"factory": "broken:build", "options": {},
                              "blocks": SECTION["blocks"]}, str(workdir))
    fields = {"model": "t", "depth": 3, "width": 0, "seed": 1, "shortcut": True,
              "shortcut_scale": 1.0, "branch_scale": "1", "activation": "-", "init": "-",
              "norm": "-", "device": "cpu", "dtype": "float32"}
    records = runner.measure_cell(family, fields, {"options": {}})
    assert [r["layer"] for r in records] == [0, 0, 1, 1, 2, 2]
    assert all(r["finite"] for r in records)


def test_options_may_not_hold_what_the_sweep_gives():
    with pytest.raises(ConfigError, match=r"families\.m\.options: 'depth' is the sweep's"):
        validate_config({"models": ["m"], "families": {"m": {
            "factory": "a:b", "depths": [1], "seeds": [0], "blocks": "(x)",
            "options": {"depth": 3}}}}, SCHEMA)


def state_row(shortcut, dominant, n=4):
    return {"variant": "v", "depth": 64, "n": n, "arm": (shortcut, 1.0),
            "counts": {dominant: n}, "dominant": dominant}


def test_a_family_read_by_one_parameter_says_whose_gradient_vanished():
    from shortcutbench.analysis.families import words

    rows = [state_row(False, "vanished"), state_row(True, "exploded")]
    # the GPT reads each block by its queries alone: a vanished state is theirs
    assert words("gpt", rows, "v", 64) == [
        "Without shortcuts, the att.W_query.weight gradient vanishes (vanished) at 64 blocks: "
        "all 4 seeds vanished.",
        # an explosion may be the residual stream's: the network's
        "With shortcuts, the network explodes at 64 blocks: all 4 seeds exploded."]
    # the ResNet reads every conv: its whole network's
    assert words("resnet", rows, "v", 64)[0] == (
        "Without shortcuts, the network loses its gradient (vanished) at 64 layers: "
        "all 4 seeds vanished.")
