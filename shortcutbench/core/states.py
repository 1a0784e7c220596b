"""The state of a cell: healthy, vanished, exploded, dead or non-finite.

Defined once, here; the tables, the headline and the findings use it.

A cell is *healthy* when its output is finite and non-zero, every layer's
mean |grad| lies within 10^+-band of the last layer's (bounds included), and
the stream stays within 10^band of the input's RMS.  `band` is the config's
`healthy_band` (default 2 decades: a first layer that learns 100x slower than
the last at one learning rate is as good as frozen over a short run, and at
width >= 32 the seed-to-seed spread of a healthy net is well inside it).

Every cell gets exactly one state, in this precedence:

1. non-finite: an output, a stream RMS or a gradient is inf or NaN (or the
   caller's `finite` flag is False): nothing else can be judged.
2. dead: the output is exactly 0.  MSE against 0 then back-propagates
   exactly 0 to every weight: there is no gradient to compare.  (At depth
   these are mostly saturated explosions -- GELU(h) == 0 for a hugely
   negative h -- which their output_rms column shows.)
3. exploded: some layer's gradient lies above 10^band times the last
   layer's, or the stream leaving some layer has an RMS above 10^band times
   the input's.  The second test is needed: a forward explosion lifts every
   gradient with the stream, the last layer's most (it carries the output's
   error times the stream), so the ratios look like vanishing.  The book's
   shortcut net at depth 64 (width 3) has a stream RMS of ~1.8e5 before the
   last layer, |output| ~3e4, a last-layer gradient of ~2.6e10, yet a
   first/last gradient ratio of only ~3e-3: a purely relative test would
   call it vanished.  Exploded wins over vanished for the same reason.
4. vanished: some layer's gradient lies below 10^-band times the last
   layer's, or is exactly 0.
5. healthy: none of the above.

numpy only: no pandas, no torch.  `classify` works on whole arrays (cells x
layers, NaN-padded past each cell's depth), ~100,000 cells in well under a
second.
"""

import numpy as np

STATES = ("healthy", "vanished", "exploded", "dead", "non-finite")
HEALTHY, VANISHED, EXPLODED, DEAD, NON_FINITE = range(len(STATES))
DEFAULT_BAND = 2.0

# The smallest positive normal number of each dtype the sweep can use.
SMALLEST_NORMAL = {
    "float64": 2.2250738585072014e-308,
    "float32": 1.1754943508222875e-38,
    "bfloat16": 1.1754943508222875e-38,  # float32's exponent range
    "float16": 6.103515625e-05,
}


def input_rms(width):
    """RMS of the sample input linspace(1, -1, width) (model.sample_input)."""
    width = np.asarray(width, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rms = np.sqrt((width + 1) / (3 * (width - 1)))
    return np.where(width <= 1, 1.0, rms)


def to_matrix(cell, layer, values, n_cells=None, n_layers=None):
    """Tidy rows (cell index, layer index, value) -> a cells x layers array,
    NaN where a cell has no such layer."""
    cell, layer = np.asarray(cell, dtype=np.intp), np.asarray(layer, dtype=np.intp)
    n_cells = int(cell.max()) + 1 if n_cells is None else n_cells
    n_layers = int(layer.max()) + 1 if n_layers is None else n_layers
    out = np.full((n_cells, n_layers), np.nan)
    out[cell, layer] = values
    return out


def classify(grad, output, output_rms, in_rms, depth=None, band=DEFAULT_BAND, finite=None):
    """Each cell's state as an index into STATES.

    grad:       cells x layers, mean |grad| of each layer's weight
    output:     cells, the network's output
    output_rms: cells x layers, RMS of the stream leaving each layer
    in_rms:     cells (or a scalar), RMS of the input (input_rms(width))
    depth:      cells, each cell's number of layers (columns past it are
                ignored: NaN padding); default: every column counts
    band:       decades either side of the last layer's gradient
    finite:     cells, an extra finiteness flag (the records' `finite`)
    """
    grad = np.atleast_2d(np.asarray(grad, dtype=float))
    output_rms = np.atleast_2d(np.asarray(output_rms, dtype=float))
    output = np.asarray(output, dtype=float).reshape(-1)
    n_cells, n_layers = grad.shape
    depth = (np.full(n_cells, n_layers) if depth is None
             else np.asarray(depth, dtype=np.intp).reshape(-1))
    valid = np.arange(n_layers) < depth[:, None]
    in_rms = np.broadcast_to(np.asarray(in_rms, dtype=float), (n_cells,))
    last = grad[np.arange(n_cells), np.maximum(depth, 1) - 1][:, None]
    high, low = 10.0 ** band, 10.0 ** -band

    with np.errstate(invalid="ignore", over="ignore"):
        non_finite = (~np.isfinite(output)
                      | np.any(valid & ~np.isfinite(grad), axis=1)
                      | np.any(valid & ~np.isfinite(output_rms), axis=1))
        if finite is not None:
            non_finite |= ~np.asarray(finite, dtype=bool).reshape(-1)
        dead = output == 0
        exploded = (np.any(valid & (grad > high * last), axis=1)
                    | np.any(valid & (output_rms > high * in_rms[:, None]), axis=1))
        vanished = np.any(valid & ((grad < low * last) | (grad == 0)), axis=1)

    state = np.full(n_cells, HEALTHY, dtype=np.int8)
    for mask, code in ((vanished, VANISHED), (exploded, EXPLODED), (dead, DEAD),
                       (non_finite, NON_FINITE)):  # lowest precedence first
        state[mask] = code
    return state


def cell_states(*args, **kwargs):
    """classify(...) as names: an array of strings from STATES."""
    return np.asarray(STATES)[classify(*args, **kwargs)]


def subnormal(values, dtype):
    """Which values are subnormal in `dtype` (a name, or an array of names
    matching `values`): finite, non-zero and below the dtype's smallest
    normal in magnitude, where only a few bits of precision are left."""
    values = np.abs(np.asarray(values, dtype=float))
    if isinstance(dtype, str):
        tiny = SMALLEST_NORMAL[dtype]
    else:
        names = np.asarray(dtype)
        tiny = np.full(names.shape, np.nan)
        for name in np.unique(names):
            tiny[names == name] = SMALLEST_NORMAL[str(name)]
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0) & (values < tiny)
