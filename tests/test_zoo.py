"""The architectures people ship: transformers and timm models as families
by config (measuring/zoo.py), their shortcuts removed by the generic switch.

The fast tests (block numbering, the config's checks, the default loss) run
with every `pytest`; those marked `zoo` build the libraries' models (seconds
of imports each, minutes through the workflow) and run with `make test-zoo`.
"""

import copy
import json
import re
import sys

import pytest
import torch
import yaml
from conftest import REPO, snakemake

from shortcutbench.core import blocks
from shortcutbench.core.config import ConfigError, validate_config
from shortcutbench.measuring.losses import default_loss

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ZOO = yaml.safe_load((REPO / "config" / "zoo.yaml").read_text())


# ---------------------------------------------------------------- block numbers

def resnet_names(per_stage):
    """timm's ResNet parameter names: a stem, 4 stages of blocks with a
    downsample in each stage's first block, a head."""
    names = ["conv1.weight", "bn1.weight"]
    for stage in range(1, 5):
        for i in range(per_stage):
            names += [f"layer{stage}.{i}.conv1.weight", f"layer{stage}.{i}.bn2.weight"]
            if i == 0:
                names += [f"layer{stage}.0.downsample.0.weight",
                          f"layer{stage}.0.downsample.1.weight"]
    return names + ["fc.weight"]


def test_several_groups_number_the_blocks_in_order_as_numbers():
    numbered = blocks.numbers(r"layer(\d+)\.(\d+)\.", resnet_names(2))
    assert numbered["conv1.weight"] == numbered["fc.weight"] == blocks.OUTSIDE
    order = [numbered[f"layer{s}.{i}.conv1.weight"] for s in range(1, 5) for i in range(2)]
    assert order == list(range(8))
    assert numbered["layer2.0.downsample.1.weight"] == 2
    # one group: the number as it is (the shipped patterns' meaning)
    assert blocks.numbers(r"h\.(\d+)\.", ["h.3.w", "wte"]) == {"h.3.w": 3, "wte": -1}
    # numbers, not text: block 10 after block 9
    names = [f"layer1.{i}.w" for i in range(11)]
    assert blocks.numbers(r"layer(\d+)\.(\d+)\.", names)["layer1.10.w"] == 10


def test_a_group_that_is_not_a_number_is_refused_naming_the_pattern_as_written():
    with pytest.raises(blocks.BlocksError, match=r"groups of '\(\\w\+\)\\\.' are \('h',\)"):
        blocks.numbers(r"(\w+)\.", ["h.0.w"])


def test_the_suggested_pattern_numbers_what_grows_with_depth():
    # at one block per stage a downsample has more numbered parts than its stage
    assert blocks.suggest(resnet_names(1), resnet_names(2)) == r"layer(\d+)\.(\d+)\."
    assert blocks.suggest(resnet_names(3)) == r"layer(\d+)\.(\d+)\."
    gpt2 = ["transformer.wte.weight", *(f"transformer.h.{i}.attn.w" for i in range(3))]
    assert blocks.suggest(gpt2) == r"transformer\.h\.(\d+)\."
    assert blocks.suggest(["w", "b"]) is None
    assert blocks.module_of(r"layer(\d+)\.(\d+)\.", "layer3.1.conv1.weight") == "layer3.1"


# ---------------------------------------------------------------- the config

def zoo_config(**families):
    return {"models": list(families), "devices": ["cpu"], "families": families}


@pytest.mark.parametrize("section, words", [
    ({"factory": "m:build", "transformers": "GPT2LMHeadModel"},
     ["families.x: name exactly one of factory", "it has factory and transformers"]),
    ({"transformers": "GPT2LMHeadModel"}, ["families.x.depth_key:", "n_layer"]),
    ({"transformers": "GPT2LMHeadModel", "depth_key": "n_layer", "stages": 4},
     ["families.x.stages: only a timm model takes stages"]),
    ({"factory": "m:build", "without_norms": True},
     ["families.x.without_norms: only a library model (transformers or timm) takes"]),
    ({"timm": "resnet18", "depth_key": "layers", "blocks": "layer(\\d+"},
     ["families.x.blocks:", "is not a regular expression"]),
])
def test_a_bad_library_section_is_refused_naming_the_key(section, words):
    config = zoo_config(x={"depths": [1, 2], "seeds": [0], **section})
    with pytest.raises(ConfigError) as error:
        validate_config(config, str(SCHEMA))
    for word in words:
        assert word in str(error.value), str(error.value)


def test_the_zoo_config_is_valid():
    sweep = validate_config(copy.deepcopy(ZOO), str(SCHEMA))
    assert set(sweep["models"]) == set(ZOO["families"])
    for name, section in ZOO["families"].items():
        assert len(section["seeds"]) >= 3, name
        assert section.get("shortcut", [False, True]) == [False, True], name
        per_stage = section.get("stages", 1)
        assert max(section["depths"]) * per_stage >= 24, name


# ---------------------------------------------------------------- the default loss

class Output(dict):
    """What a Hugging Face model returns: a dict whose keys are attributes too."""
    __getattr__ = dict.get


def test_the_default_loss_reads_a_model_output_the_way_its_training_does():
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    own = torch.tensor(1.5)
    assert default_loss(Output(loss=own, logits=logits), {"input_ids": ids}) is own
    next_token = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7),
                                                   ids[:, 1:].reshape(-1))
    assert torch.equal(default_loss(Output(logits=logits), {"input_ids": ids}), next_token)
    labels = torch.randint(0, 7, (2,))
    classes = torch.randn(2, 7)
    assert torch.equal(default_loss(Output(logits=classes), {"labels": labels}),
                       torch.nn.functional.cross_entropy(classes, labels))
    hidden = torch.randn(2, 3)
    assert torch.equal(default_loss(Output(last_hidden_state=hidden), ()),
                       hidden.square().mean())


# ---------------------------------------------------------------- the libraries (make test-zoo)

@pytest.mark.zoo
def test_every_adapter_runs_through_the_real_workflow_at_two_depths(tmp_path):
    """config/zoo.yaml's families at two depths and one seed, both flags:
    each measured, its shortcuts found by the generic switch (2 adds a
    transformer block, 1 a ResNet's or ConvNeXt's), a report section each."""
    config = copy.deepcopy(ZOO)
    for section in config["families"].values():
        section["depths"], section["seeds"] = [1, 2], [0]
    snakemake(tmp_path, config, timeout=900)
    html = (tmp_path / "report" / "index.html").read_text()
    checks = [json.loads(p.read_text()) for p in
              (tmp_path / ".snakemake" / "shortcutbench" / "family_checks").glob("*.json")]
    lines = {tuple(c["switch"].get("where", ())) for c in checks}
    for name in config["families"]:
        assert f'id="family-{name}"' in html, name
        records = list((tmp_path / "results" / "cells" / f"model~{name}").rglob("*.parquet"))
        assert records, name
    adds = {check["pattern"]: check["switch"]["adds_per_block"] for check in checks}
    assert adds[r"transformer\.h\.(\d+)\."] == adds[r"model\.layers\.(\d+)\."] == 2
    assert adds[r"layer(\d+)\.(\d+)\."] == adds[r"stages\.(\d+)\.blocks\.(\d+)\."] == 1
    assert any(re.fullmatch(r"modeling_gpt2\.py:\d+", w) for ws in lines for w in ws)


def write_module(tmp_path, text):
    (tmp_path / "hf_nets.py").write_text(text)
    sys.modules.pop("hf_nets", None)  # another test's module of the same name
    return str(tmp_path)


HF_MODULE = """
import torch
from shortcutbench.measuring.libraries import import_library
transformers = import_library("transformers")

def gpt2(depth, width=32):
    config = transformers.GPT2Config(n_layer=depth, n_embd=width, n_head=2, vocab_size=64,
                                     n_positions=16)
    model = transformers.GPT2LMHeadModel(config)
    ids = torch.randint(0, 64, (2, 8))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
"""


@pytest.mark.zoo
def test_a_hugging_face_model_needs_no_wrapper(tmp_path):
    """Inputs as a dict (model(**inputs)), no loss_fn (the default loss of
    its ModelOutput), no shortcut argument (the generic switch): the check
    passes and finds GPT-2's two residual adds per block."""
    from shortcutbench.measuring.user_family import check

    workdir = write_module(tmp_path, HF_MODULE)
    section = {"factory": "hf_nets:gpt2", "depths": [1, 3], "seeds": [0],
               "shortcut": [False, True], "options": {"width": 32}, "mode": "eval"}
    facts = check("hf", section, workdir)
    assert facts["pattern"] == r"transformer\.h\.(\d+)\."  # read from the names
    assert facts["blocks"] == [0]
    assert facts["switch"]["means"] == "generic" and facts["switch"]["adds_per_block"] == 2


@pytest.mark.zoo
def test_a_loss_fn_that_fails_on_a_model_output_names_the_type(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    module = HF_MODULE.replace(
        'return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}',
        'return model, {"input_ids": ids}, lambda out: out[:, -1].square().mean()')
    workdir = write_module(tmp_path, module)
    section = {"factory": "hf_nets:gpt2", "depths": [1], "seeds": [0], "shortcut": [True],
               "options": {}, "mode": "eval"}
    with pytest.raises(FamilyError) as error:
        check("hf", section, workdir)
    message = str(error.value)
    assert "the loss_fn of hf_nets:gpt2(depth=1) raised" in message, message
    assert "CausalLMOutputWithCrossAttentions (fields logits, past_key_values)" in message, \
        message


@pytest.mark.zoo
def test_a_pattern_that_does_not_grow_with_depth_is_refused_with_a_better_one(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    section = {**ZOO["families"]["resnet_bottleneck"], "depths": [1, 2], "seeds": [0],
               "blocks": r"layer(\d+)\."}
    with pytest.raises(FamilyError) as error:
        check("r", section, str(tmp_path))
    message = str(error.value)
    assert message.startswith(r"families.r.blocks: 'layer(\d+)\.' finds 4 blocks at depth 1 "
                              r"and 4 at depth 2"), message
    assert r"'layer(\d+)\.(\d+)\.' numbers them" in message, message


@pytest.mark.zoo
def test_an_unknown_config_key_of_a_library_model_is_refused(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    section = {**ZOO["families"]["gpt2"], "depths": [1], "seeds": [0],
               "options": {"n_embed": 64}}
    with pytest.raises(FamilyError, match=r"^families\.g\.options: GPT2Config has no "
                                          r"\['n_embed'\]; did you mean n_embd"):
        check("g", section, str(tmp_path))


@pytest.mark.zoo
def test_a_misspelt_timm_depth_key_and_too_many_tokens_are_named(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    timm_name = next(k for k, v in ZOO["families"].items() if v.get("timm") == "resnet18")
    section = {**ZOO["families"][timm_name], "depths": [1], "seeds": [0], "depth_key": "layerz"}
    with pytest.raises(FamilyError, match=r"^families\.t\.depth_key: timm's resnet18 takes no "
                                          r"'layerz' .*; name its blocks per stage"):
        check("t", section, str(tmp_path))
    section = {**ZOO["families"]["gpt2"], "depths": [1], "seeds": [0],
               "inputs": {"tokens": 100}}
    with pytest.raises(FamilyError, match=r"^families\.g\.inputs\.tokens: 100 tokens are more "
                                          r"than the 64 positions of its GPT2Config"):
        check("g", section, str(tmp_path))


def test_library_jobs_ask_for_the_library_s_memory_too():
    from shortcutbench.core.families import user

    facts = {"parameter_bytes": 2 ** 20, "saved_bytes": 0}
    plain = user.user_mem_mb(facts, 4, {"factory": "m:build"})
    assert user.user_mem_mb(facts, 4, {"transformers": "GPT2LMHeadModel"}) == plain + 200
    assert user.user_mem_mb(facts, 4, {"timm": "resnet18"}) == plain + 150


# ---------------------------------------------------------------- lambda and alpha for every family

@pytest.mark.parametrize("name, depth, norm, options", [
    ("gpt", 4, "pre_layernorm", {"emb_dim": 16, "n_heads": 2, "vocab_size": 32,
                                 "context_length": 8, "n_tokens": 8, "qkv_bias": False}),
    ("resnet", 8, "batchnorm", {"batch_size": 4}),
])
def test_a_shipped_family_takes_lambda_and_alpha_from_the_generic_switch(name, depth, norm,
                                                                         options):
    """The book's GPT and the ResNet take `shortcut` themselves; their
    shortcut_scales and branch_scales come from the generic switch, its plan
    made once per depth and norm."""
    from shortcutbench.core import families
    from shortcutbench.measuring.family import family_of, measure_cell

    family = family_of(name, options)

    def first_block(scale, alpha):
        cell = {"model": name, "depth": depth, "seed": 0, "shortcut": True,
                "shortcut_scale": scale, "branch_scale": alpha, "device": "cpu",
                "dtype": "float32", **families.spec(name).cell_fields(options), "norm": norm}
        records = measure_cell(family, cell, options)
        assert all(r["finite"] for r in records)
        return [r["grad_l2"] for r in records if r["layer"] == 0]

    plain = first_block(1.0, "1")
    assert not family.__dict__.get("_plans")  # nothing rewritten: no plan made
    scaled = first_block(1.0, "1/sqrt(depth)")
    assert first_block(0.5, "0.1") != scaled != plain
    assert first_block(1.0, "1/sqrt(depth)") == scaled  # the same bits again
    assert list(family._plans) == [(depth, norm)]


@pytest.mark.zoo
def test_a_law_parameter_that_names_no_parameter_is_refused(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    section = {**ZOO["families"]["gpt2"], "depths": [1, 2], "seeds": [0],
               "laws": {"xiong": {"param": r"transformer\.h\.\d+\.mlp\.c_fc\.bias\.x",
                                  "placement": "pre_layernorm"}}}
    with pytest.raises(FamilyError) as error:
        check("g", section, str(tmp_path))
    message = str(error.value)
    assert message.startswith(r"families.g.laws.xiong.param: 'transformer\.h\.\d+\.mlp\.c_fc"
                              r"\.bias\.x' matches no parameter name of "
                              r"transformers GPT2LMHeadModel(depth=1"), message
    assert "transformer.h.0.mlp.c_proj.weight" in message, message


# ---------------------------------------------------------------- the switch through the runner

RESIDUAL_MODULE = """
import torch

class Block(torch.nn.Module):
    def __init__(self, width):
        super().__init__()
        self.f = torch.nn.Linear(width, width)
    def forward(self, x):
        return x + torch.tanh(self.f(x))

class Net(torch.nn.Module):
    def __init__(self, depth, width):
        super().__init__()
        self.blocks = torch.nn.Sequential(*[Block(width) for _ in range(depth)])
        self.head = torch.nn.Linear(width, 1)
    def forward(self, x):
        return self.head(self.blocks(x))

def build(depth, width=4):
    return Net(depth, width), (torch.randn(3, width),), lambda out: out.square().mean()

class Weights(torch.nn.Module):  # its blocks are parameters, not modules
    def __init__(self, depth, width):
        super().__init__()
        self.weights = torch.nn.ParameterList(torch.randn(width, width) for _ in range(depth))
    def forward(self, x):
        for w in self.weights:
            x = x + torch.tanh(x @ w)
        return x

def weights(depth, width=4):
    return Weights(depth, width), (torch.randn(3, width),), lambda out: out.square().mean()
"""


def residual_family(tmp_path, factory="res_nets:build"):
    from shortcutbench.measuring.user_family import UserFamily

    (tmp_path / "res_nets.py").write_text(RESIDUAL_MODULE)
    sys.modules.pop("res_nets", None)
    options = {"factory": factory, "options": {}, "mode": "eval"}
    return UserFamily("res", options, str(tmp_path)), options


def res_cell(depth, seed, shortcut=False):
    return {"model": "res", "depth": depth, "seed": seed, "shortcut": shortcut,
            "shortcut_scale": 1.0 if shortcut else 0.0, "branch_scale": "1", "device": "cpu",
            "dtype": "float32", "width": 0, "activation": "-", "init": "-", "norm": "-"}


def test_a_switched_cell_is_the_same_bytes_first_of_its_depth_or_not(tmp_path):
    """The plan's extra pass (made by the first cell of a depth in a job)
    leaves the generators and the buffers as they were: a cell's records do
    not depend on its place in the chunk."""
    from shortcutbench.measuring.family import measure_cell

    first, options = residual_family(tmp_path)
    alone = measure_cell(first, res_cell(3, 7), options)
    later, _ = residual_family(tmp_path)
    measure_cell(later, res_cell(3, 1), options)  # makes the depth's plan
    measure_cell(later, res_cell(3, 2, shortcut=True), options)
    assert measure_cell(later, res_cell(3, 7), options) == alone
    assert alone != measure_cell(later, res_cell(3, 7, shortcut=True), options)


def test_blocks_that_are_not_modules_are_refused_not_left_unswitched(tmp_path):
    from shortcutbench.measuring.user_family import FamilyError, check

    residual_family(tmp_path)
    section = {"factory": "res_nets:weights", "depths": [2, 3], "seeds": [0],
               "shortcut": [False, True], "options": {}, "mode": "eval",
               "blocks": r"weights\.(\d+)"}
    with pytest.raises(FamilyError, match=r"^families\.r\.blocks: the blocks "
                                          r"'weights\\\.\(\\d\+\)' numbers are not modules "
                                          r"\('weights\.0'"):
        check("r", section, str(tmp_path))


def test_the_default_loss_keeps_a_float64_output_s_precision():
    out = torch.randn(3, dtype=torch.float64)
    assert default_loss(out, ()).dtype == torch.float64
    assert default_loss(out.half(), ()).dtype == torch.float32


def test_the_report_says_when_no_shortcut_was_removed():
    from shortcutbench.analysis.family_sections import switch_words

    words = switch_words("mine", {"means": "none"})
    assert words["means"].startswith("nothing: every cell keeps its shortcuts")
    scaled = switch_words("mine", {"means": "own", "adds_per_block": 1, "blocks": 2,
                                   "where": ["m.py:3"]})
    assert "shortcut_scales and branch_scales by the generic switch" in scaled["means"]
