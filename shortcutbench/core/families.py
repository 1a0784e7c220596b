"""The model families the study measures, as the planner sees them (torch-free).

A family is a kind of network: the book's MLP (`mlp`), the book's GPT
(`gpt`), He et al.'s CIFAR ResNet (`resnet`), or one of the user's own
(`families: {NAME: {factory: module:function, ...}}` in the config).  The
config's `models` lists the families to run.  Every family is swept over
depth x seed x shortcut (the GPT also over its norm placement), at one model
config given by its config section, and measured through one contract
(measuring/family.py): seed, build, forward, one backward pass, one record per
parameter.

What the planner and the analysis need of a family lives here, without torch:

- its config section and model config (the chunks, one measuring job per
  device, dtype and block of seeds, are core/sweep.py's FamilyChunk);
- its cell fields beyond depth, seed and shortcut (`width`, `activation`,
  `init`, `norm` of the records), fixed by its model config;
- its layout (Layout): which parameter of each layer its gradient profile
  shows, which one is its output layer, whether its records carry the
  stream's RMS; core/cell_stats.py reads its records with it;
- the memory one of its chunks needs.

The MLP, with its many axes and studies, is planned by core/sweep.py (Chunk);
its layout is here like every family's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shortcutbench.core import gpt, resnet

MLP, GPT, RESNET = "mlp", gpt.NAME, resnet.NAME
SHIPPED = (MLP, GPT, RESNET)
# The config section of each shipped family (the MLP's keys are the top level's).
SECTIONS = {GPT: "gpt", RESNET: "resnet"}
# What a user family's records hold where the MLP's axes have no meaning.
NOT_APPLICABLE = "-"
MODES = ("eval", "train")
# The figures every family gets (analysis/family_figures.py), and those a
# family's hook adds (analysis/family_hooks.py).
FIGURES = ("profile", "healthy", "first")
EXTRA_FIGURES = {GPT: ("collapse",)}


def figures_of(name: str) -> tuple[str, ...]:
    return FIGURES + EXTRA_FIGURES.get(name, ())


@dataclass(frozen=True)
class Layout:
    """How a family's records are read (core/cell_stats.py, core/partials.py).

    profile: a regular expression the name of each layer's profile parameter
             matches (re.fullmatch): its mean |grad| is the layer's point in
             the gradient profile; None: every parameter of the layer counts,
             weighted by its element count (a user family's block);
    head:    the output layer's parameter (re.fullmatch), or None: it counts
             for a zero gradient and finiteness, never for the healthy band
             (its gradient sits apart from the hidden layers' for reasons
             unrelated to depth);
    stream:  the records carry the RMS of the residual stream leaving each
             layer (output_rms; layer -1 the input's), for the stream test
             of the cell states;
    fit:     per layer of the profile, the group of the per-layer factor's
             fit (one intercept per group, one slope), -1 to leave it out;
             None: one straight line over every layer but the head.
    """
    profile: str | None = None
    head: str | None = None
    stream: bool = False
    fit: Callable[[int], list[int]] | None = field(default=None, compare=False)

    def is_profile(self, name: str) -> bool:
        return self.profile is None or re.fullmatch(self.profile, name) is not None

    def is_head(self, name: str) -> bool:
        return self.head is not None and re.fullmatch(self.head, name) is not None


LAYOUTS = {
    MLP: Layout(profile=r"layers\.\d+\.0\.weight", stream=True),
    GPT: Layout(profile=r"trf_blocks\.\d+\.att\.W_query\.weight", head=r"out_head\.weight",
                stream=True),
    RESNET: Layout(profile=r"(stem\.conv|stages\.\d+\.\d+\.conv[12]|fc)\.weight",
                   head=r"fc\.weight", fit=resnet.fit_stages),
}
USER_LAYOUT = Layout()


def layout(name: str) -> Layout:
    """A family's layout; any name but a shipped one is a user family."""
    return LAYOUTS.get(name, USER_LAYOUT)


def cell_fields(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The record fields a family's model config fixes: width, activation,
    init (and norm where the family has no norm axis)."""
    if name == GPT:
        return {"width": options["emb_dim"], "activation": "gelu_tanh", "init": "pytorch"}
    if name == RESNET:
        return {"width": resnet.STAGE_WIDTHS[0], "activation": "relu", "init": "kaiming_normal",
                "norm": "batchnorm"}
    return {"width": 0, "activation": NOT_APPLICABLE, "init": NOT_APPLICABLE,
            "norm": NOT_APPLICABLE}


def options_of(name: str, section: dict[str, Any]) -> dict[str, Any]:
    """What a family's measuring job needs of its (validated) config
    section besides the swept axes: its model config."""
    if name == GPT:
        return {key: section[key] for key in gpt.MODEL_KEYS}
    if name == RESNET:
        return {"batch_size": section["batch_size"]}
    return {"factory": section["factory"], "options": dict(section.get("options", {})),
            "blocks": section["blocks"], "mode": section.get("mode", "eval")}


def norms_of(name: str, section: dict[str, Any]) -> tuple[str, ...]:
    """The family's own axis, recorded as `norm`: the GPT's norm placements."""
    if name == GPT:
        return tuple(sorted(section["norms"]))
    return (cell_fields(name, {})["norm"],)


def sections(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{family: its config section} for every family `models` lists but
    the MLP, with devices, dtypes and seeds_per_job filled in from the top
    level where the section names none, and `depths` (the GPT's blocks)."""
    out = {}
    for name in config.get("models", [MLP]):
        if name == MLP:
            continue
        section = dict(config[SECTIONS[name]] if name in SECTIONS
                       else config["families"][name])
        for key in ("devices", "dtypes", "seeds_per_job"):
            section[key] = section.get(key) or config[key]
        if name == GPT:  # the GPT's depth is its number of blocks
            section["depths"] = section["blocks"]
        out[name] = section
    return out


def mem_mb(name: str, section: dict[str, Any], dtype: str, checked: dict | None = None) -> int:
    """The memory (MB) one chunk of the family needs: that of its biggest cell.
    checked: a user family's check (measuring/user_family.py), which measured
    its parameters and activations at the largest depth."""
    depth = max(section["depths"])
    size = gpt.DTYPE_BYTES[dtype]
    if name == GPT:
        return gpt.gpt_mem_mb(depth, section["emb_dim"], section["n_heads"],
                              section["vocab_size"], section["context_length"],
                              section["n_tokens"], section["qkv_bias"], dtype)
    if name == RESNET:
        return resnet.mem_mb(depth, section["batch_size"], size)
    if section.get("mem_mb"):
        return int(section["mem_mb"])
    return user_mem_mb(checked or {}, size)


USER_TORCH_MB = 300
USER_PEAK_PER_PARAMETER_BYTE = 2.2  # weights and their gradients, as the MLP's


def user_mem_mb(checked: dict[str, Any], size: int) -> int:
    """A user family's estimate from its check: torch, the parameters and
    their gradients, and what autograd kept for backward, at the largest depth
    (the check counts both, in float32; `size` is the dtype's bytes)."""
    scale = max(size, 4) / 4
    parameters = checked.get("parameter_bytes", 0) * scale * USER_PEAK_PER_PARAMETER_BYTE
    saved = checked.get("saved_bytes", 0) * scale * 1.25
    return USER_TORCH_MB + int(-(-(parameters + saved) // 2 ** 20))


CHECK_SECONDS = 600  # a factory that takes longer to build and run twice is stuck


def check_user_families(config: dict[str, Any], workdir: str) -> dict[str, dict[str, Any]]:
    """Check every user family `models` lists, before any job runs, each in
    a process of its own (measuring/user_family.py: the workflow's process
    never imports torch or the user's code).  Returns {name: what its check
    measured}; raises ValueError('families.NAME...: what is wrong and the
    fix')."""
    facts = {}
    for name in config["models"]:
        if name in SHIPPED:
            continue
        request = json.dumps({"name": name, "section": config["families"][name],
                              "workdir": os.path.abspath(workdir)})
        try:
            done = subprocess.run([sys.executable, "-m", "shortcutbench.measuring.user_family"],
                                  input=request, capture_output=True, text=True,
                                  timeout=CHECK_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise ValueError(f"families.{name}.factory: building and running the smallest "
                             f"cell took more than {CHECK_SECONDS} s; make the factory "
                             f"faster") from None
        lines = done.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            raise ValueError(f"families.{name}: its check crashed (exit {done.returncode}) "
                             f"before it could answer:\n{tail}")
        if not answer.get("ok"):
            raise ValueError(answer.get("error", f"families.{name}: its check failed"))
        facts[name] = answer
    return facts
