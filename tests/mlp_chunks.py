"""The book's MLP's chunks (core/families/mlp.py plans them) made by hand
for tests, in the order of its chunks' params."""

from shortcutbench.core import resources
from shortcutbench.core.sweep import Chunk


def mlp_chunk(study, device, dtype, activation, width, seeds, depths, shortcuts,
              shortcut_scales, inits, norms, branch_scales=("1",), engine="exact"):
    options = {"activation": activation, "width": width,
               "shortcut_scales": tuple(shortcut_scales), "inits": tuple(inits),
               "branch_scales": tuple(branch_scales), "engine": engine}
    return Chunk("mlp", study, device, dtype, tuple(seeds), tuple(depths), tuple(shortcuts),
                 tuple(norms), options, resources.cell_mem_mb(max(depths), width, dtype))
