"""A table of records summarised over seeds the plain way, with pandas (the
tests' reference for the merge's summary.csv), and the training runs' tables
concatenated (rule training_table).

Per everything-but-seed x layer: how the book's statistic (mean |grad| of the
layer's weight) varies over seeds.  No torch here.
"""

import numpy as np
import pandas as pd

from shortcutbench.analysis.intervals import t_interval
from shortcutbench.analysis.partials_frame import SUMMARY_GROUP
from shortcutbench.core.files import atomic_write
from shortcutbench.core.records import CELL_COLUMNS, Cell

# The merge's summary's first columns (its quantiles and subnormal counts
# come from the partial results only).
SUMMARY_COLUMNS = SUMMARY_GROUP + ["n", "n_finite", "mean", "std", "ci95_low", "ci95_high",
                                   "log10_mean", "log10_std", "log10_ci95_low",
                                   "log10_ci95_high"]


def with_all_axes(gradients):
    """The frame with every cell column, filling the ones an older file or a
    hand-made test frame lacks with records.Cell's defaults (a cell without
    shortcut has lambda 0)."""
    missing = [c for c in CELL_COLUMNS if c not in gradients.columns]
    if not missing:
        return gradients
    fill = {}
    for column in missing:
        if column == "shortcut_scale":
            fill[column] = np.where(gradients["shortcut"].to_numpy(dtype=bool), 1.0, 0.0)
        else:
            fill[column] = Cell.__dataclass_fields__[column].default
    return gradients.assign(**fill)


def summary_table(gradients):
    """The values span orders of magnitude, so the log10 columns (a geometric
    mean and its interval) are the better centre; the plain ones are kept for
    readers who expect them.  Non-finite cells count in n, not in n_finite."""
    gradients = with_all_axes(gradients)
    rows = []
    for key, group in gradients.groupby(SUMMARY_GROUP, sort=True):
        values = group["grad_abs_mean"].to_numpy(dtype=float)
        n_finite, mean, std, low, high = t_interval(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            _, log_mean, log_std, log_low, log_high = t_interval(np.log10(values))
        rows.append((*key, len(values), n_finite, mean, std, low, high,
                     log_mean, log_std, log_low, log_high))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def write_csv(frame, path):
    with atomic_write(path, newline="") as f:
        frame.to_csv(f, index=False, lineterminator="\n")


def concatenate_tables(paths, out_path):
    """Several CSVs with the same columns -> one, rows in a fixed order."""
    frames = [pd.read_csv(path) for path in paths]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    table = table.sort_values(list(table.columns[:-1]), kind="stable", ignore_index=True)
    write_csv(table, out_path)
