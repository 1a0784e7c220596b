"""Every per-cell number the laws need, computed where the records are.

One cell's records (one per layer) -> a few numbers: its state (states.py),
its first-layer gradient, the per-layer factors fitted over its hidden layers,
the stream's growth and reach, and the gradient's alignment with the stream.
The measuring job computes them per chunk; the partial results aggregate them
per group (records.CELL_COLUMNS minus seed) into moments (n, mean, m2) and
state counts, and the laws read those (analysis/laws.py).  How each value is
averaged over seeds is declared here:

- LOG_VALUES: positive quantities averaged as log10 of their usable (finite,
  > 0) values -- geometric means with t-intervals on the log scale;
- PLAIN_VALUES: averaged as they are, over their finite values.

`cell_values(cell_records, band)` does one cell; `cell_values_many(columns,
band)` a whole chunk at once (cells x layers arrays), with the same numbers
(cell_values is cell_values_many on one cell, and cells are computed one
depth at a time, so a cell's numbers do not depend on its chunk).

GPT cells (records.Cell.model == "gpt", one record per named parameter,
layer -1 for the embeddings, 0..blocks-1 per block, blocks for the final norm
and the head) get the same values from the per-block series of
`trf_blocks.{i}.att.W_query.weight`'s mean |grad| (gpt_values_many):

- first_grad: block 0's W_query; last_grad: the last block's; attenuation
  first / last; factor: the per-block factor fitted over all blocks (two or
  more); stream_growth and stream_max: of the residual stream leaving each
  block, relative to the embeddings' RMS; token_cosine: the cell's token
  collapse (mean pairwise cosine of the last block's token outputs), a
  PLAIN value (NaN for the MLP).  bias_factor and cos_mid are NaN.
- state: the healthy band (states.classify) over the blocks' W_query
  gradients, each against the last block's (the GPT's "last hidden
  layer"): vanished or exploded when some block's lies more than `band`
  decades below or above it, exploded too when the stream leaving some
  block (or the logits) has an RMS above 10^band times the embeddings'.
  The head's weight gradient counts for zero and finiteness only, as the
  MLP's output layer; the loss stands in for the MLP's output (never 0:
  no GPT cell is "dead").

The fit of a per-layer factor lives here too (fit_layer_factor), so that the
measured factors and mean field's predicted ones (analysis/theory.py) come
from one copy.

numpy only: no pandas, no torch.
"""

import math

import numpy as np

from shortcutbench.core import states
from shortcutbench.core.records import CELL_COLUMNS, branch_value

# The per-cell values, each a float (NaN where the cell has none).
# last_grad and attenuation (first / last layer) are the report's; the rest the laws'.
LOG_VALUES = ("first_grad", "last_grad", "attenuation", "factor", "bias_factor",
              "stream_growth", "stream_max")
PLAIN_VALUES = ("cos_mid", "token_cosine")
# The GPT family's per-block parameter whose gradient gives its state and
# first_grad (block 0's), and the one its head is.
GPT_STATE_PARAM = "att.W_query.weight"
GPT_HEAD_PARAM = "out_head.weight"
# Where cos_mid reads cos(dL/dx_l, x_l): layers 10-30, past the start, before the end.
MID_LAYERS = (10, 30)


def fit_layer_factor(values, layers=None):
    """The per-layer factor values[l] / values[l+1] (toward the input) of a
    straight line in log: 10**(-slope) of the least-squares fit of
    log10(values) against the layer index over `layers` (default: all but the
    last layer).  Only finite, positive values take part; nan if fewer than
    two do."""
    values = np.asarray(values, dtype=float)
    layers = np.arange(len(values) - 1) if layers is None else np.asarray(list(layers), dtype=int)
    v = values[layers]
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v > 0)
    if ok.sum() < 2:
        return math.nan
    x = layers[ok].astype(float)
    y = np.log10(v[ok])
    dx = x - x.mean()
    slope = float(np.sum(dx * (y - y.mean())) / np.sum(dx * dx))
    return float(10.0 ** (-slope))


def fit_slopes(values, n_fit):
    """Per row of a cells x layers array: the least-squares slope of log10
    of its usable (finite, > 0) values against the layer index, over its
    first n_fit[i] layers; NaN where fewer than two values are usable."""
    values = np.asarray(values, dtype=float)
    n_cells, n_layers = values.shape
    x = np.arange(n_layers, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mask = (x < np.asarray(n_fit)[:, None]) & np.isfinite(values) & (values > 0)
        y = np.where(mask, np.log10(np.where(mask, values, 1.0)), 0.0)
        n = mask.sum(axis=1)
        xbar = np.where(mask, x, 0.0).sum(axis=1) / n
        ybar = y.sum(axis=1) / n
        dx = np.where(mask, x - xbar[:, None], 0.0)
        dy = np.where(mask, y - ybar[:, None], 0.0)
        slope = (dx * dy).sum(axis=1) / (dx * dx).sum(axis=1)
    return np.where(n >= 2, slope, np.nan)


def values_from_arrays(grad, bias_grad, output_rms, grad_stream_cos, output, finite, depth,
                       width, shortcut, alpha, band=states.DEFAULT_BAND):
    """The per-cell values of many cells from cells x layers arrays (NaN past
    each cell's depth) and per-cell arrays (output, finite, depth, width,
    shortcut, alpha = the branch scale as a number).  Returns {name: array}
    for LOG_VALUES, PLAIN_VALUES and "state" (names from states.STATES)."""
    grad = np.atleast_2d(np.asarray(grad, dtype=float))
    n_cells, n_layers = grad.shape
    depth = np.asarray(depth, dtype=np.intp).reshape(-1)
    width = np.asarray(width).reshape(-1)
    output_rms = np.atleast_2d(np.asarray(output_rms, dtype=float))
    in_rms = states.input_rms(width)
    layer = np.arange(n_layers)
    valid = layer < depth[:, None]
    hidden = np.where(depth >= 3, depth - 1, 0)  # the factors need 2+ hidden layers

    factor = 10.0 ** -fit_slopes(grad, hidden)
    bias_factor = 10.0 ** -fit_slopes(bias_grad, hidden)
    stream_growth = 10.0 ** fit_slopes(output_rms, hidden)
    with np.errstate(invalid="ignore"):
        reach = np.where(valid, output_rms, -np.inf).max(axis=1)
        reach[np.any(valid & np.isnan(output_rms), axis=1)] = np.nan
        stream_max = reach / in_rms
        cos = np.atleast_2d(np.asarray(grad_stream_cos, dtype=float))
        mid = (valid & (layer >= MID_LAYERS[0]) & (layer <= MID_LAYERS[1])
               & np.isfinite(cos))
        count = mid.sum(axis=1)
        cos_mid = np.where(mid, cos, 0.0).sum(axis=1) / np.where(count, count, 1)
    cos_mid = np.where(count > 0, cos_mid, np.nan)

    divisor = states.branch_alpha(depth, width, shortcut, alpha, n_layers)
    state = states.classify(grad, output, output_rms, in_rms, depth=depth, band=band,
                            finite=finite, alpha=divisor)
    first = grad[:, 0].copy()
    last = grad[np.arange(n_cells), depth - 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = np.isfinite(first) & (first > 0) & np.isfinite(last) & (last > 0)
        attenuation = np.where(ok, first / np.where(ok, last, 1.0), np.nan)
    return {"first_grad": first, "last_grad": last, "attenuation": attenuation,
            "factor": factor, "bias_factor": bias_factor,
            "stream_growth": stream_growth, "stream_max": stream_max, "cos_mid": cos_mid,
            "state": np.asarray(states.STATES)[state]}


def _alphas(labels, depth, shortcut):
    """Each cell's alpha: its branch label's value at its depth, 1 without a
    shortcut."""
    labels = np.asarray(labels).astype(str)
    alpha = np.ones(len(labels))
    for label in np.unique(labels):
        for d in np.unique(depth[labels == label]):
            pick = (labels == label) & (depth == d)
            alpha[pick] = branch_value(str(label), int(d))
    return np.where(np.asarray(shortcut, dtype=bool), alpha, 1.0)


def cell_values_many(columns, band=states.DEFAULT_BAND):
    """The per-cell values of every cell in tidy records.

    columns: {column: sequence} of records.COLUMNS (lists, numpy arrays or
    anything np.asarray takes, e.g. an Arrow table's columns), one row per
    cell x layer, each cell's rows together and in layer order (as
    measure.run_chunk writes them).  Returns {name: array of one entry per
    cell, in order}: the cell's CELL_COLUMNS, LOG_VALUES, PLAIN_VALUES and
    "state"."""
    layer = np.asarray(columns["layer"], dtype=np.intp)
    n_rows = len(layer)
    if n_rows == 0:
        empty = {c: np.array([]) for c in CELL_COLUMNS + list(LOG_VALUES + PLAIN_VALUES)}
        return {**empty, "state": np.array([], dtype=str)}
    starts = np.flatnonzero(layer == 0)
    if len(starts) == 0 or starts[0] != 0:
        raise ValueError("records must start each cell at layer 0")
    cell = np.cumsum(layer == 0) - 1
    n_cells = len(starts)
    if not np.array_equal(layer, np.arange(n_rows) - starts[cell]):
        raise ValueError("each cell's records must be together, in layer order 0, 1, ...")
    depth = np.asarray(columns["depth"], dtype=np.intp)[starts]
    counts = np.diff(np.append(starts, n_rows))
    if not np.array_equal(depth, counts):
        raise ValueError("a cell has not as many records as its depth")

    def per_cell(name):
        return np.asarray(columns[name])[starts]

    finite = np.logical_and.reduceat(np.asarray(columns["finite"], dtype=bool), starts)
    width = per_cell("width").astype(np.intp)
    shortcut = per_cell("shortcut").astype(bool)
    alpha = _alphas(per_cell("branch_scale"), depth, shortcut)
    output = np.asarray(columns["output"], dtype=float)[starts]
    layer_values = {name: np.asarray(columns[name], dtype=float) for name in (
        "grad_abs_mean", "bias_grad_abs_mean", "output_rms", "grad_stream_cos")}
    values = {name: np.full(n_cells, np.nan) for name in LOG_VALUES + PLAIN_VALUES}
    values["state"] = np.empty(n_cells, dtype=object)
    # One depth at a time: cells x depth arrays without padding, so a cell's
    # numbers do not depend on the other cells of its chunk.
    for d in np.unique(depth):
        pick = np.flatnonzero(depth == d)
        rows = starts[pick][:, None] + np.arange(d)
        got = values_from_arrays(
            *(layer_values[name][rows] for name in (
                "grad_abs_mean", "bias_grad_abs_mean", "output_rms", "grad_stream_cos")),
            output[pick], finite[pick], depth[pick], width[pick], shortcut[pick], alpha[pick],
            band)
        for name, array in got.items():
            values[name][pick] = array
    values["state"] = values["state"].astype(str)
    return {**{c: per_cell(c) for c in CELL_COLUMNS}, **values}


def cell_bounds(layer):
    """Rows of whole cells (layer 0 starts each) -> (starts, depths)."""
    layer = np.asarray(layer)
    starts = np.flatnonzero(layer == 0)
    depths = np.diff(np.append(starts, len(layer)))
    return starts, depths


def chunk_values(columns, band=states.DEFAULT_BAND):
    """cell_values_many for core/partials.py: "state" as indices into
    states.STATES, ready to be counted."""
    values = cell_values_many(columns, band)
    index = {name: i for i, name in enumerate(states.STATES)}
    values["state"] = np.array([index[s] for s in values["state"]], dtype=np.int64)
    return values


def cell_values(cell_records, band=states.DEFAULT_BAND):
    """One cell's values: {name: float} for LOG_VALUES and PLAIN_VALUES, and
    "state" (a name from states.STATES).  cell_records: its records (dicts
    with records.COLUMNS), one per layer, in any order."""
    rows = sorted(cell_records, key=lambda r: r["layer"])
    names = ("layer", "depth", "width", "shortcut", "branch_scale", "grad_abs_mean",
             "bias_grad_abs_mean", "output_rms", "grad_stream_cos", "output", "finite")
    columns = {name: [r[name] for r in rows] for name in names}
    columns.update({c: [r[c] for r in rows] for c in CELL_COLUMNS if c not in columns})
    values = cell_values_many(columns, band)
    return {**{name: float(values[name][0]) for name in LOG_VALUES + PLAIN_VALUES},
            "state": str(values["state"][0])}


def gpt_values_many(columns, starts, band=states.DEFAULT_BAND):
    """The per-cell values of every GPT cell of a chunk's records (columns
    as for cell_values_many; each cell's rows together, in layer order, its
    rows starting at `starts`).  Returns what cell_values_many returns."""
    n_rows = len(np.asarray(columns["layer"]))
    starts = np.asarray(starts, dtype=np.intp)
    n_cells = len(starts)
    counts = np.diff(np.append(starts, n_rows))
    cell_of_row = np.repeat(np.arange(n_cells), counts)
    param = np.asarray(columns["param"]).astype(str)
    grad = np.asarray(columns["grad_abs_mean"], dtype=float)
    rms = np.asarray(columns["output_rms"], dtype=float)
    layer = np.asarray(columns["layer"], dtype=np.intp)
    query = np.char.endswith(param, "." + GPT_STATE_PARAM) & np.char.startswith(
        param, "trf_blocks.")
    head = param == GPT_HEAD_PARAM
    blocks = np.asarray(columns["depth"], dtype=np.intp)[starts]
    finite = np.logical_and.reduceat(np.asarray(columns["finite"], dtype=bool), starts)
    loss = np.asarray(columns["loss"], dtype=float)[starts]
    cosine = np.asarray(columns["token_cosine"], dtype=float)[starts]
    embedding_rms = rms[starts]  # layer -1 comes first
    head_grad = np.full(n_cells, np.nan)
    head_grad[cell_of_row[head]] = grad[head]
    head_rms = np.full(n_cells, np.nan)
    head_rms[cell_of_row[head]] = rms[head]

    values = {name: np.full(n_cells, np.nan) for name in LOG_VALUES + PLAIN_VALUES}
    values["token_cosine"] = cosine
    values["state"] = np.empty(n_cells, dtype=object)
    for b in np.unique(blocks):
        pick = np.flatnonzero(blocks == b)
        rows = query & np.isin(cell_of_row, pick)
        if rows.sum() != len(pick) * b or not np.array_equal(
                layer[rows].reshape(len(pick), b), np.broadcast_to(np.arange(b), (len(pick), b))):
            raise ValueError(f"a GPT cell of {b} blocks lacks one W_query row per block")
        wq = grad[rows].reshape(len(pick), b)
        stream = rms[rows].reshape(len(pick), b)
        fit = np.full(len(pick), b)
        values["first_grad"][pick] = wq[:, 0]
        values["last_grad"][pick] = wq[:, -1]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            first, last = wq[:, 0], wq[:, -1]
            ok = np.isfinite(first) & (first > 0) & np.isfinite(last) & (last > 0)
            values["attenuation"][pick] = np.where(ok, first / np.where(ok, last, 1.0), np.nan)
            values["factor"][pick] = 10.0 ** -fit_slopes(wq, fit)
            values["stream_growth"][pick] = 10.0 ** fit_slopes(stream, fit)
            values["stream_max"][pick] = stream.max(axis=1) / embedding_rms[pick]
        state = states.classify(
            np.column_stack([wq, head_grad[pick]]), loss[pick],
            np.column_stack([stream, head_rms[pick]]), embedding_rms[pick],
            depth=np.full(len(pick), b + 1), band=band, finite=finite[pick])
        values["state"][pick] = np.asarray(states.STATES)[state]
    values["state"] = values["state"].astype(str)
    per_cell = {c: np.asarray(columns[c])[starts] for c in CELL_COLUMNS}
    return {**per_cell, **values}


def gpt_chunk_values(columns, starts, band=states.DEFAULT_BAND):
    """gpt_values_many for core/partials.py: "state" as indices into
    states.STATES."""
    values = gpt_values_many(columns, starts, band)
    index = {name: i for i, name in enumerate(states.STATES)}
    values["state"] = np.array([index[s] for s in values["state"]], dtype=np.int64)
    return values
