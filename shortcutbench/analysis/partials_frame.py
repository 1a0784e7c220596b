"""The merged partial results as pandas frames, and rule merge's job.

`read_partials(path)` gives results/{prefix}partials.json as one DataFrame
per table (core/partials.py describes them), branch_scale kept as its
label.  The `lines` frame is one row per (cell, layer): CELL_COLUMNS, layer,
param, grad_abs_mean, the single-seed profiles of each group's 50 smallest
seeds.

`merge_sweep` is rule merge: it folds the chunks' partial.json files one at
a time (each checked against its chunk params and its records file's
sha256), and writes partials.json, summary.csv (per group and layer: today's
columns from the moments, plus log10 quantiles q05..q95 from the histograms
and n_subnormal) and lines.csv.  Memory grows with groups, never with seeds.
"""

from __future__ import annotations

import bisect
import itertools
import math
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from shortcutbench.core import partials as core
from shortcutbench.core.families import top_level_family
from shortcutbench.core.files import atomic_write, sha256_of, write_json
from shortcutbench.core.records import CELL_COLUMNS
from shortcutbench.core.sweep import cells_of, chunk_family, units_of

SUMMARY_GROUP = [c for c in CELL_COLUMNS if c != "seed"] + ["layer"]
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_COLUMNS = [f"q{round(q * 100):02d}" for q in QUANTILES]
SUMMARY_COLUMNS = SUMMARY_GROUP + ["n", "n_finite", "mean", "std", "ci95_low", "ci95_high",
                                   "log10_mean", "log10_std", "log10_ci95_low",
                                   "log10_ci95_high", *QUANTILE_COLUMNS, "n_subnormal",
                                   "param"]
LINE_COLUMNS = CELL_COLUMNS + ["layer", "param", "grad_abs_mean"]


def frame_of(table):
    """One table {"columns", "rows"} -> a DataFrame (branch_scale a string)."""
    import pandas as pd

    frame = pd.DataFrame(table["rows"], columns=table["columns"])
    if "branch_scale" in frame:
        frame["branch_scale"] = frame["branch_scale"].astype(str)
    return frame


def lines_frame(table):
    """The lines table (one row per cell, lists per layer) -> one row per
    (cell, layer), in the order of the cells then layers."""
    import pandas as pd

    frame = frame_of(table)
    if frame.empty:
        return pd.DataFrame({c: [] for c in LINE_COLUMNS})
    frame = frame.explode(["layer", "param", "grad_abs_mean"], ignore_index=True)
    return frame.astype({"layer": int, "grad_abs_mean": float})[LINE_COLUMNS]


class Facts(dict):
    """The merged file's facts (band, n_cells, seeds, ...), one object
    shared by every frame made from it, read with `facts(frame)`.  pandas
    deep-copies a frame's attrs at every operation; these never change, so
    the copy is the object itself."""

    def __deepcopy__(self, memo):
        return self


def facts(frame) -> Facts:
    """The facts of the merged file `frame` was read from (empty if none)."""
    return frame.attrs.get("facts", Facts())


def with_layer_blocks(blocks, layers):
    """The blocks frame with the rows the partial results do not store: a
    family whose chunks give no blocks (one record per layer) has each
    layer's weight gradient as its profile value, so its block moments are
    the layers table's grad_abs_mean ones."""
    import pandas as pd

    flat = layers[~layers["model"].isin(blocks["model"].unique())]
    if flat.empty:
        return blocks
    s = "grad_abs_mean"
    derived = flat[core.BLOCK_KEY].assign(
        n=flat[f"{s}_n"], n_finite=flat[f"{s}_n_finite"], n_zero=flat[f"{s}_n_zero"],
        log10_n=flat[f"{s}_n_pos"], log10_mean=flat[f"{s}_log10_mean"],
        log10_m2=flat[f"{s}_log10_m2"])
    derived = derived[list(blocks.columns)].reset_index(drop=True)
    return pd.concat([derived, blocks], ignore_index=True) if len(blocks) else derived


def to_frames(merged):
    """A merged partial result (dict) -> {table: DataFrame}."""
    frames = {name: frame_of(merged[name]) for name in core.TABLES if name != "lines"}
    frames["blocks"] = with_layer_blocks(frames["blocks"], frames["layers"])
    frames["lines"] = lines_frame(merged["lines"])
    shared = Facts({k: v for k, v in merged.items() if k not in core.TABLES})
    for frame in frames.values():
        frame.attrs["facts"] = shared
    return frames


def only_model(frames, model=None):
    """The frames with one model family's rows (core/families/; None: the
    top-level family's): the top-level family's tables and laws never see another
    family's cells, nor a family's section another's.  Frames without a
    model column are the top-level family's."""
    top = top_level_family()
    model = top if model is None else model
    out = {}
    for name, frame in frames.items():
        if "model" in frame.columns:
            picked = frame[frame["model"] == model].reset_index(drop=True)
        else:
            picked = frame if model == top else frame.iloc[:0]
        picked.attrs.update(frame.attrs)
        out[name] = picked
    return out


def read_partials(path: PathLike) -> dict[str, pd.DataFrame]:
    """results/{prefix}partials.json -> {table: DataFrame}; the merged file's
    facts (band, n_cells, seeds) are `facts(frame)` of each frame.  Raises
    CorruptPartial naming the file if it is not whole."""
    return to_frames(core.read_merged(path))


def partials_of_records(records, band=2.0, chunks=1):
    """The merged partial result of records (a DataFrame or columns), as if
    they had been measured in `chunks` chunks (split by seed): for tests and
    for tables of a hand-made table."""
    seeds = np.asarray(records["seed"])
    unique = np.unique(seeds)
    parts = np.array_split(unique, max(1, min(chunks, len(unique))))
    out = []
    for part in parts:
        mask = np.isin(seeds, part)
        sub = records[mask] if hasattr(records, "iloc") else {
            k: np.asarray(v)[mask] for k, v in records.items()}
        out.append({"n_cells": 0, "band": band, "seeds": part.tolist(),
                    **core.chunk_partials(sub, band)})
    merged = core.merge_partials(out)
    merged["seeds"] = unique.tolist()
    return merged


# ---------------------------------------------------------------- summary

def _t975(df):
    from scipy.special import stdtrit

    df = np.asarray(df, dtype=float)
    out = np.full(df.shape, np.nan)
    ok = df > 0
    out[ok] = stdtrit(df[ok], 0.975)
    return out


def interval_columns(n, mean, m2):
    """Moments -> (sd, ci_low, ci_high), NaN with fewer than two values."""
    n, mean, m2 = (np.asarray(x, dtype=float) for x in (n, mean, m2))
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.where(n > 1, np.sqrt(m2 / (n - 1)), np.nan)
        half = _t975(n - 1) * sd / np.sqrt(n)
    return sd, mean - half, mean + half


def hist_quantiles(hist, qs=QUANTILES, width=core.HIST_BIN):
    """A {bin: count} log10 histogram -> its quantiles (log10 values),
    linear within a bin; NaN when it is empty.  Plain Python: a histogram
    has a few bins, and numpy's per-call cost would dominate."""
    if not hist:
        return [math.nan] * len(qs)
    bins = sorted((int(b), float(c)) for b, c in hist.items())
    cum = list(itertools.accumulate(c for _, c in bins))
    out = []
    for q in qs:
        target = q * cum[-1]
        i = min(bisect.bisect_left(cum, target), len(cum) - 1)
        edge, count = bins[i]
        before = cum[i] - count
        out.append(edge * width + (target - before) / count * width)
    return out


def summary_frame(layers: pd.DataFrame) -> pd.DataFrame:
    """The layers frame -> summary.csv's frame: per group and layer, over
    seeds, the plain and log10 mean of grad_abs_mean with 95% t-intervals,
    log10 quantiles and the count of subnormal values."""
    import pandas as pd

    s = "grad_abs_mean"
    out = layers[SUMMARY_GROUP].copy()
    out["n"] = layers[f"{s}_n"].astype(int)
    out["n_finite"] = layers[f"{s}_n_finite"].astype(int)
    sd, low, high = interval_columns(layers[f"{s}_n_finite"], layers[f"{s}_mean"],
                                     layers[f"{s}_m2"])
    out["mean"] = layers[f"{s}_mean"].to_numpy(dtype=float)
    out["std"], out["ci95_low"], out["ci95_high"] = sd, low, high
    lsd, llow, lhigh = interval_columns(layers[f"{s}_n_pos"], layers[f"{s}_log10_mean"],
                                        layers[f"{s}_log10_m2"])
    out["log10_mean"] = layers[f"{s}_log10_mean"].to_numpy(dtype=float)
    out["log10_std"], out["log10_ci95_low"], out["log10_ci95_high"] = lsd, llow, lhigh
    quantiles = np.array([hist_quantiles(h) for h in layers[f"{s}_hist"]]).reshape(
        -1, len(QUANTILES))
    for j, name in enumerate(QUANTILE_COLUMNS):
        out[name] = quantiles[:, j]
    out["n_subnormal"] = layers[f"{s}_n_subnormal"].astype(int)
    out["param"] = layers["param"]
    return pd.DataFrame(out, columns=SUMMARY_COLUMNS).reset_index(drop=True)


def write_csv(frame, path):
    with atomic_write(path, newline="") as f:
        frame.to_csv(f, index=False, lineterminator="\n")


# ---------------------------------------------------------------- rule merge

def _checked(partial_paths, records_paths, chunk_params, band, names):
    """Each chunk's partial results, checked, in the order of the chunks'
    names (a pack's chunks among the others'), whichever jobs measured them:
    the merge folds a group's chunks in the same order, so its numbers are
    the same bytes packed or not.  Each file is read and checked once, and
    held until its last chunk is folded in: only where the packs of a grown
    sweep interleave is more than one held at a time."""
    order, left = [], {}
    for job, (params, name) in enumerate(zip(chunk_params, names)):
        for part, (unit_name, _) in enumerate(units_of(params)):
            order.append((unit_name or name, job, part))
            left[job] = left.get(job, 0) + 1
    held = {}
    for _, job, part in sorted(order):
        if job not in held:
            held[job] = core.read_partial(partial_paths[job], chunk_params[job],
                                          records_paths[job], band)
        data = held[job]
        left[job] -= 1
        if not left[job]:
            del held[job]  # folded in, then dropped
        if "parts" not in data:
            yield data
            continue
        unit = units_of(chunk_params[job])[part][1]
        yield {"n_cells": len(cells_of(unit)), "band": data["band"],
               **core.chunk_tables(data)[part]}


def merge_sweep(partial_paths, records_paths, chunk_params, band, partials_path,
                summary_path, lines_path, names=None):
    """Rule merge: the chunks' partial results -> partials.json,
    summary.csv and lines.csv of one sweep.  Raises CorruptPartial naming
    a partial.json or records file that does not match its chunk."""
    if not (len(partial_paths) == len(records_paths) == len(chunk_params)):
        raise ValueError("one partial.json and one records file per chunk")
    names = names or [f"{n:09d}" for n in range(len(chunk_params))]  # their order
    merged = core.merge_partials(_checked(list(partial_paths), list(records_paths),
                                          chunk_params, band, names))
    # Each family's seeds ("seeds": the top-level family's, which its tables read).
    seeds = {}
    for job in chunk_params:
        for _, chunk in units_of(job):
            seeds.setdefault(chunk_family(chunk), set()).update(int(s) for s in chunk["seeds"])
    merged["family_seeds"] = {model: sorted(s) for model, s in sorted(seeds.items())}
    merged["seeds"] = merged["family_seeds"].get(top_level_family(), [])
    write_csv(summary_frame(frame_of(merged["layers"])), summary_path)
    write_csv(lines_frame(merged["lines"]), lines_path)
    # What the figures read, checked there against these (core.store.verify).
    merged["files_sha256"] = {Path(path).name: sha256_of(path)
                              for path in (summary_path, lines_path)}
    write_json(merged, partials_path, compact=True)  # megabytes, read by programs only
    return merged
