"""Writes tests/golden/records.json: the records of a few MLP, GPT, ResNet
and user-family cells, as measured by the commit this was run at, for
tests/test_golden.py (columns added later must leave these bit for bit).

    PYTHONPATH=. python tests/golden/make_golden.py
"""

import json
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "examples" / "highway"))

from shortcutbench.core.records import Cell  # noqa: E402
from shortcutbench.measuring import family as runner  # noqa: E402
from shortcutbench.measuring.gpt import GPTFamily  # noqa: E402
from shortcutbench.measuring.mlp.exact import measure_cell  # noqa: E402
from shortcutbench.measuring.resnet import ResNetFamily  # noqa: E402
from shortcutbench.measuring.user_family import UserFamily  # noqa: E402

FIELDS = {"shortcut_scale": 1.0, "branch_scale": "1", "device": "cpu", "dtype": "float32"}


def cells():
    """(kind, cell fields, options) of every golden cell."""
    for depth, width, seed, shortcut in [(5, 3, 123, False), (5, 3, 123, True),
                                         (64, 3, 1, True), (12, 16, 7, False)]:
        yield "mlp", {"depth": depth, "width": width, "seed": seed, "shortcut": shortcut}, {}
    gpt = {"emb_dim": 16, "n_heads": 2, "vocab_size": 50, "context_length": 8, "n_tokens": 6,
           "qkv_bias": False}
    for shortcut in (False, True):
        yield "gpt", {"model": "gpt", "depth": 3, "width": 16, "seed": 0, "shortcut": shortcut,
                      "activation": "gelu_tanh", "init": "pytorch", "norm": "pre_layernorm",
                      **FIELDS}, gpt
    for shortcut in (False, True):
        yield "resnet", {"model": "resnet", "depth": 8, "width": 16, "seed": 0,
                         "shortcut": shortcut, "activation": "relu", "init": "kaiming_normal",
                         "norm": "batchnorm", **FIELDS}, {"batch_size": 4}
    yield "highway", {"model": "highway", "depth": 4, "width": 0, "seed": 0, "shortcut": True,
                      "activation": "-", "init": "-", "norm": "-", **FIELDS}, {
        "factory": "highway:build", "options": {"width": 8, "batch": 4},
        "blocks": r"blocks\.(\d+)\.", "mode": "eval"}


def measure(kind, cell, options):
    runner.configure_torch()
    if kind == "mlp":
        scale = 1.0 if cell["shortcut"] else 0.0
        return measure_cell(Cell(cell["depth"], cell["width"], cell["seed"], cell["shortcut"],
                                 scale))
    family = {"gpt": GPTFamily, "resnet": ResNetFamily}.get(kind)
    family = family() if family else UserFamily(kind, options, str(HERE.parents[1] / "examples"
                                                                  / "highway"))
    if kind not in ("gpt", "resnet"):
        cell = {**cell, "shortcut_scale": 1.0}
    else:
        cell = {**cell, "shortcut_scale": 1.0 if cell["shortcut"] else 0.0}
    return runner.measure_cell(family, cell, options)


def machine():
    return {"torch": torch.__version__, "machine": platform.machine()}


if __name__ == "__main__":
    out = {"machine": machine(), "cells": [
        {"kind": kind, "cell": cell, "options": options,
         "records": [{k: repr(v) if isinstance(v, float) else v for k, v in r.items()}
                     for r in measure(kind, cell, options)]}
        for kind, cell, options in cells()]}
    # one record a line: a later change shows as the lines it changes
    text = json.dumps(out, separators=(",", ":")).replace("},{", "},\n{")
    (HERE / "records.json").write_text(text + "\n")
