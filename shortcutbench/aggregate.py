"""Chunks -> results/gradients.csv (tidy, one row per cell x layer) and
results/summary.csv (per everything-but-seed x layer, over seeds).

Every chunk file is checked against the cells its job was asked for, so a
file that was truncated, edited or left over from another sweep is named and
refused instead of being averaged in.  No torch here.
"""

import numpy as np
import pandas as pd
from scipy import stats

from shortcutbench.files import atomic_write
from shortcutbench.records import CELL_COLUMNS, COLUMNS, SORT_COLUMNS, VALUE_COLUMNS
from shortcutbench.sweep import cells_of

DTYPES = {"depth": "int64", "width": "int64", "seed": "int64", "layer": "int64",
          "shortcut": "bool", "finite": "bool",
          **{c: "float64" for c in VALUE_COLUMNS},
          **{c: "str" for c in ("activation", "device", "dtype", "param")}}

SUMMARY_GROUP = [c for c in CELL_COLUMNS if c != "seed"] + ["layer"]


class CorruptChunk(ValueError):
    pass


def _bad(path, what):
    return CorruptChunk(
        f"{path}: {what}. The file is incomplete, was edited, or comes from another "
        f"sweep; delete it and run snakemake again to re-measure it.")


def read_chunk(path, params):
    """One chunk's records, checked against the cells it should hold."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise _bad(path, f"cannot be read as CSV ({e})") from None
    if list(frame.columns) != COLUMNS:
        raise _bad(path, f"has columns {list(frame.columns)}, expected {COLUMNS}")
    for column in ("shortcut", "finite"):
        if not frame[column].isin(["True", "False"]).all():
            raise _bad(path, f"column {column!r} holds something other than True/False")
        frame[column] = frame[column] == "True"
    try:
        frame = frame.astype({c: t for c, t in DTYPES.items() if t != "bool"})
    except ValueError as e:
        raise _bad(path, f"holds a value of the wrong type ({e})") from None

    expected = pd.DataFrame(cells_of(params))
    want = {tuple(r) for r in expected[CELL_COLUMNS].itertuples(index=False)}
    have = frame.groupby(CELL_COLUMNS, sort=False)["layer"].agg(["count", "min", "max"])
    got = set(have.index)
    if got != want:
        missing, extra = len(want - got), len(got - want)
        raise _bad(path, f"holds {len(got)} cells, expected {len(want)} "
                         f"({missing} missing, {extra} not asked for)")
    depth = have.index.get_level_values("depth")
    if not ((have["count"] == depth) & (have["min"] == 0) & (have["max"] == depth - 1)).all():
        raise _bad(path, "some cell does not have exactly one row per layer")
    return frame


def gradients_table(chunks):
    """chunks: [(path, params)] -> all records, sorted."""
    frame = pd.concat([read_chunk(path, params) for path, params in chunks], ignore_index=True)
    return frame.sort_values(SORT_COLUMNS, kind="stable", ignore_index=True)


def _ci95(values):
    """mean, std, 95% t-interval of the finite values (NaN where too few)."""
    values = values[np.isfinite(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    std = values.std(ddof=1) if n > 1 else np.nan
    half = stats.t.ppf(0.975, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
    return n, mean, std, mean - half, mean + half


def summary_table(gradients):
    """Per everything-but-seed x layer: the seed-to-seed statistics of the
    first-layer statistic grad_abs_mean, plain and in log10 (the values span
    orders of magnitude, so the geometric mean is the better centre)."""
    rows = []
    for key, group in gradients.groupby(SUMMARY_GROUP, sort=True):
        values = group["grad_abs_mean"].to_numpy(dtype=float)
        n_finite, mean, std, low, high = _ci95(values)
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log10(values)
        _, log_mean, log_std, log_low, log_high = _ci95(logs)
        rows.append((*key, len(values), n_finite, mean, std, low, high,
                     log_mean, log_std, log_low, log_high))
    columns = SUMMARY_GROUP + ["n", "n_finite", "mean", "std", "ci95_low", "ci95_high",
                               "log10_mean", "log10_std", "log10_ci95_low", "log10_ci95_high"]
    return pd.DataFrame(rows, columns=columns)


def write_csv(frame, path):
    with atomic_write(path, newline="") as f:
        frame.to_csv(f, index=False, lineterminator="\n")


def aggregate(chunk_paths, chunk_params, gradients_path, summary_path):
    gradients = gradients_table(list(zip(chunk_paths, chunk_params)))
    write_csv(gradients, gradients_path)
    write_csv(summary_table(gradients), summary_path)
    return gradients
