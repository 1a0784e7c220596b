"""A family of the user's own: a factory (`families: {NAME: {factory:
module:function}}`) or a transformers or timm model by config.  Its spec is
made from its name; what its section says of it is read where it is needed
(its chunks' options, its check in core/family_check.py).  Its measuring
code is measuring/user_family.py (and measuring/zoo.py for the libraries).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from shortcutbench.core.families import (
    NOT_APPLICABLE,
    SCALE_KEYS,
    FamilySpec,
    Layout,
    register_user_family,
)
from shortcutbench.core.resources import (
    BASELINE_MB,
    DTYPE_BYTES,
    PEAK_PER_PARAMETER_BYTE,
)

# The model libraries a section may name instead of a factory.
LIBRARIES = ("transformers", "timm")
# What importing a model library adds to a measuring process's resident set
# (torch alone: 218 MB; with transformers' gpt2 module: 377; with timm: 333).
LIBRARY_MB = {"transformers": 200, "timm": 150}
# What a user family's measuring job needs of its section.
USER_MODEL_KEYS = ("factory", *LIBRARIES, "depth_key", "stages", "inputs",
                   "without_norms", "options", "blocks", "mode", "residual_adds", *SCALE_KEYS)


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


def _described(found: FamilySpec, section: dict[str, Any]) -> FamilySpec:
    """A library model titled by its library and class, and its depth, per
    stage where each of `stages` gets `depth` blocks."""
    library = next((key for key in LIBRARIES if section.get(key)), None)
    if library is None:
        return found
    depth_name = "blocks per stage" if section.get("stages") else "blocks"
    return replace(found, title=f"\u201c{found.name}\u201d: {library}\u2019s {section[library]}",
                   depth_name=depth_name)


@register_user_family
def user_spec(name: str) -> FamilySpec:
    return FamilySpec(
        name, f"Your family \u201c{name}\u201d", "depth", f"families.{name}", Layout(),
        "shortcutbench.measuring.user_family:UserFamily",
        fields={"width": 0, "activation": NOT_APPLICABLE, "init": NOT_APPLICABLE,
                "norm": NOT_APPLICABLE},
        model_keys=USER_MODEL_KEYS,
        memory=lambda section, dtype, checked: user_mem_mb(checked or {}, DTYPE_BYTES[dtype],
                                                           section),
        memory_fix=f"smaller families.{name}.depths or options, or its own mem_mb",
        describe=_described)
