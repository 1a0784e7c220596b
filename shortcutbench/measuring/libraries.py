"""Importing the model libraries a family may name (transformers, timm)
beside the pinned CPU build of torch.

PyPI's torchvision for Linux x86_64 is built against torch's CUDA build: its
C++ operators do not load beside the CPU build this project pins.  Every
torchvision op registration is guarded for that case but the fake kernels of
`nms` and `qnms`, so `import torchvision` raises "operator torchvision::nms
does not exist" (pytorch/vision#9337).  transformers imports torchvision when
it is installed, and timm needs its pure-Python parts (FrozenBatchNorm2d,
transforms).  Declaring the two operators' schemas first lets those parts
import; calling a torchvision C++ op still fails, as it would anyway.  No
model the study builds calls one.

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import torch

# torchvision's two unguarded registrations, as its C++ library defines them.
_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared: list[torch.library.Library] = []  # a Library's definitions live as long as it


def _torchvision_ops_load() -> bool:
    """Whether torchvision's C++ operators are there (or torchvision is not)."""
    try:
        return hasattr(torch.ops.torchvision, "nms")
    except (AttributeError, RuntimeError):
        return False


def import_torchvision() -> ModuleType | None:
    """torchvision, imported so that its pure-Python parts work beside the
    CPU torch; None where it is not installed."""
    if "torchvision" in sys.modules:
        return sys.modules["torchvision"]
    if importlib.util.find_spec("torchvision") is None:
        return None
    try:
        return importlib.import_module("torchvision")
    except RuntimeError as error:
        if "torchvision::nms" not in str(error) or _declared:
            raise
    # A failed import leaves half-initialised modules behind.
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    if not _torchvision_ops_load():
        library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _TORCHVISION_SCHEMAS:
            library.define(schema)
        _declared.append(library)
    return importlib.import_module("torchvision")


def import_library(name: str) -> ModuleType:
    """transformers or timm (or any library that may import torchvision),
    with torchvision made importable first."""
    import_torchvision()
    return importlib.import_module(name)
