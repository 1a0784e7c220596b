"""The model families the study measures, as the planner and the analysis
see them (torch-free): one FamilySpec each, registered by the family's own
module in this package.

A family is a kind of network shipped here (a module of this package), or
one of the user's own (`families: {NAME: {factory:
module:function, ...}}` in the config, or a transformers or timm model).
The config's `models` lists the families to run.  Every family is swept over
depth x seed x shortcut (and its own axes), at the model config its config
section gives, and measured through one contract (measuring/family.py):
seed, build, forward, one backward pass, one record per parameter.

A FamilySpec says, without torch, what the rest of the pipeline needs of a
family: its config section and what of it a measuring job needs, its cell
fields, its layout (how its records are read), the memory one of its chunks
needs, what the schema cannot check of its section, and where its measuring
class, its analysis hook and its report template are.  Each shipped family's
module here registers its spec once (`register_family`), the way timm's
`@register_model` sits beside each model; the modules are found by walking
this package, so nothing outside a family's own modules names it.  Any name
the config gives that no module registered is a family of the user's own,
whose spec its section makes (`register_user_family`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shortcutbench.core.states import STATES, ZERO_BRANCH

# What a family's records hold for an axis that has no meaning for it.
NOT_APPLICABLE = "-"
# The figures every family gets (analysis/family_figures.py).
FIGURES = ("profile", "healthy", "first")
# results/families.json's format: a newer one re-makes it (a rule param).
NUMBERS_FORMAT = 2
# A family's shortcut_scales and branch_scales (the generic switch's lambda
# and alpha), in its chunks' options where its section gives them.
SCALE_KEYS = ("shortcut_scales", "branch_scales")


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
             None: one straight line over every layer but the head;
    point:   where `profile` picks one of a layer's parameters, its name
             within the layer ("att.W_query.weight"): the report's sentences
             then speak of that parameter's gradient, not the network's, since
             the layer's other parameters may fare otherwise.
    """
    profile: str | None = None
    head: str | None = None
    stream: bool = False
    fit: Callable[[int], list[int]] | None = field(default=None, compare=False)
    point: str | None = None

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
        gradient = f"{self.point} gradient" if self.point else "gradient"
        layers = (f"every layer's {gradient} but the head's" if self.head else
                  f"every layer's {gradient}")
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
    section: str  # its config key, e.g. "families.NAME"; '' for the config's top level
    layout: Layout
    measuring: str  # "module:Class" of its measuring.family.Family
    fields: dict[str, Any] = field(default_factory=dict)  # fixed record fields
    main_variant: dict[str, Any] = field(default_factory=dict)  # what its section leads with
    model_keys: tuple[str, ...] = ()  # its section's keys its measuring job needs
    norm_axis: bool = False  # its section's `norms` is an axis (recorded as `norm`)
    depths_key: str = "depths"  # its section's key of the depths swept
    width_key: str | None = None  # its section's key recorded as `width` (else fields')
    generic_figures: tuple[str, ...] = FIGURES  # () where its own rules draw richer ones
    extra_figures: tuple[str, ...] = ()  # what its analysis hook draws
    check: Callable[[dict], None] | None = None  # ValueError('key: what, the fix')
    memory: Callable[[dict, str, dict | None], int] | None = None  # MB of its biggest cell
    memory_fix: str = ""  # what to lower when a cell cannot fit
    # records a cell writes per block (its parameters a block; the top-level
    # family's: one a layer): what a job's records hold in memory until written
    records_per_block: int = 16
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
    # "module:function" of what its analysis adds to the numbers and figures
    # every family gets (analysis/family_figures.py calls it), or None.
    analysis_hook: str | None = None
    # Its report template in analysis/templates/ (its introduction and what
    # its hook adds), or None: the generic section alone.
    template: str | None = None
    # "module:function" of the findings of the laws of its own, (partials,
    # training, band) -> [Finding] (analysis/laws.py calls it), or None.
    findings: str | None = None
    # The module of its own report sections, which stand in for the generic
    # one (its template's `lede`, `sections` and `laws_intro`): its
    # `read(paths)` reads the files the report rule's `section_inputs` name,
    # its `context(read)` is what the template is rendered with (with `toc`,
    # the sections' (id, title)); or None.
    sections: str | None = None
    # Its own Snakemake rules (workflow/rules/NAME.smk, which the Snakefile
    # includes), or None.
    rules: str | None = None
    # Where it comes in lists of the shipped families (error messages).
    order: int = 100
    # (spec, its config section) -> the spec as that section describes it to
    # a reader (a library model's title), or None: as it is.
    describe: Callable[[FamilySpec, dict[str, Any]], FamilySpec] | None = \
        field(default=None, compare=False)
    # The module that plans its chunks where core/sweep.py's generic planning
    # does not fit, defining any of: variants(config, checks),
    # chunk_folder(chunk), chunk_params(chunk), chunk_cells(params),
    # memory_words(chunk), n_cells(sweep); None: the generic planning for
    # all of them.
    planning: str | None = None
    # "module:function" of its per-cell values (core/cell_stats.py), from a
    # chunk's columns, its cells' first rows and the healthy band; None: the
    # values from its gradient profile, read with its layout.
    cell_values: str | None = None
    # Its further modules beyond those named above (its model, fast paths,
    # training): its own, free to name it.
    own_modules: tuple[str, ...] = ()

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
        """Its own axis, recorded as `norm` (norm_axis: its section's `norms`)."""
        return tuple(sorted(section["norms"])) if self.norm_axis else (self.fields["norm"],)

    def mem_mb(self, section: dict[str, Any], dtype: str, checked: dict | None = None) -> int:
        """The memory (MB) one of its chunks needs: that of its biggest cell;
        `mem_mb` in its section where it gives one."""
        if section.get("mem_mb"):
            return int(section["mem_mb"])
        return self.memory(section, dtype, checked)


# The shipped families, by name, in their specs' order.
SPECS: dict[str, FamilySpec] = {}
# Their names (a live view: a family registered later is one of them).
SHIPPED = SPECS.keys()
_USER_FAMILY: list[Callable[[str], FamilySpec]] = []


def register_family(family: FamilySpec) -> FamilySpec:
    """Register a shipped family's spec, once, from its own module."""
    if family.name in SPECS:
        raise ValueError(f"family {family.name!r} is registered twice")
    ordered = sorted([*SPECS.values(), family], key=lambda found: found.order)
    SPECS.clear()
    SPECS.update((found.name, found) for found in ordered)
    return family


def shipped_sections() -> tuple[str, ...]:
    """The shipped families' own config sections (the top level's is '')."""
    return tuple(found.section for found in SPECS.values() if found.section)


def register_user_family(make: Callable[[str], FamilySpec]) -> Callable[[str], FamilySpec]:
    """Register what makes the spec of a family of the user's own from its
    name (any name no module registered)."""
    _USER_FAMILY.append(make)
    return make


def resolve(where: str) -> Any:
    """What a spec's "module:function" names (its analysis hook, findings,
    report sections), imported where it is needed."""
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def spec(name: str) -> FamilySpec:
    """A family's spec; any name but a shipped one is a user family's."""
    if name in SPECS:
        return SPECS[name]
    return _USER_FAMILY[0](name)


def described(name: str, section: dict[str, Any] | None) -> FamilySpec:
    """A family's spec as its section describes it to a reader (a library
    model titled by its library and class)."""
    found = spec(name)
    if found.describe is None or not section:
        return found
    return found.describe(found, section)


def declared_laws(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{family: {law: what it needs}} for every family `models` lists that
    is a case of a law: a shipped family's from its spec, a user family's
    from its section's `laws` (the laws rule's param: the analysis never
    reads the config)."""
    out = {}
    for name in config.get("models", [top_level_family()]):
        laws = spec(name).laws if name in SPECS else section_of(config, name).get("laws", {})
        if laws:
            out[name] = dict(laws)
    return out


def top_level_family() -> str:
    """The family whose section is the config's top level (its axes are the
    main sweep's, and `models` defaults to it)."""
    return next(name for name, found in SPECS.items() if found.section == "")


def config_key(name: str, key: str) -> str:
    """A key of a family's config section as the config names it:
    'shortcut' (the top level's), 'SECTION.shortcut' (a shipped family's),
    'families.mine.shortcut'."""
    section = spec(name).section
    return f"{section}.{key}" if section else key


def layout(name: str) -> Layout:
    return spec(name).layout


def section_of(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A family's section of the config (the top level's: the config itself)."""
    if name == top_level_family():
        return config
    if name in SPECS:
        return config.get(SPECS[name].section, {})
    return config["families"][name]


def sections(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{family: its config section} for every family `models` lists but
    the top level's, with devices, dtypes and seeds_per_job filled in from
    the top level where the section names none, and `depths` (its
    `depths_key`'s values)."""
    out = {}
    for name in config.get("models", [top_level_family()]):
        if name == top_level_family():
            continue
        section = dict(section_of(config, name))
        for key in ("devices", "dtypes", "seeds_per_job"):
            section[key] = section.get(key) or config[key]
        section["depths"] = section[spec(name).depths_key]
        out[name] = section
    return out


def _register_every_family():
    """Import every module of this package: each registers its family."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_every_family()
