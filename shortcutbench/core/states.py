"""The state of a cell: healthy, vanished, exploded, dead, non-finite or
zero-branch.

Defined once, here; the tables, the headline and the findings use it.

A cell is *healthy* when its output is finite and non-zero, every hidden
layer's mean |grad| lies within 10^+-band of the last hidden layer's (bounds
included), and the stream stays within 10^band of the input's RMS.  `band` is
the config's `healthy_band` (default 2 decades: a first layer that learns
100x slower than the last hidden one at one learning rate is as good as
frozen over a short run, and at width >= 32 the seed-to-seed spread of a
healthy net is well inside it).

The reference is the last *hidden* layer (layer depth-2; for depth 1 the only
layer), not the width -> 1 output layer.  The output layer's weight gradient
is the output's error times the stream, without the 1/sqrt(fan-in) that the
next layer's weights put on every hidden layer's: it sits above the hidden
layers by a factor that grows with width and has nothing to do with depth
(measured, median over 30 seeds, log10 of output / last hidden: 0.2-1.0 at
width 3, 1.3-1.4 at width 32, 1.8-1.9 at width 256, with or without the
shortcut).  Around the output layer, a band of 2 decades left a wide net's
hidden layers almost no room below it (every deep width-256 net "vanished");
counting the output layer in the band around the last hidden one would call
every healthy net of width >= ~500 "exploded".  So the output layer is out of
the band test; it still counts for finiteness, a zero gradient, and the
stream (its output_rms is |output|).

A scaled residual branch, x = lambda x + alpha f(x), puts alpha in front of
its own weight gradient: each such layer's gradient is divided by alpha
before it is compared (`alpha`, see branch_alpha()).  Every hidden layer of a
shortcut net carries the branch, the reference included, so within the
hidden layers the division cancels (up to rounding): a scaled branch is
judged by what depth does to its gradient, not by its constant alpha.

Every cell gets exactly one state, in this precedence:

1. non-finite: an output, a stream RMS or a gradient is inf or NaN (or the
   caller's `finite` flag is False): nothing else can be judged.
2. dead: the output is exactly 0.  MSE against 0 then back-propagates
   exactly 0 to every weight: there is no gradient to compare.  (At depth
   these are mostly saturated explosions -- GELU(h) == 0 for a hugely
   negative h -- which their output_rms column shows.)
3. zero-branch: in a cell with its shortcuts, some block's weights mostly
   get a gradient of exactly 0 (more than half of their elements, counted
   by element: the weights are
   a block's parameters of two or more dimensions, or all of them where it
   has none), while the block as a whole still gets some (its point is
   non-zero).  At initialisation this is a zero-initialised residual
   branch: SkipInit (De & Smith 2020), Fixup (Zhang et al. 2019), timm's
   ResNets with `zero_init_last` (its blocks' last BatchNorm starts at
   weight 0).  The branch's last factor is 0, so it passes nothing back to
   its own earlier weights; what the shortcut keeps alive is the skip path
   alone.  In timm's resnet18 with one block a stage, 96-100% of each
   block's weight elements get exactly 0 (tests/test_zero_branch.py).  A
   block's point, the mean |grad| over all its elements, is non-zero as
   soon as one element is (the zero gate's own gradient), so the band
   would call such a cell healthy: it is not.  After non-finite and dead, which
   explain the zeros (nothing to judge, or nothing flowing back at all);
   before exploded and vanished, whose band test compares points that here
   measure the gate, not the block's weights: the structural zero is the
   more specific diagnosis.  A block whose every element gets exactly 0
   (a gradient that underflowed, or a block the loss does not reach) is
   not zero-branch but vanished (point 0), and so is a cell without its
   shortcuts whose block's weights mostly get exactly 0: it has no residual
   branch, and the gradient did not reach them.  Only families whose blocks are
   all their parameters (a user family's, core/families/'s Layout with
   no profile parameter) are tested: the shipped families' points are one
   weight each, and their cells keep the five states.
   (Exact zeros have other causes too: a saturated GELU or a dead ReLU unit
   zeroes its weight row; in the default sweep 7 healthy width-3 cells
   have a layer whose weight gradient is mostly exactly 0.)
4. exploded: some hidden layer's gradient lies above 10^band times the last
   hidden layer's, or the stream leaving some layer has an RMS above 10^band
   times the input's.  The second test is needed: a forward explosion lifts
   every gradient with the stream, the last layers' most, so the ratios look
   like vanishing.  The book's shortcut net at depth 64 (width 3) has a
   stream RMS of ~1.8e5 before the last layer, |output| ~3e4, a last-layer
   gradient of ~2.6e10, yet a first/last gradient ratio of only ~3e-3: a
   purely relative test would call it vanished.  Exploded wins over vanished
   for the same reason.
5. vanished: some hidden layer's gradient lies below 10^-band times the last
   hidden layer's, or some layer's (the output layer's too) is exactly 0.
6. healthy: none of the above.

numpy only: no pandas, no torch.  `classify` works on whole arrays (cells x
layers, NaN-padded past each cell's depth), ~100,000 cells in well under a
second.
"""

import numpy as np

# (a state added later goes last: the partial results count them by index)
STATES = ("healthy", "vanished", "exploded", "dead", "non-finite", "zero-branch")
HEALTHY, VANISHED, EXPLODED, DEAD, NON_FINITE, ZERO_BRANCH = range(len(STATES))
# Each state's column of cell counts in the partial results ('non-finite':
# 'state_non_finite'), and its key in a table's column names ('non_finite').
STATE_KEYS = {s: s.replace("-", "_") for s in STATES}
STATE_COLUMNS = {s: f"state_{key}" for s, key in STATE_KEYS.items()}
# "Mostly": more than this share of a block's weight elements get exactly 0.
ZERO_BRANCH_SHARE = 0.5
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


def branch_alpha(depth, width, shortcut, alpha, n_layers=None):
    """cells x layers: what each layer's weight gradient is divided by before
    the band test -- alpha on the layers that carry the scaled branch (a
    shortcut cell's width -> width layers, 0..depth-2, and the output layer
    too where width is 1: model.forward adds the shortcut wherever the shapes
    match), 1 elsewhere.  alpha: each cell's branch scale as a number
    (records.branch_value)."""
    depth = np.asarray(depth, dtype=np.intp).reshape(-1)
    width = np.broadcast_to(np.asarray(width, dtype=np.intp).reshape(-1), depth.shape)
    shortcut = np.broadcast_to(np.asarray(shortcut, dtype=bool).reshape(-1), depth.shape)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float).reshape(-1), depth.shape)
    n_layers = int(depth.max()) if n_layers is None else n_layers
    layer = np.arange(n_layers)
    branched = shortcut[:, None] & ((layer < depth[:, None] - 1)
                                    | ((layer == depth[:, None] - 1) & (width[:, None] == 1)))
    return np.where(branched, alpha[:, None], 1.0)


def classify(grad, output, output_rms, in_rms, depth=None, band=DEFAULT_BAND, finite=None,
             alpha=None, head=True, zero_share=None, shortcut=None):
    """Each cell's state as an index into STATES.

    grad:       cells x layers, mean |grad| of each layer's weight
    output:     cells, the network's output (a family without one: its loss)
    output_rms: cells x layers, RMS of the stream leaving each layer, or
                None where the family's records carry no stream (no stream
                test)
    in_rms:     cells (or a scalar), RMS of the input (input_rms(width))
    depth:      cells, each cell's number of layers (columns past it are
                ignored: NaN padding); default: every column counts
    band:       decades either side of the last hidden layer's gradient
    finite:     cells, an extra finiteness flag (the records' `finite`)
    alpha:      cells x layers, what each layer's gradient is divided by
                (branch_alpha()); default 1
    head:       the last layer is the output layer, out of the band (the
                family's head, its spec's Layout.head, or a width -> 1 layer);
                False: every layer is in the band, the last one its reference
    zero_share: cells x layers, the share of each block's weight elements
                whose gradient is exactly 0 (core/cell_stats.py's
                block_zero_shares); None: no
                zero-branch test
    shortcut:   cells, whether each has its shortcuts; None: all do.  A cell
                without them has no residual branch: a block of mostly
                exactly-zero weight gradients there is vanished (the gradient
                did not reach them: underflow, or dead units)
    """
    grad = np.atleast_2d(np.asarray(grad, dtype=float))
    output = np.asarray(output, dtype=float).reshape(-1)
    n_cells, n_layers = grad.shape
    depth = (np.full(n_cells, n_layers) if depth is None
             else np.asarray(depth, dtype=np.intp).reshape(-1))
    layer = np.arange(n_layers)
    valid = layer < depth[:, None]
    if head:  # the band's layers; depth 1: layer 0
        hidden = layer < np.maximum(depth - 1, 1)[:, None]
        last = np.maximum(depth - 2, 0)
    else:
        hidden, last = valid, depth - 1
    in_rms = np.broadcast_to(np.asarray(in_rms, dtype=float), (n_cells,))
    high, low = 10.0 ** band, 10.0 ** -band

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        scaled = grad if alpha is None else grad / np.asarray(alpha, dtype=float)
        reference = scaled[np.arange(n_cells), last][:, None]
        non_finite = ~np.isfinite(output) | np.any(valid & ~np.isfinite(grad), axis=1)
        if output_rms is not None:
            output_rms = np.atleast_2d(np.asarray(output_rms, dtype=float))
            non_finite |= np.any(valid & ~np.isfinite(output_rms), axis=1)
            stream_high = np.any(valid & (output_rms > high * in_rms[:, None]), axis=1)
        else:
            stream_high = np.zeros(n_cells, dtype=bool)
        if finite is not None:
            non_finite |= ~np.asarray(finite, dtype=bool).reshape(-1)
        dead = output == 0
        # (a zero reference is a zero gradient: vanished, not everything above it)
        exploded = ((np.any(hidden & (scaled > high * reference), axis=1) & (reference[:, 0] > 0))
                    | stream_high)
        vanished = (np.any(hidden & (scaled < low * reference), axis=1)
                    | np.any(valid & (grad == 0), axis=1))
        if zero_share is not None:
            zero_share = np.atleast_2d(np.asarray(zero_share, dtype=float))
            zero_branch = np.any(valid & (zero_share > ZERO_BRANCH_SHARE) & (grad > 0), axis=1)
            if shortcut is not None:  # no branch: the gradient did not reach those weights
                plain = ~np.asarray(shortcut, dtype=bool).reshape(-1)
                vanished |= zero_branch & plain
                zero_branch &= ~plain
        else:
            zero_branch = np.zeros(n_cells, dtype=bool)

    state = np.full(n_cells, HEALTHY, dtype=np.int8)
    for mask, code in ((vanished, VANISHED), (exploded, EXPLODED), (zero_branch, ZERO_BRANCH),
                       (dead, DEAD), (non_finite, NON_FINITE)):  # lowest precedence first
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
