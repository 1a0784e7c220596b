"""A tiny builder of partial results from records, in the issue-11
contract's columns (the `cells` and `layers` frames that read_partials
gives and the laws read), for tests that must not depend on the partial
results' own module: core.cell_stats for the per-cell values, numpy for the
moments, Chan et al.'s formula to merge two chunks."""

import math

import numpy as np
import pandas as pd

from shortcutbench.core import cell_stats, states
from shortcutbench.core.partials import combine, moments
from shortcutbench.core.records import CELL_COLUMNS, COLUMNS

GROUP = [c for c in CELL_COLUMNS if c != "seed"]
STATISTICS = ("grad_abs_mean", "bias_grad_abs_mean", "output_rms", "grad_stream_cos")


def usable(values):
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values) & (values > 0)]


def finite(values):
    values = np.asarray(values, dtype=float)
    return values[np.isfinite(values)]


def build_partials(records, band=states.DEFAULT_BAND):
    """One chunk's records -> {"cells": frame, "layers": frame} in the
    contract's columns (the ones the laws read)."""
    columns = {c: [r[c] for r in records] for c in COLUMNS}
    per_cell = pd.DataFrame(cell_stats.cell_values_many(columns, band))
    cells = []
    for key, group in per_cell.groupby(GROUP, sort=True):
        row = dict(zip(GROUP, key))
        row["n_cells"] = len(group)
        for s in states.STATES:
            row[f"state_{s.replace('-', '_')}"] = int((group["state"] == s).sum())
        for v in cell_stats.LOG_VALUES:
            n, mean, m2 = moments(np.log10(usable(group[v])))
            row.update({f"log10_{v}_n": n, f"log10_{v}_mean": mean, f"log10_{v}_m2": m2})
        for v in cell_stats.PLAIN_VALUES:
            n, mean, m2 = moments(finite(group[v]))
            row.update({f"{v}_n": n, f"{v}_mean": mean, f"{v}_m2": m2})
        cells.append(row)
    tidy = pd.DataFrame(records)
    layers = []
    for key, group in tidy.groupby(GROUP + ["layer", "param"], sort=True):
        row = dict(zip(GROUP + ["layer", "param"], key))
        for s in STATISTICS:
            n, mean, m2 = moments(finite(group[s]))
            n_pos, log_mean, log_m2 = moments(np.log10(usable(group[s])))
            row.update({f"{s}_n": len(group), f"{s}_n_finite": n, f"{s}_mean": mean,
                        f"{s}_m2": m2, f"{s}_n_pos": n_pos, f"{s}_log10_mean": log_mean,
                        f"{s}_log10_m2": log_m2})
        layers.append(row)
    return {"cells": pd.DataFrame(cells), "layers": pd.DataFrame(layers)}


def merge_partials(a, b):
    """Two chunks' partial results -> one: counts add, moments combine."""
    out = {}
    for table, keys in (("cells", GROUP), ("layers", GROUP + ["layer", "param"])):
        frame = pd.concat([a[table], b[table]], ignore_index=True)
        triples = [(f"log10_{v}_n", f"log10_{v}_mean", f"log10_{v}_m2")
                   for v in cell_stats.LOG_VALUES] + [
            (f"{v}_n", f"{v}_mean", f"{v}_m2") for v in cell_stats.PLAIN_VALUES]
        if table == "layers":
            triples = [t for s in STATISTICS for t in (
                (f"{s}_n_finite", f"{s}_mean", f"{s}_m2"),
                (f"{s}_n_pos", f"{s}_log10_mean", f"{s}_log10_m2"))]
        rows = []
        for key, group in frame.groupby(keys, sort=True):
            row = dict(zip(keys, key))
            first = group.iloc[0]
            for n_col, mean_col, m2_col in triples:
                total = (0, math.nan, math.nan)
                for _, r in group.iterrows():
                    total = combine(total, (int(r[n_col]), r[mean_col], r[m2_col]))
                row.update(dict(zip((n_col, mean_col, m2_col), total)))
            for column in frame.columns:
                if column in row:
                    continue
                if column.startswith("state_") or column in ("n_cells",) or (
                        column.endswith("_n") and table == "layers"):
                    row[column] = int(group[column].sum())
                else:
                    row[column] = first[column]
            rows.append(row)
        out[table] = pd.DataFrame(rows, columns=frame.columns)
    return out
