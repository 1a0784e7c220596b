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
model the study builds calls one.  A user's module is imported the same way,
so that one importing timm itself works too.

This module imports torch and never pandas, seaborn or Snakemake.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
import sys
from types import ModuleType

import torch

# torchvision's two unguarded registrations, as its C++ library defines them.
_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_declared: list[torch.library.Library] = []  # a Library's definitions live as long as it


def make_torchvision_importable() -> None:
    """Where torchvision is installed but its C++ operators cannot load
    beside this torch, declare the two schemas its import needs.  Imports
    nothing; a no-op where torchvision is absent, already imported or whole."""
    if _declared or "torchvision" in sys.modules:
        return
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    extension = glob.glob(os.path.join(spec.submodule_search_locations[0], "_C*.so"))
    try:
        torch.ops.load_library(extension[0])  # what torchvision's import does first
        return
    except (IndexError, OSError):
        pass
    library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _TORCHVISION_SCHEMAS:
        library.define(schema)
    _declared.append(library)


def import_library(name: str) -> ModuleType:
    """transformers or timm (or any module that may import torchvision),
    with torchvision made importable first."""
    make_torchvision_importable()
    return importlib.import_module(name)
