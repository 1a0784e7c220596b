"""What a measurement record is: the columns of results/cells/*.csv and
results/gradients.csv.  Torch-free, so both sides of the pipeline share it."""

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Cell:
    """One network on one device in one dtype: the unit of measurement.

    shortcut_scale is the lambda of x = lambda * x + layer(x); cells without
    a shortcut record 0.0 (0 * x + layer(x) is exactly the no-shortcut net).
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


CELL_COLUMNS = [f.name for f in fields(Cell)]
CELL_TYPES = {f.name: f.type for f in fields(Cell)}  # int, float, bool or str
# Per layer: the seed's statistic (mean |grad| of the weight) and a few more;
# output_rms is the RMS of what leaves the layer (shortcut included).
LAYER_COLUMNS = ["layer", "param", "grad_abs_mean", "grad_l2", "bias_grad_abs_mean", "output_rms"]
# Per cell, repeated on each of its layers' rows.
CELL_RESULT_COLUMNS = ["loss", "output", "finite"]
COLUMNS = CELL_COLUMNS + LAYER_COLUMNS + CELL_RESULT_COLUMNS
VALUE_COLUMNS = ["grad_abs_mean", "grad_l2", "bias_grad_abs_mean", "output_rms", "loss", "output"]

# The order of rows in results/gradients.csv.
SORT_COLUMNS = ["device", "dtype", "activation", "init", "norm", "width", "depth", "shortcut",
                "shortcut_scale", "seed", "layer"]
