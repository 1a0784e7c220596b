"""Per-cell values, computed once per cell inside the measuring job and
aggregated over seeds by core/partials.py (numpy only).

A minimal version (the PARTIALS branch): the state (core.states), the first
and last layer's gradient and the attenuation first/last.  The LAWS branch
replaces it with the values the findings need; partials.py aggregates
whatever LOG_VALUES and PLAIN_VALUES declare.

`cell_values(cell_records, band)`:
    cell_records: a dict of numpy arrays, one per column of records.COLUMNS,
                  holding whole cells: the rows of each cell contiguous and
                  in layer order (each cell's first row is its layer 0).
    band:         the config's healthy_band.
    returns:      {name: array with one value per cell, in order of
                  appearance}; "state" holds indices into states.STATES.
"""

import numpy as np

from shortcutbench.core import states

# Aggregated as moments of log10 of their usable (finite, > 0) values.
LOG_VALUES = ("first_grad", "last_grad", "attenuation")
# Aggregated as moments of their finite values.
PLAIN_VALUES = ()
# Values holding indices into states.STATES: counted per state.
STATE_VALUES = ("state",)


def cell_bounds(layer):
    """Rows of whole cells (layer 0 starts each) -> (starts, depths)."""
    layer = np.asarray(layer)
    starts = np.flatnonzero(layer == 0)
    depths = np.diff(np.append(starts, len(layer)))
    return starts, depths


def cell_values(cell_records, band=states.DEFAULT_BAND):
    layer = np.asarray(cell_records["layer"], dtype=np.intp)
    starts, depths = cell_bounds(layer)
    n_cells = len(starts)
    cell = np.repeat(np.arange(n_cells), depths)
    n_layers = int(depths.max()) if n_cells else 0
    grad = np.asarray(cell_records["grad_abs_mean"], dtype=float)
    rms = np.asarray(cell_records["output_rms"], dtype=float)
    grad_m = states.to_matrix(cell, layer, grad, n_cells, n_layers)
    rms_m = states.to_matrix(cell, layer, rms, n_cells, n_layers)
    width = np.asarray(cell_records["width"])[starts]
    state = states.classify(grad_m, np.asarray(cell_records["output"], dtype=float)[starts],
                            rms_m, states.input_rms(width), depth=depths, band=band,
                            finite=np.asarray(cell_records["finite"], dtype=bool)[starts])
    first, last = grad[starts], grad[starts + depths - 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ok = np.isfinite(first) & (first > 0) & np.isfinite(last) & (last > 0)
        attenuation = np.where(ok, first / np.where(ok, last, 1.0), np.nan)
    return {"state": state, "first_grad": first, "last_grad": last,
            "attenuation": attenuation}
