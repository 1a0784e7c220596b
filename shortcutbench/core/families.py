"""The model families the study measures, as the planner and the analysis
see them (torch-free): one FamilySpec each.

A family is a kind of network: the book's MLP (`mlp`), the book's GPT
(`gpt`), He et al.'s CIFAR ResNet (`resnet`), or one of the user's own
(`families: {NAME: {factory: module:function, ...}}` in the config).  The
config's `models` lists the families to run.  Every family is swept over
depth x seed x shortcut (the GPT also over its norm placement), at one model
config given by its config section, and measured through one contract
(measuring/family.py): seed, build, forward, one backward pass, one record per
parameter.

A FamilySpec says, without torch, what the rest of the pipeline needs of a
family: its config section and what of it its measuring job needs (its model
config), its cell fields beyond depth, seed and shortcut (`width`,
`activation`, `init`, `norm` of the records), its layout (Layout: how its
records are read), the memory one of its chunks needs, what the schema
cannot check of its section, and the measuring class (measuring/family.py's
Family) that measures it.  A shipped family is one spec here and one
measuring module; a family of the user's own is one spec made from its
config section.

The MLP, with its many axes and studies, is planned by core/sweep.py (Chunk);
the other families' chunks are its FamilyChunk.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from shortcutbench.core import gpt, resnet
from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.resources import BASELINE_MB, LIBRARY_MB, PEAK_PER_PARAMETER_BYTE
from shortcutbench.core.states import STATES, ZERO_BRANCH

MLP, GPT, RESNET = "mlp", gpt.NAME, resnet.NAME
# What a user family's records hold where the MLP's axes have no meaning.
NOT_APPLICABLE = "-"
# The figures every family gets (analysis/family_figures.py).
FIGURES = ("profile", "healthy", "first")
# results/families.json's format: a newer one re-makes it (a rule param).
NUMBERS_FORMAT = 2


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

    @property
    def states(self) -> tuple[str, ...]:
        """The states its cells can be in (core/states.py): zero-branch only
        where a block is all its parameters; the others' tables and figures
        stay as they were."""
        if self.profile is None:
            return STATES
        return tuple(s for s in STATES if s != STATES[ZERO_BRANCH])

    def band_text(self) -> str:
        """What 'healthy' means for this layout, in words for the page."""
        layers = ("every layer's gradient but the head's" if self.head else
                  "every layer's gradient")
        reference = "the last layer before the head" if self.head else "the last layer"
        stream = (" and the residual stream's RMS within as many decades above its input's"
                  if self.stream else "")
        return f"{layers} within the healthy band around {reference}'s{stream}"


@dataclass(frozen=True)
class FamilySpec:
    """One family, as everything but its measuring code sees it."""
    name: str
    title: str  # for the report
    depth_name: str  # what `depth` counts: "layers", "blocks" or "depth"
    section: str  # its config key: "gpt", "families.NAME"; the MLP's is the top level
    layout: Layout
    measuring: str  # "module:Class" of its measuring.family.Family
    fields: dict[str, Any] = field(default_factory=dict)  # fixed record fields
    main_variant: dict[str, Any] = field(default_factory=dict)  # what its section leads with
    model_keys: tuple[str, ...] = ()  # its section's keys its measuring job needs
    norm_axis: bool = False  # its section's `norms` is an axis (recorded as `norm`)
    depths_key: str = "depths"  # its section's key of the depths swept
    width_key: str | None = None  # its section's key recorded as `width` (else fields')
    generic_figures: tuple[str, ...] = FIGURES  # the MLP's own rules draw richer ones
    extra_figures: tuple[str, ...] = ()  # what its analysis hook draws (family_hooks.py)
    check: Callable[[dict], None] | None = None  # ValueError('key: what, the fix')
    memory: Callable[[dict, str, dict | None], int] | None = None  # MB of its biggest cell
    memory_fix: str = ""  # what to lower when a cell cannot fit
    # How its own `shortcut` argument removes the shortcut, for the report:
    # the residual adds per block and where; '' for a user family, whose
    # check finds them (family_check's `switch`).
    switch: str = ""
    # The modules that hold the residual adds (core/blocks.py's pattern), for
    # the generic switch's shortcut_scales and branch_scales; None: not offered.
    switch_blocks: str | None = None
    # The laws of analysis/family_laws.py it is a case of, each with what
    # that law needs to know of it (a user family's: its section's `laws`).
    laws: dict[str, Any] = field(default_factory=dict)

    @property
    def figures(self) -> tuple[str, ...]:
        return self.generic_figures + self.extra_figures

    def options(self, section: dict[str, Any]) -> dict[str, Any]:
        """What its measuring job needs of its (validated) section besides the
        swept axes: its model config."""
        return {key: section[key] for key in self.model_keys if key in section}

    def cell_fields(self, options: dict[str, Any]) -> dict[str, Any]:
        """Width, activation, init (and norm without a norm axis) of its cells."""
        if self.width_key is not None:
            return {**self.fields, "width": options[self.width_key]}
        return dict(self.fields)

    def norms(self, section: dict[str, Any]) -> tuple[str, ...]:
        """Its own axis, recorded as `norm`: the GPT's norm placements."""
        return tuple(sorted(section["norms"])) if self.norm_axis else (self.fields["norm"],)

    def mem_mb(self, section: dict[str, Any], dtype: str, checked: dict | None = None) -> int:
        """The memory (MB) one of its chunks needs: that of its biggest cell;
        `mem_mb` in its section where it gives one."""
        if section.get("mem_mb"):
            return int(section["mem_mb"])
        return self.memory(section, dtype, checked)


def _gpt_memory(section, dtype, checked=None):
    return gpt.gpt_mem_mb(max(section["depths"]), section["emb_dim"], section["n_heads"],
                          section["vocab_size"], section["context_length"],
                          section["n_tokens"], section["qkv_bias"], dtype)


def _resnet_memory(section, dtype, checked=None):
    return resnet.mem_mb(max(section["depths"]), section["batch_size"],
                         gpt.DTYPE_BYTES[dtype])


def _resnet_check(section):
    for depth in section.get("depths", []):
        resnet.blocks_per_stage(depth)


def user_mem_mb(checked: dict[str, Any], size: int, section: dict[str, Any] | None = None) -> int:
    """A user family's estimate from its check: what a measuring process
    holds anyway (with the model library its section names imported), the
    parameters and their gradients, and what autograd kept for backward, at
    the largest depth (the check counts both in float32; `size` is the
    dtype's bytes)."""
    scale = max(size, 4) / 4
    parameters = checked.get("parameter_bytes", 0) * scale * PEAK_PER_PARAMETER_BYTE
    saved = checked.get("saved_bytes", 0) * scale * 1.25
    library = sum(mb for name, mb in LIBRARY_MB.items() if (section or {}).get(name))
    return BASELINE_MB + library + int(-(-(parameters + saved) // 2 ** 20))


# A family's shortcut_scales and branch_scales (the generic switch's lambda
# and alpha), in its chunks' options where its section gives them.
SCALE_KEYS = ("shortcut_scales", "branch_scales")

SPECS = {
    MLP: FamilySpec(
        MLP, "The book\u2019s MLP (chapter 4.4)", "layers", "",
        Layout(profile=r"layers\.\d+\.0\.weight", stream=True),
        "shortcutbench.measuring.model:MLPFamily", generic_figures=(),
        main_variant={axis: BOOK_CASE[axis] for axis in ("width", "activation", "init", "norm",
                                                          "dtype", "device")},
        switch="one residual add per layer where the shapes match, x = x + layer(x) "
               "(ExampleDeepNeuralNetwork.forward and the fast path's forward, "
               "shortcutbench/measuring/model.py); without shortcut x = layer(x), and with "
               "shortcut_scale \u03bb and branch_scale \u03b1, x = \u03bb\u00b7x + "
               "\u03b1\u00b7layer(x)"),
    GPT: FamilySpec(
        GPT, "The book\u2019s GPT (chapter 4)", "blocks", "gpt",
        Layout(profile=r"trf_blocks\.\d+\.att\.W_query\.weight", head=r"out_head\.weight",
               stream=True),
        "shortcutbench.measuring.gpt:GPTFamily",
        fields={"activation": "gelu_tanh", "init": "pytorch"},
        main_variant={"norm": "pre_layernorm"}, model_keys=gpt.MODEL_KEYS + SCALE_KEYS,
        norm_axis=True,
        depths_key="blocks", width_key="emb_dim",
        extra_figures=("collapse",), check=gpt.check_section, memory=_gpt_memory,
        memory_fix="fewer gpt.blocks or a smaller gpt.emb_dim / vocab_size",
        switch="two residual adds per block, x = x + shortcut around the attention and around "
               "the feed-forward layer (TransformerBlock.sublayer, "
               "shortcutbench/measuring/gpt.py); without shortcut both are left out and the "
               "parameters stay the same",
        switch_blocks=r"trf_blocks\.(\d+)\.",
        # W2 of each block's feed-forward; its placement is the `norm` axis
        laws={"xiong": {"param": r"trf_blocks\.\d+\.ff\.layers\.2\.weight"}}),
    RESNET: FamilySpec(
        RESNET, "He et al.\u2019s CIFAR ResNet", "layers", "resnet",
        Layout(profile=r"(stem\.conv|stages\.\d+\.\d+\.conv[12]|fc)\.weight",
               head=r"fc\.weight", fit=resnet.fit_stages),
        "shortcutbench.measuring.resnet:ResNetFamily",
        fields={"width": resnet.STAGE_WIDTHS[0], "activation": "relu",
                "init": "kaiming_normal", "norm": "batchnorm"},
        model_keys=("batch_size", *SCALE_KEYS), check=_resnet_check, memory=_resnet_memory,
        memory_fix="smaller resnet.depths or resnet.batch_size",
        switch="one residual add per basic block, out + shortcut(x) before its last ReLU "
               "(option A: the identity, subsampled and zero-padded where the shape changes; "
               "BasicBlock.forward, shortcutbench/measuring/resnet.py); without shortcut the "
               "block is plain",
        switch_blocks=r"stages\.(\d+)\.(\d+)\."),
}
SHIPPED = tuple(SPECS)
# The shipped families' own config sections (the MLP's is the top level).
SHIPPED_SECTIONS = tuple(s.section for s in SPECS.values() if s.section)


# What a user family's measuring job needs of its section.
USER_MODEL_KEYS = ("factory", "transformers", "timm", "depth_key", "stages", "inputs",
                   "without_norms", "options", "blocks", "mode", "residual_adds", *SCALE_KEYS)


def spec(name: str) -> FamilySpec:
    """A family's spec; any name but a shipped one is a user family's."""
    if name in SPECS:
        return SPECS[name]
    return FamilySpec(
        name, f"Your family \u201c{name}\u201d", "depth", f"families.{name}", Layout(),
        "shortcutbench.measuring.user_family:UserFamily",
        fields={"width": 0, "activation": NOT_APPLICABLE, "init": NOT_APPLICABLE,
                "norm": NOT_APPLICABLE},
        model_keys=USER_MODEL_KEYS,
        memory=lambda section, dtype, checked: user_mem_mb(checked or {},
                                                           gpt.DTYPE_BYTES[dtype], section),
        memory_fix=f"smaller families.{name}.depths or options, or its own mem_mb")


def described(name: str, section: dict[str, Any] | None) -> FamilySpec:
    """A family's spec as its section describes it to a reader: a library
    model titled by its library and class, and its depth, per stage where
    each of `stages` gets `depth` blocks."""
    found = spec(name)
    library = next((key for key in ("transformers", "timm") if (section or {}).get(key)), None)
    if name in SPECS or library is None:
        return found
    depth_name = "blocks per stage" if section.get("stages") else "blocks"
    return replace(found, title=f"\u201c{name}\u201d: {library}\u2019s {section[library]}",
                   depth_name=depth_name)


def declared_laws(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{family: {law: what it needs}} for every family `models` lists that
    is a case of a law: a shipped family's from its spec, a user family's
    from its section's `laws` (the laws rule's param: the analysis never
    reads the config)."""
    out = {}
    for name in config.get("models", [MLP]):
        laws = spec(name).laws if name in SPECS else section_of(config, name).get("laws", {})
        if laws:
            out[name] = dict(laws)
    return out


def layout(name: str) -> Layout:
    return spec(name).layout


def section_of(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A family's section of the config (the MLP: the config itself)."""
    if name == MLP:
        return config
    if name in SPECS:
        return config.get(SPECS[name].section, {})
    return config["families"][name]


def sections(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{family: its config section} for every family `models` lists but
    the MLP, with devices, dtypes and seeds_per_job filled in from the top
    level where the section names none, and `depths` (the GPT's blocks)."""
    out = {}
    for name in config.get("models", [MLP]):
        if name == MLP:
            continue
        section = dict(section_of(config, name))
        for key in ("devices", "dtypes", "seeds_per_job"):
            section[key] = section.get(key) or config[key]
        section["depths"] = section[spec(name).depths_key]
        out[name] = section
    return out
