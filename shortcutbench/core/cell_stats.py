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

Every other family's cells (one record per named parameter, `layer` the
block it belongs to, -1 outside every block) get the same values from their
gradient profile, read with the family's layout (core/families/):
`profile_matrix` gives each cell's mean |grad| per layer of the profile (the
layer's profile parameter, or the element-weighted mean over all the
block's parameters), `family_values_many` the values:

- first_grad: the profile's first layer; last_grad: its last; attenuation
  first / last; factor: the per-layer factor fitted over the layers of the
  band (the family's `fit` groups give each its own intercept, e.g. a
  network's stages); stream_growth and stream_max: of the residual stream leaving each
  layer relative to the input's (families whose records carry it, e.g. a
  transformer's embeddings); token_cosine: a family's token collapse, a
  PLAIN value (NaN elsewhere).  bias_factor and cos_mid are the
  layer-per-record families' (NaN).
- state: the healthy band (states.classify) over the profile's layers, each
  against the last one before the family's head; the head counts for zero
  and finiteness only, as a one-record-per-layer network's output layer;
  the loss stands in for that network's output (a cell is "dead" only if
  its loss is exactly 0).  Where a
  block is all its parameters (a user family's layout), a block whose
  weights mostly get exactly 0 makes the cell "zero-branch"
  (block_zero_shares: the records' grad_zero_share, weighted by element).

The fit of a per-layer factor lives here too (fit_layer_factor), so that the
measured factors and mean field's predicted ones (analysis/theory.py) come
from one copy.

numpy only: no pandas, no torch.
"""

import importlib
import math

import numpy as np

from shortcutbench.core import families, states
from shortcutbench.core.records import CELL_COLUMNS, branch_value

# The per-cell values, each a float (NaN where the cell has none).
# last_grad and attenuation (first / last layer) are the report's; the rest the laws'.
LOG_VALUES = ("first_grad", "last_grad", "attenuation", "factor", "bias_factor",
              "stream_growth", "stream_max")
PLAIN_VALUES = ("cos_mid", "token_cosine")
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


def fit_slopes(values, n_fit, groups=None, x=None):
    """Per row of a cells x layers array: the least-squares slope of log10
    of its usable (finite, > 0) values against the layer index (or `x`, the
    layer each column is: a user's blocks may skip numbers), over its first
    n_fit[i] columns; NaN where fewer than two values are usable.
    groups: per column, the group whose own intercept it gets (one slope
    for all), -1 to leave the column out; None: one straight line."""
    values = np.asarray(values, dtype=float)
    n_cells, n_layers = values.shape
    column = np.arange(n_layers)
    x = column.astype(float) if x is None else np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mask = (column < np.asarray(n_fit)[:, None]) & np.isfinite(values) & (values > 0)
        if groups is not None:
            groups = np.asarray(groups)
            mask &= groups >= 0
        y = np.where(mask, np.log10(np.where(mask, values, 1.0)), 0.0)
        n = mask.sum(axis=1)
        if groups is None:
            xbar = np.where(mask, x, 0.0).sum(axis=1) / n
            ybar = y.sum(axis=1) / n
            dx = np.where(mask, x - xbar[:, None], 0.0)
            dy = np.where(mask, y - ybar[:, None], 0.0)
        else:
            dx, dy = np.zeros(values.shape), np.zeros(values.shape)
            for g in np.unique(groups[groups >= 0]):
                in_g = mask & (groups == g)
                m = np.maximum(in_g.sum(axis=1), 1)
                xbar = np.where(in_g, x, 0.0).sum(axis=1) / m
                ybar = np.where(in_g, y, 0.0).sum(axis=1) / m
                dx = np.where(in_g, x - xbar[:, None], dx)
                dy = np.where(in_g, y - ybar[:, None], dy)
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


def layer_values_many(columns, starts, band=states.DEFAULT_BAND):
    """cell_values_many for a family whose records are one per layer, each
    cell's from layer 0 in order (its cells start where layer 0 is: `starts`
    is for the common signature of a family's per-cell values)."""
    return cell_values_many(columns, band)


def values_function(family):
    """A family's per-cell values, f(columns, starts, band): its spec's
    `cell_values` where it names one, else family_values_many (its gradient
    profile, read with its layout)."""
    named = families.spec(family).cell_values
    if named is None:
        return family_values_many
    module, _, function = named.partition(":")
    return getattr(importlib.import_module(module), function)


def cell_bounds(layer):
    """Rows of whole cells (layer 0 starts each) -> (starts, depths)."""
    layer = np.asarray(layer)
    starts = np.flatnonzero(layer == 0)
    depths = np.diff(np.append(starts, len(layer)))
    return starts, depths


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


def profile_matrix(columns, starts, layout):
    """Each cell's gradient profile: {(depth, shortcut, norm): (cell
    indices, layers, values, streams)}, from a chunk's records of one family
    (columns as for cell_values_many, each cell's rows together, starting at
    `starts`); values and streams are cells x layers arrays.  A layer's value is its
    profile parameter's mean |grad|, or, where the layout names none, the
    mean over every element of the layer's parameters (their mean |grad|
    weighted by numel; one parameter: its own); its stream is the
    output_rms its first row records.  Cells of one depth, shortcut flag and
    norm have one architecture: the same profile layers."""
    n_rows = len(np.asarray(columns["layer"]))
    starts = np.asarray(starts, dtype=np.intp)
    counts = np.diff(np.append(starts, n_rows))
    cell_of_row = np.repeat(np.arange(len(starts)), counts)
    layer = np.asarray(columns["layer"], dtype=np.intp)
    names = np.asarray(columns["param"]).astype(str)
    unique, inverse = np.unique(names, return_inverse=True)
    picked = np.array([layout.is_profile(name) for name in unique], dtype=bool)
    rows = picked[inverse.reshape(-1)] & (layer >= 0)
    grad = np.asarray(columns["grad_abs_mean"], dtype=float)
    numel = np.asarray(columns["numel"], dtype=float)
    rms = np.asarray(columns["output_rms"], dtype=float)
    depth = np.asarray(columns["depth"], dtype=np.intp)[starts]
    shortcut = np.asarray(columns["shortcut"]).astype(bool)[starts]
    norm = np.asarray(columns["norm"]).astype(str)[starts]
    out = {}
    shapes = sorted({(int(d), bool(f), str(n)) for d, f, n in zip(depth, shortcut, norm)})
    for d, f, n in shapes:
        cells = np.flatnonzero((depth == d) & (shortcut == f) & (norm == n))
        in_d = np.flatnonzero(rows & np.isin(cell_of_row, cells))
        layers = np.unique(layer[in_d])
        key = (np.searchsorted(cells, cell_of_row[in_d]) * len(layers)
               + np.searchsorted(layers, layer[in_d]))
        size = len(cells) * len(layers)
        count = np.bincount(key, minlength=size)
        if not np.all(count > 0):
            raise ValueError(f"a cell of depth {d} lacks some of the profile layers "
                             f"{layers.tolist()} its siblings have")
        with np.errstate(invalid="ignore", over="ignore"):
            single = np.bincount(key, grad[in_d], minlength=size)
            weighted = (np.bincount(key, grad[in_d] * numel[in_d], minlength=size)
                        / np.bincount(key, numel[in_d], minlength=size))
        value = np.where(count == 1, single, weighted).reshape(len(cells), len(layers))
        _, first = np.unique(key, return_index=True)  # keys 0 .. size-1, each present
        stream = rms[in_d][first].reshape(len(cells), len(layers))
        out[(d, f, n)] = (cells, layers, value, stream)
    return out


def block_zero_shares(columns, starts):
    """Per cell and block (layer >= 0): the share of the block's weight
    elements whose gradient is exactly 0, weighted by element count; a
    block's weights are its parameters of two or more dimensions, or all of
    them where it has none.  Returns a cells x (largest layer + 1) array,
    NaN where a cell has no such block."""
    layer = np.asarray(columns["layer"], dtype=np.intp)
    n_rows = len(layer)
    starts = np.asarray(starts, dtype=np.intp)
    cell_of_row = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n_rows)))
    n_layers = int(layer.max()) + 1 if n_rows else 0
    inside = layer >= 0
    numel = np.asarray(columns["numel"], dtype=float)
    zeros = numel * np.asarray(columns["grad_zero_share"], dtype=float)
    weight = np.asarray(columns["ndim"], dtype=np.intp) >= 2
    size = len(starts) * n_layers
    key = cell_of_row[inside] * n_layers + layer[inside]
    shares = []
    for pick in (weight[inside], np.ones(int(inside.sum()), dtype=bool)):
        total = np.bincount(key[pick], numel[inside][pick], minlength=size)
        zero = np.bincount(key[pick], zeros[inside][pick], minlength=size)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares.append(np.where(total > 0, zero / total, np.nan))
    has_weights = np.bincount(key, weight[inside], minlength=size) > 0
    return np.where(has_weights, *shares).reshape(len(starts), n_layers)


def family_values_many(columns, starts, band=states.DEFAULT_BAND):
    """The per-cell values of a chunk's cells of a family with one record
    per parameter (each cell's rows together, starting at
    `starts`), read with the family's layout.  Returns what
    cell_values_many returns, and "profile": profile_matrix's {(depth,
    shortcut, norm): (cells, layers, values, streams)}."""
    columns = {name: np.asarray(values) for name, values in columns.items()}
    n_rows = len(columns["layer"])
    starts = np.asarray(starts, dtype=np.intp)
    n_cells = len(starts)
    models = np.unique(columns["model"][starts].astype(str))
    if len(models) != 1:
        raise ValueError(f"a chunk's records hold one model family, not {', '.join(models)}")
    layout = families.layout(str(models[0]))
    counts = np.diff(np.append(starts, n_rows))
    cell_of_row = np.repeat(np.arange(n_cells), counts)
    names = columns["param"].astype(str)
    layer = columns["layer"].astype(np.intp)
    grad = columns["grad_abs_mean"].astype(float)
    rms = columns["output_rms"].astype(float)
    finite = np.logical_and.reduceat(columns["finite"].astype(bool), starts)
    loss = columns["loss"].astype(float)[starts]
    unique, inverse = np.unique(names, return_inverse=True)
    is_head = np.array([layout.is_head(n) for n in unique], dtype=bool)[inverse.reshape(-1)]
    head_grad, head_rms, input_rms = (np.full(n_cells, np.nan) for _ in range(3))
    head_grad[cell_of_row[is_head]] = grad[is_head]
    head_rms[cell_of_row[is_head]] = rms[is_head]
    inputs = np.flatnonzero(layer == -1)  # the stream's start: its first row per cell
    _, first = np.unique(cell_of_row[inputs], return_index=True)
    input_rms[cell_of_row[inputs[first]]] = rms[inputs[first]]

    values = {name: np.full(n_cells, np.nan) for name in LOG_VALUES + PLAIN_VALUES}
    values["token_cosine"] = columns["token_cosine"].astype(float)[starts]
    values["state"] = np.empty(n_cells, dtype=object)
    profiles = profile_matrix(columns, starts, layout)
    # a block's zero share: where a block is all its parameters (a user family's)
    zero_shares = block_zero_shares(columns, starts) if layout.profile is None else None
    for (d, _, _), (pick, layers, profile, stream) in profiles.items():
        n = len(layers)
        head_inside = layout.head is not None and bool(is_head[np.isin(cell_of_row, pick)
                                                               & (layer == layers[-1])].any())
        band_layers = n - 1 if head_inside else n
        if layout.head is not None and not head_inside:
            grad_matrix = np.column_stack([profile, head_grad[pick]])
        else:
            grad_matrix = profile
        if not layout.stream:
            stream = None
        fit = np.full(len(pick), band_layers)
        groups = (np.asarray(layout.fit(d))[layers] if layout.fit is not None else None)
        # the last block's, not the head's when the profile holds the head
        first, last = profile[:, 0], profile[:, band_layers - 1]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ok = np.isfinite(first) & (first > 0) & np.isfinite(last) & (last > 0)
            values["first_grad"][pick] = first
            values["last_grad"][pick] = last
            values["attenuation"][pick] = np.where(ok, first / np.where(ok, last, 1.0), np.nan)
            values["factor"][pick] = 10.0 ** -fit_slopes(profile, fit, groups, layers)
            if stream is not None:
                values["stream_growth"][pick] = 10.0 ** fit_slopes(stream, fit)
                values["stream_max"][pick] = stream.max(axis=1) / input_rms[pick]
        if stream is not None and layout.head is not None and not head_inside:
            stream = np.column_stack([stream, head_rms[pick]])
        zero_share = None
        if zero_shares is not None:
            zero_share = zero_shares[pick][:, layers]
            if grad_matrix.shape[1] > len(layers):  # the head's column: never a branch
                zero_share = np.column_stack([zero_share, np.zeros(len(pick))])
        state = states.classify(grad_matrix, loss[pick], stream, input_rms[pick],
                                depth=np.full(len(pick), grad_matrix.shape[1]), band=band,
                                finite=finite[pick], head=layout.head is not None,
                                zero_share=zero_share,
                                shortcut=(columns["shortcut"][starts][pick]
                                          & (columns["shortcut_scale"][starts][pick] != 0)))
        values["state"][pick] = np.asarray(states.STATES)[state]
    values["state"] = values["state"].astype(str)
    per_cell = {c: columns[c][starts] for c in CELL_COLUMNS}
    return {**per_cell, **values, "profile": profiles}


def state_indices(values):
    """values["state"] (names) as indices into states.STATES, ready to be counted."""
    index = {name: i for i, name in enumerate(states.STATES)}
    return np.array([index[s] for s in values["state"]], dtype=np.int64)
