"""The laws a family declares in its config (`families.NAME.laws`): Xiong
et al.'s exponents and the branch scale fix judged on hand-made partial
results of families whose answer is known, the config's checks of the
declarations, and (marked zoo) the real workflow on a reduced zoo."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO, snakemake

from shortcutbench.analysis import family_laws
from shortcutbench.core.config import ConfigError, family_problem, validate_config
from shortcutbench.core.families import declared_laws

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
GPT2_W2 = r"transformer\.h\.\d+\.mlp\.c_proj\.weight"
BERT_W2 = r"bert\.encoder\.layer\.\d+\.output\.dense\.weight"
DECLARED = {"gpt2": {"xiong": {"param": GPT2_W2, "placement": "pre_layernorm"}},
            "bert": {"xiong": {"param": BERT_W2, "placement": "post_layernorm"}}}
BLOCKS = (1, 2, 4, 8, 16, 24)


def moments(values):
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    return len(values), mean, float(((values - mean) ** 2).sum())


def key(model, depth, shortcut=True, branch="1"):
    # cells without a shortcut record lambda = 0
    return {"model": model, "depth": depth, "shortcut": shortcut,
            "shortcut_scale": 1.0 if shortcut else 0.0,
            "branch_scale": branch, "norm": "-", "dtype": "float32", "device": "cpu"}


def zoo_frames(exponents, seeds=3, spread=0.01):
    """Merged partial results of library transformers with shortcuts: per
    family and L every block's W2 (the last one's gradient norm log10 = 0.3 +
    exponent log10 L, the others far off), the attention's output projection
    beside it (never W2), and no stream (a library model's is not recorded)."""
    rng = np.random.default_rng(1)
    names = {"gpt2": "transformer.h.{}.mlp.c_proj.weight",
             "bert": "bert.encoder.layer.{}.output.dense.weight"}
    decoys = {"gpt2": "transformer.h.{}.attn.c_proj.weight",
              "bert": "bert.encoder.layer.{}.attention.output.dense.weight"}
    layers, cells = [], []
    for family, exponent in exponents.items():
        for blocks in BLOCKS:
            for layer in range(blocks):
                last = layer == blocks - 1
                for name, offset in ((names[family], 0.0 if last else 3.0),
                                     (decoys[family], 5.0)):
                    logs = 0.3 + offset + exponent * math.log10(blocks) + rng.normal(
                        0, spread, seeds)
                    n, mean, m2 = moments(logs)
                    layers.append({**key(family, blocks), "layer": layer,
                                   "param": name.format(layer), "grad_l2_n_pos": n,
                                   "grad_l2_log10_mean": mean, "grad_l2_log10_m2": m2})
            cells.append({**key(family, blocks), "log10_stream_max_n": 0,
                          "log10_stream_max_mean": math.nan, "log10_stream_max_m2": math.nan})
    return {"layers": pd.DataFrame(layers), "cells": pd.DataFrame(cells)}


def fits(finding):
    table = finding["table"]
    return {r[0]: dict(zip(table["columns"], r)) for r in table["rows"]}


def test_xiong_judges_each_declared_family_by_its_placement():
    finding = family_laws.xiong_families_finding(
        zoo_frames({"gpt2": -0.5, "bert": 0.0}), {n: d["xiong"] for n, d in DECLARED.items()})
    finding = finding.to_json()
    rows = fits(finding)
    assert finding["key"] == "xiong_families" and finding["family"] == "gpt2, bert"
    assert rows["gpt2"]["norm"] == "pre_layernorm" and rows["bert"]["norm"] == "post_layernorm"
    # the last block's W2 only: not the other blocks', not the attention's
    assert rows["gpt2"]["exponent"] == pytest.approx(-0.5, abs=0.02)
    assert rows["bert"]["exponent"] == pytest.approx(0.0, abs=0.02)
    assert rows["gpt2"]["cells"] == rows["bert"]["cells"] == len(BLOCKS) * 3
    assert rows["gpt2"]["regime"] == "L = 1-24"  # no stream: every L, and it says so
    assert finding["verdict"] == "agrees" and "not checked" in finding["detail"]


def test_a_pre_ln_family_whose_gradient_does_not_shrink_differs():
    """GPT-2 as transformers builds it scales c_proj by 1/sqrt(2 n_layer):
    an exponent of ~0, which the verdict must call, with BERT's agreeing."""
    finding = family_laws.xiong_families_finding(
        zoo_frames({"gpt2": 0.0, "bert": 0.0}),
        {n: d["xiong"] for n, d in DECLARED.items()}).to_json()
    rows = fits(finding)
    assert rows["gpt2"]["verdict"] == "differs" and rows["bert"]["verdict"] == "agrees"
    assert finding["verdict"] == "partly"
    assert "gpt2 (pre_layernorm) differs with -0.5, but its CI also holds" in finding["detail"]


def test_xiong_says_what_to_add_with_one_depth():
    frames = zoo_frames({"gpt2": -0.5})
    frames = {k: f[f["depth"] == 8] for k, f in frames.items()}
    finding = family_laws.xiong_families_finding(
        frames, {"gpt2": DECLARED["gpt2"]["xiong"]}).to_json()
    assert finding["verdict"] == "not measured"
    assert "families.gpt2.depths" in finding["missing"]


def branch_frames(unit_exponent, seeds=3, spread=0.01, plain_healthy=0):
    """Cells of an unnormalised residual family: the first block's gradient
    over alpha ~ depth^unit_exponent with alpha = 1, constant with alpha =
    1/sqrt(depth) (its own gradient carries alpha); the first block over
    the last ~ the same."""
    rng = np.random.default_rng(2)
    cells = []
    for depth in BLOCKS:
        for branch, exponent in (("1", unit_exponent), ("1/sqrt(depth)", 0.0)):
            alpha = 1 / math.sqrt(depth) if branch != "1" else 1.0
            logs = -5 + exponent * math.log10(depth) + math.log10(alpha) + rng.normal(
                0, spread, seeds)
            first = moments(logs)
            spread_logs = moments(exponent * math.log10(depth) + rng.normal(0, spread, seeds))
            cells.append({**key("nonorm", depth, True, branch), "n_cells": seeds,
                          "state_healthy": seeds, "state_vanished": 0, "state_exploded": 0,
                          "state_dead": 0, "state_non_finite": 0,
                          **dict(zip(("log10_first_grad_n", "log10_first_grad_mean",
                                      "log10_first_grad_m2"), first)),
                          **dict(zip(("log10_attenuation_n", "log10_attenuation_mean",
                                      "log10_attenuation_m2"), spread_logs))})
        cells.append({**key("nonorm", depth, False), "n_cells": seeds,
                      "state_healthy": plain_healthy, "state_vanished": seeds - plain_healthy,
                      "state_exploded": 0, "state_dead": 0, "state_non_finite": 0,
                      **{f"log10_{v}_{m}": math.nan for v in ("first_grad", "attenuation")
                         for m in ("n", "mean", "m2")}})
    return {"cells": pd.DataFrame(cells)}


@pytest.mark.parametrize("unit_exponent, verdict", [(0.5, "confirmed"), (-0.07, "partly")])
def test_the_branch_scale_verdict_follows_the_growth_exponents(unit_exponent, verdict):
    finding = family_laws.branch_scale_families_finding(
        branch_frames(unit_exponent), ["nonorm"]).to_json()
    rows = {r[1]: dict(zip(finding["table"]["columns"], r)) for r in finding["table"]["rows"]}
    assert rows["1"]["exponent"] == pytest.approx(unit_exponent, abs=0.02)
    # the gradient over alpha: the scaled branch's factor alpha is taken out
    assert rows["1/sqrt(depth)"]["exponent"] == pytest.approx(0.0, abs=0.02)
    assert rows["1"]["cells"] == len(BLOCKS) * 3
    assert finding["verdict"] == verdict and finding["family"] == "nonorm"
    assert "at depth 24 (nonorm; alpha = 0.204)" in finding["detail"]
    assert "without shortcuts 0% of nonorm's cells are healthy at depth 24" in finding["measured"]


def test_the_branch_scale_finding_needs_both_scales():
    frames = branch_frames(0.5)
    frames["cells"] = frames["cells"][frames["cells"]["branch_scale"] == "1"]
    finding = family_laws.branch_scale_families_finding(frames, ["nonorm"]).to_json()
    assert finding["verdict"] == "not measured" and "families.nonorm.branch_scales" in (
        finding["missing"])


def test_families_that_declare_no_law_and_did_not_run_have_no_finding():
    frames = zoo_frames({"gpt2": -0.5})
    found = family_laws.family_findings(frames)  # the shipped families' laws only
    assert [f.key for f in found] == []
    found = family_laws.family_findings(frames, {"gpt2": DECLARED["gpt2"]})
    assert [f.key for f in found] == ["xiong_families"]
    assert family_laws.family_findings(frames, {"bert": DECLARED["bert"]}) == []


# ---------------------------------------------------------------- config

def family(**extra):
    return {"transformers": "GPT2LMHeadModel", "depth_key": "n_layer", "depths": [1, 2],
            "seeds": [0], **extra}


def checked(section):
    """The validated config (ConfigError if refused)."""
    return validate_config({"models": ["net"], "devices": ["cpu"],
                            "families": {"net": section}}, SCHEMA)


def test_the_zoo_declares_its_laws_as_data():
    config = validate_config(yaml.safe_load((REPO / "config" / "zoo.yaml").read_text()), SCHEMA)
    laws = declared_laws(config)
    assert laws == {"gpt2": DECLARED["gpt2"], "bert": DECLARED["bert"],
                    "gpt2_no_norm": {"branch_scale": True}}
    assert declared_laws({"models": ["gpt", "mlp"]})["gpt"]["xiong"]["param"] == (
        r"trf_blocks\.\d+\.ff\.layers\.2\.weight")


@pytest.mark.parametrize("laws, shortcut, scales, message", [
    ({"xiong": {"param": "h.(", "placement": "pre_layernorm"}}, [True], [1],
     "families.net.laws.xiong.param: 'h.(' is not a regular expression"),
    ({"branch_scale": True}, [False, True], [1],
     "families.net.laws.branch_scale: the law compares alpha = 1 with alpha = 1/sqrt(depth)"),
    ({"branch_scale": True}, [False], [1, "1/sqrt(depth)"],
     "families.net.laws.branch_scale: the law is about the network with its shortcuts"),
])
def test_a_law_the_sweep_cannot_measure_is_refused(laws, shortcut, scales, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        checked(family(laws=laws, shortcut=shortcut, branch_scales=scales))


def test_an_unknown_law_or_placement_is_refused_by_the_schema():
    with pytest.raises(ConfigError, match="unknown config key 'xiong2'"):
        checked(family(laws={"xiong2": {}}))
    with pytest.raises(ConfigError, match="laws.xiong.placement"):
        checked(family(laws={"xiong": {"param": "x", "placement": "sandwich"}}))
    config = checked(family(laws={"xiong": {"param": GPT2_W2, "placement": "pre_layernorm"}}))
    assert family_problem(config) is None


# ---------------------------------------------------------------- the workflow

ZOO = {"models": ["gpt2", "gpt2_no_norm", "bert"], "devices": ["cpu"]}


@pytest.mark.slow
@pytest.mark.zoo
def test_the_zoo_laws_reach_the_report(tmp_path):
    zoo = yaml.safe_load((REPO / "config" / "zoo.yaml").read_text())
    config = {**ZOO, "families": {name: {**zoo["families"][name], "depths": [1, 2, 4],
                                         "seeds": [0, 1]} for name in ZOO["models"]}}
    snakemake(tmp_path, config, timeout=1200)
    laws = {f["key"]: f for f in json.loads((tmp_path / "results" / "laws.json").read_text())}
    assert set(laws) == {"xiong_families", "branch_scale_families"}
    xiong, branch = laws["xiong_families"], laws["branch_scale_families"]
    assert xiong["family"] == "gpt2, bert" and branch["family"] == "gpt2_no_norm"
    rows = fits(xiong)
    assert rows["gpt2"]["cells"] == rows["bert"]["cells"] == 3 * 2
    assert all(math.isfinite(r["exponent"]) for r in rows.values())
    assert xiong["verdict"] in ("agrees", "close", "differs", "partly")
    assert branch["verdict"] in ("confirmed", "partly", "not confirmed")
    html = (tmp_path / "report" / "index.html").read_text()
    assert 'id="law-xiong_families"' in html and 'id="law-branch_scale_families"' in html
