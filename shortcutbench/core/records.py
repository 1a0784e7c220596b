"""What a measurement record is: the columns of results/cells/**.parquet and
results/gradients.csv.  Torch-free, so both sides of the pipeline share it."""

import math
from dataclasses import dataclass, fields

from shortcutbench.core.families import top_level_family

# The family of a Cell: the one whose section is the config's top level.
TOP_LEVEL = top_level_family()

# One row of results/cells/**.parquet (and results/gradients.csv): a cell's
# fields, then its layer's statistics, then the cell's results (COLUMNS).
Record = dict[str, int | float | bool | str]


@dataclass(frozen=True)
class Cell:
    """One network on one device in one dtype: the unit of measurement.

    shortcut_scale is the lambda of x = lambda * x + layer(x); cells without
    a shortcut record 0.0 (0 * x + layer(x) is exactly the no-shortcut net).

    branch_scale is the alpha of x = lambda * x + alpha * layer(x), the
    literature's fix (Fixup, SkipInit), as a label: a number written
    canonically ("1", "0.1", "0.7071067811865476") or the rule
    "1/sqrt(depth)" (alpha = 1/sqrt of the cell's depth, its number of Linear
    layers), so that one rule stays one value across depths.  branch_value()
    turns it into alpha.  Cells without a shortcut record "1".  The field
    comes last here, so that positional Cell(...) calls keep their meaning;
    in the columns it follows shortcut_scale.

    model is the family (core/families/): the top-level family's (the
    family whose section is the config's top level) for every cell of this
    class; the other families' cells are plain dicts with these fields
    (sweep.family_cells), whose depth is the family's (its spec's
    depth_name: blocks, weighted layers).  It also comes last here, and
    first in the columns.
    """
    depth: int
    width: int
    seed: int
    shortcut: bool
    shortcut_scale: float = 1.0
    activation: str = "gelu_tanh"
    init: str = "pytorch"
    norm: str = "none"
    device: str = "cpu"
    dtype: str = "float32"
    branch_scale: str = "1"
    model: str = TOP_LEVEL


_FIELDS = [f.name for f in fields(Cell)]
CELL_COLUMNS = ["model"] + [c for c in _FIELDS if c not in ("branch_scale", "model")]
CELL_COLUMNS.insert(CELL_COLUMNS.index("shortcut_scale") + 1, "branch_scale")
CELL_TYPES = {f.name: f.type for f in fields(Cell)}  # int, float, bool or str
# Per parameter (the top-level family: per layer, its weight): the layer it belongs to
# (the family's block index; -1 for parameters outside every block), its
# name, the other names of the same Parameter ("tied": comma-separated, ""
# for none; named_parameters() yields a shared Parameter once, as transformers' gpt2's
# lm_head.weight, which is transformer.wte.weight), its number of
# dimensions and elements, the book's statistic (mean |grad|) and a few
# more; grad_zero_share is the share of its gradient's elements that are
# exactly 0 (1 for a parameter the loss does not reach; core/states.py's
# zero-branch reads it);
# output_rms is the RMS of what leaves the layer (shortcut included), x_l;
# grad_stream_cos is cos(dL/dx_l, x_l), the gradient's alignment with that
# stream (mean field assumes ~0; NaN where either vector is zero).
LAYER_COLUMNS = ["layer", "param", "tied", "ndim", "numel", "grad_abs_mean", "grad_l2",
                 "grad_zero_share", "bias_grad_abs_mean", "output_rms", "grad_stream_cos"]
# Per cell, repeated on each of its layers' rows.  token_cosine is a
# transformer family's token collapse (mean pairwise cosine of the last
# block's token outputs), NaN for the others; output is the top-level
# family's output (a width -> 1 layer), NaN for the others.
CELL_RESULT_COLUMNS = ["loss", "output", "token_cosine", "finite"]
COLUMNS = CELL_COLUMNS + LAYER_COLUMNS + CELL_RESULT_COLUMNS
VALUE_COLUMNS = ["grad_abs_mean", "grad_l2", "grad_zero_share", "bias_grad_abs_mean",
                 "output_rms", "grad_stream_cos", "loss", "output", "token_cosine"]

# The order of rows in results/gradients.csv.
SORT_COLUMNS = ["model", "device", "dtype", "activation", "init", "norm", "width", "depth",
                "shortcut", "shortcut_scale", "branch_scale", "seed", "layer"]

BRANCH_RULE = "1/sqrt(depth)"


def branch_label(value: float | str) -> str:
    """A branch scale from the config (a number or "1/sqrt(depth)") -> its
    label: 1 and 1.0 -> "1", 0.1 -> "0.1", the rule as it is."""
    if isinstance(value, str):
        if value == BRANCH_RULE:
            return value
        value = float(value)
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def branch_value(label: str, depth: int) -> float:
    """A branch scale's label -> alpha for a network of `depth` layers."""
    if label == BRANCH_RULE:
        return 1 / math.sqrt(depth)
    return float(label)


def record_fields(cell: "Cell") -> Record:
    """A cell's fields in column order (the start of each of its records)."""
    return {column: getattr(cell, column) for column in CELL_COLUMNS}
