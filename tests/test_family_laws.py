"""The families' findings (analysis/family_laws.py) on hand-made partial
results, where the right answer is known: the pooled fit is least squares
over every cell, Xiong et al.'s exponents are fitted where their regime
holds, the BatchNorm verdict compares growth rates on the reference
setting; and every shipped config file is one the workflow accepts."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from shortcutbench.analysis import family_laws
from shortcutbench.analysis.findings import Verdict
from shortcutbench.core import families
from shortcutbench.core.config import validate_config
from shortcutbench.core.family_check import check_user_families
from shortcutbench.core.states import STATE_COLUMNS

SCHEMA = str(REPO / "workflow" / "schemas" / "config.schema.yaml")
RESNET_LAW = families.spec("resnet").laws["batchnorm"]


def moments(values):
    values = np.asarray(values, dtype=float)
    mean = values.mean()
    return len(values), mean, float(((values - mean) ** 2).sum())


def test_the_pooled_fit_is_least_squares_over_every_cell():
    rng = np.random.default_rng(3)
    x = np.log10([4, 8, 16, 32])
    ys = [0.2 - 0.5 * xi + rng.normal(0, 0.05, n) for xi, n in zip(x, (3, 5, 4, 2))]
    slope, se, cells = family_laws.pooled_fit(x, *zip(*(moments(y) for y in ys)))
    points_x = np.concatenate([[xi] * len(y) for xi, y in zip(x, ys)])
    points_y = np.concatenate(ys)
    (b, a), residuals, *_ = np.polyfit(points_x, points_y, 1, full=True)
    sxx = ((points_x - points_x.mean()) ** 2).sum()
    assert cells == 14 and slope == pytest.approx(b, rel=1e-12)
    assert se == pytest.approx(math.sqrt(residuals[0] / (14 - 2) / sxx), rel=1e-9)
    assert math.isnan(family_laws.pooled_fit([1.0, 1.0], [2, 2], [0, 1], [0, 0])[0])


def gpt_frames(points, seeds=4, spread=0.02, dtype="float32"):
    """Merged partial results of the GPT's cells with shortcuts: per (norm,
    blocks) the last block's W2 gradient norm, log10 = intercept + exponent
    log10 L, and the stream's largest RMS over the embeddings'."""
    rng = np.random.default_rng(0)
    layers, cells = [], []
    for norm, exponent, streams in points:
        for blocks, stream in streams.items():
            logs = 0.3 + exponent * math.log10(blocks) + rng.normal(0, spread, seeds)
            n, mean, m2 = moments(logs)
            key = {"model": "gpt", "shortcut": True, "norm": norm, "dtype": dtype,
                   "device": "cpu", "depth": blocks}
            layers.append({**key, "layer": blocks - 1,
                           "param": f"trf_blocks.{blocks - 1}.ff.layers.2.weight",
                           "grad_l2_n_pos": n, "grad_l2_log10_mean": mean,
                           "grad_l2_log10_m2": m2})
            s_n, s_mean, s_m2 = moments(math.log10(stream) + rng.normal(0, 0.001, seeds))
            cells.append({**key, "log10_stream_max_n": s_n, "log10_stream_max_mean": s_mean,
                          "log10_stream_max_m2": s_m2})
    return {"layers": pd.DataFrame(layers), "cells": pd.DataFrame(cells)}


PRE_STREAMS = {1: 1.01, 4: 1.05, 16: 1.2, 32: 1.46, 48: 1.7, 64: 1.95}
POST_STREAMS = {blocks: 0.71 for blocks in PRE_STREAMS}


def test_xiong_fits_each_placement_where_its_regime_holds():
    frames = gpt_frames([("post_layernorm", 0.0, POST_STREAMS),
                         ("pre_layernorm", -0.5, PRE_STREAMS)])
    finding = family_laws.xiong_finding(frames, "gpt").to_json()
    rows = {r[0]: dict(zip(finding["table"]["columns"], r)) for r in finding["table"]["rows"]}
    post, pre = rows["post_layernorm"], rows["pre_layernorm"]
    assert post["regime"] == "L = 1-64" and post["cells"] == 6 * 4
    assert pre["regime"] == "L = 32-64" and pre["cells"] == 3 * 4  # stream >= sqrt 2 there
    assert post["ci_low"] <= 0 <= post["ci_high"] and pre["ci_low"] <= -0.5 <= pre["ci_high"]
    assert finding["verdict"] == "agrees" and "excludes the other placement's" in finding["detail"]
    assert "L = 32-64" in finding["detail"]


def test_xiong_says_what_to_add_where_the_regime_has_too_few_depths():
    shallow = {blocks: s for blocks, s in PRE_STREAMS.items() if blocks <= 32}
    frames = gpt_frames([("post_layernorm", 0.0, POST_STREAMS),
                         ("pre_layernorm", -0.5, shallow)])
    finding = family_laws.xiong_finding(frames, "gpt").to_json()
    assert finding["verdict"] == "not measured" and "gpt.blocks" in finding["missing"]


def test_xiong_judges_float32_on_the_cpu_when_the_sweep_has_others_too():
    good = gpt_frames([("post_layernorm", 0.0, POST_STREAMS),
                       ("pre_layernorm", -0.5, PRE_STREAMS)])
    odd = gpt_frames([("post_layernorm", 0.4, POST_STREAMS),
                      ("pre_layernorm", 0.4, PRE_STREAMS)], dtype="bfloat16")
    frames = {k: pd.concat([odd[k], good[k]], ignore_index=True) for k in good}
    assert family_laws.xiong_finding(frames, "gpt").verdict == Verdict.AGREES


def resnet_frames(plain_factor, residual_factor=1.05, depth=56, seeds=5, dtype="float32"):
    rng = np.random.default_rng(1)
    cells, blocks = [], []
    for shortcut, factor in ((False, plain_factor), (True, residual_factor)):
        n, mean, m2 = moments(math.log10(factor) + rng.normal(0, 0.002, seeds))
        key = {"model": "resnet", "depth": depth, "shortcut": shortcut, "dtype": dtype,
               "device": "cpu"}
        cells.append({**key, "n_cells": seeds, "log10_factor_n": n, "log10_factor_mean": mean,
                      "log10_factor_m2": m2,
                      **{column: 0 for column in STATE_COLUMNS.values()},
                      "state_healthy": seeds if shortcut else 0,
                      "state_exploded": 0 if shortcut else seeds})
        for layer, log in ((0, 2.0 if not shortcut else 0.5), (depth - 2, -1.0)):
            blocks.append({**key, "layer": layer, "log10_n": seeds, "log10_mean": log})
    return {"cells": pd.DataFrame(cells), "blocks": pd.DataFrame(blocks)}


@pytest.mark.parametrize("factor, verdict", [(1.211, "agrees"), (1.19, "close"),
                                             (1.17, "differs")])
def test_the_batchnorm_verdict_compares_growth_rates(factor, verdict):
    finding = family_laws.batchnorm_finding(resnet_frames(factor), "resnet", RESNET_LAW).to_json()
    assert finding["verdict"] == verdict
    cols = finding["table"]["columns"]
    plain = dict(zip(cols, finding["table"]["rows"][0]))
    assert plain["first_over_last"] == pytest.approx(10 ** 3)  # 10^2 over 10^-1
    assert plain["share_exploded"] == 1.0 and "0% of the plain nets" in finding["detail"]
    # close means within 10% of the rate ln f, not of the factor
    assert (abs(math.log(factor) / math.log(family_laws.BN_RELU_FACTOR) - 1) <= 0.1) == \
        (verdict in ("agrees", "close"))


def test_the_batchnorm_finding_judges_float32_on_the_cpu():
    frames = {k: pd.concat([resnet_frames(2.0, dtype="bfloat16")[k], resnet_frames(1.211)[k]],
                           ignore_index=True) for k in ("cells", "blocks")}
    assert family_laws.batchnorm_finding(frames, "resnet", RESNET_LAW).verdict == Verdict.AGREES


def test_no_finding_for_a_family_that_did_not_run():
    assert family_laws.family_findings({"cells": pd.DataFrame({"model": ["mlp"]}),
                                        "layers": pd.DataFrame({"model": ["mlp"]})}) == []


CONFIGS = sorted([*REPO.glob("config/*.yaml"), *REPO.glob("examples/*/config.yaml")])
# The zoo's check builds eight library models (their imports take seconds): make test-zoo.
CASES = [pytest.param(p, marks=pytest.mark.zoo) if p.name == "zoo.yaml" else p for p in CONFIGS]


@pytest.mark.parametrize("path", CASES, ids=[str(p.relative_to(REPO)) for p in CONFIGS])
def test_every_shipped_config_is_one_the_workflow_accepts(path: Path):
    config = yaml.safe_load(path.read_text())
    sweep = validate_config(config, SCHEMA)
    if sweep.get("families"):  # the example's module is beside its config
        facts = check_user_families(sweep, str(path.parent))
        assert all(f["ok"] and f["blocks"] for f in facts.values())
