"""What a measurement record is: the columns of results/cells/*.csv and
results/gradients.csv.  Torch-free, so both sides of the pipeline share it."""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Cell:
    """One network on one device in one dtype: the unit of measurement."""
    depth: int
    width: int
    seed: int
    shortcut: bool
    activation: str = "gelu_tanh"
    device: str = "cpu"
    dtype: str = "float32"


CELL_COLUMNS = [f.name for f in fields(Cell)]
# Per layer: the seed's statistic (mean |grad| of the weight) and a few more;
# output_rms is the RMS of what leaves the layer (shortcut included).
LAYER_COLUMNS = ["layer", "param", "grad_abs_mean", "grad_l2", "bias_grad_abs_mean", "output_rms"]
# Per cell, repeated on each of its layers' rows.
CELL_RESULT_COLUMNS = ["loss", "output", "finite"]
COLUMNS = CELL_COLUMNS + LAYER_COLUMNS + CELL_RESULT_COLUMNS
VALUE_COLUMNS = ["grad_abs_mean", "grad_l2", "bias_grad_abs_mean", "output_rms", "loss", "output"]

# The order of rows in results/gradients.csv.
SORT_COLUMNS = ["device", "dtype", "activation", "width", "depth", "shortcut", "seed", "layer"]
