"""One chunk's partial results: its records -> small tables of counts,
moments and histograms per group (core/partials.py describes each table).

numpy only: this runs inside the measuring job (no pandas, no torch).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from shortcutbench.core import cell_stats, families, states
from shortcutbench.core.arms import ARM_COLUMNS
from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.moments import _group_moments, _log10, usable
from shortcutbench.core.records import CELL_COLUMNS, CELL_TYPES, COLUMNS, Record

HIST_BIN = 0.05  # decades per histogram bin
LINES = 50  # single-seed profiles kept per group
SPECIAL_SEEDS = 20  # seeds listed per group of special cells
STATISTICS = ("grad_abs_mean", "grad_l2", "grad_zero_share", "bias_grad_abs_mean", "output_rms",
              "grad_stream_cos")
TABLES = ("layers", "blocks", "cells", "pairs", "lines", "special", "book", "outside")

GROUP = [c for c in CELL_COLUMNS if c != "seed"]  # a cell without its seed
LAYER_KEY = GROUP + ["layer", "param"]
BLOCK_KEY = GROUP + ["layer"]
PAIR_KEY = [c for c in GROUP if c not in ARM_COLUMNS] + ["shortcut_scale", "branch_scale"]
# lines: one row per cell, its layer, param and grad_abs_mean as lists
LINE_COLUMNS = CELL_COLUMNS + ["layer", "param", "grad_abs_mean"]
KEY_TYPES = {**CELL_TYPES, "layer": int, "param": str, "tied": str, "ndim": int, "numel": int}
OUTSIDE_COLUMNS = GROUP + ["position", "param", "layer", "numel", "tied", "side"]

# A chunk's (or a merged sweep's) partial results: {table name: {"columns":
# [...], "rows": [[...], ...]}} plus what they were made from.
Partial = dict[str, Any]


# Columns records made before some families existed may lack, and their values there.
# (a zero share unknown: NaN, never "mostly zero")
ADDED_COLUMNS = {"model": families.top_level_family(), "token_cosine": math.nan, "tied": "",
                 "ndim": 0, "grad_zero_share": math.nan}


def _column(records, name):
    if isinstance(records, list):
        values = [r[name] if name not in ADDED_COLUMNS else r.get(name, ADDED_COLUMNS[name])
                  for r in records]
    elif name in ADDED_COLUMNS and name not in records:
        values = [ADDED_COLUMNS[name]] * len(records["layer"])
    else:
        values = records[name]
        values = values.to_numpy() if hasattr(values, "to_numpy") else values
    kind = KEY_TYPES.get(name)
    if kind is str:
        return np.asarray(values).astype(str)
    if kind is bool or name == "finite":
        return np.asarray(values).astype(bool)
    if kind is int:
        return np.asarray(values).astype(np.int64)
    return np.asarray(values, dtype=float)


def _codes(columns, names):
    """A row's combination of `names` as one integer code, and the number of
    codes (mixed radix over each column's distinct values)."""
    n = len(columns[names[0]])
    code = np.zeros(n, dtype=np.int64)
    for name in names:
        uniques, inverse = np.unique(columns[name], return_inverse=True)
        code = code * len(uniques) + inverse.reshape(-1)
    return code


def _index(code):
    """Codes -> (group index per entry, first entry of each group)."""
    uniques, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first


def _key_rows(columns, names, at):
    """The key columns' values at entries `at`, as lists of plain values."""
    return [columns[name][at].tolist() for name in names]


def _table(columns, rows):
    """Rows sorted by their key (the leading columns: a key is unique, so the
    lists and dicts after it are never compared)."""
    rows.sort()
    return {"columns": list(columns), "rows": rows}


def chunk_partials(records: Sequence[Record] | Mapping[str, Sequence],
                   band: float = states.DEFAULT_BAND) -> Partial:
    """One chunk's records (a list of dicts, or columns: a dict of arrays, a
    DataFrame, an Arrow table) -> its partial tables."""
    columns = {name: _column(records, name) for name in COLUMNS}
    if len(columns["layer"]) == 0:
        return {name: {"columns": [], "rows": []} for name in TABLES}
    # Whole cells, each in layer order.
    cell_code = _codes(columns, CELL_COLUMNS)
    order = np.lexsort((columns["layer"], cell_code))
    position = order  # each row's place in the records: its parameter's order in its cell
    if not np.array_equal(order, np.arange(len(order))):
        columns = {name: values[order] for name, values in columns.items()}
    models = np.unique(columns["model"])
    if len(models) > 1:
        raise ValueError("a chunk's records hold one model family, not "
                         f"{', '.join(models.tolist())}")
    # Each cell's rows are those of one cell code.
    code = cell_code[order]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    depths = np.diff(np.append(starts, len(code)))
    values = cell_stats.values_function(str(models[0]))(columns, starts, band)
    # A family whose profile is every layer's weight (the top-level family's)
    # gives none: the layers table holds its moments already, and analysis
    # derives its blocks from them.
    profile = values.pop("profile", None)
    profile = _flat_profile(profile) if profile is not None else None
    values["state"] = cell_stats.state_indices(values)
    cell_of_row = np.repeat(np.arange(len(starts)), depths)
    cells = {name: columns[name][starts] for name in CELL_COLUMNS + ["output", "finite"]}
    return {
        "layers": _layers(columns),
        "blocks": _blocks(cells, *profile) if profile else _table(block_columns(), []),
        "cells": _cells(cells, values),
        "pairs": _pairs(cells, values),
        "lines": _lines(columns, cells, cell_of_row),
        "special": _special(columns, cells, cell_of_row),
        "book": _book(columns),
        "outside": (_outside(columns, cells, cell_of_row, starts, position)
                    if profile else _table(OUTSIDE_COLUMNS, [])),
    }


def _flat_profile(profiles):
    """profile_matrix's {(depth, shortcut, norm): (cells, layers, values,
    streams)} -> (cell, layer, value) per point."""
    parts = [(np.repeat(cells, len(layers)), np.tile(layers, len(cells)), values.reshape(-1))
             for cells, layers, values, _ in profiles.values()]
    return tuple(np.concatenate(p) for p in zip(*parts))


def layer_columns():
    names = list(LAYER_KEY)
    for s in STATISTICS:
        names += [f"{s}_{x}" for x in ("n", "n_finite", "mean", "m2", "n_pos", "log10_mean",
                                       "log10_m2", "n_zero", "n_subnormal")]
    return names + ["grad_abs_mean_hist"]


def _layers(columns):
    group, first = _index(_codes(columns, LAYER_KEY))
    n_groups = len(first)
    out = _key_rows(columns, LAYER_KEY, first)
    dtype = columns["dtype"]
    for s in STATISTICS:
        v = columns[s]
        finite = np.isfinite(v)
        ok = usable(v)
        n_finite, mean, m2 = _group_moments(group, v, finite, n_groups)
        n_pos, lmean, lm2 = _group_moments(group, _log10(v, ok), ok, n_groups)
        out += [np.bincount(group, minlength=n_groups).tolist(), n_finite.tolist(),
                mean.tolist(), m2.tolist(), n_pos.tolist(), lmean.tolist(), lm2.tolist(),
                np.bincount(group, v == 0, minlength=n_groups).astype(int).tolist(),
                np.bincount(group, states.subnormal(v, dtype),
                            minlength=n_groups).astype(int).tolist()]
    out.append(_histograms(group, columns["grad_abs_mean"], n_groups))
    return _table(layer_columns(), [list(row) for row in zip(*out)])


def _histograms(group, values, n_groups):
    """Per group: {bin: count} of floor(log10(v) / HIST_BIN), usable values."""
    ok = usable(values)
    bins = np.floor(np.log10(values[ok]) / HIST_BIN).astype(np.int64)
    hists = [{} for _ in range(n_groups)]
    if ok.any():
        lo = bins.min()
        pair = group[ok] * (bins.max() - lo + 1) + (bins - lo)
        uniques, counts = np.unique(pair, return_counts=True)
        span = bins.max() - lo + 1
        for u, c in zip(uniques.tolist(), counts.tolist()):
            hists[u // span][str(u % span + int(lo))] = c
    return hists


def block_columns():
    return BLOCK_KEY + ["n", "n_finite", "n_zero", "log10_n", "log10_mean", "log10_m2"]


def _blocks(cells, cell, layer, value):
    """Per group and profile layer: counts and log10 moments of the
    layer's profile value (core/cell_stats.py)."""
    keys = {name: cells[name][cell] for name in GROUP}
    keys["layer"] = np.asarray(layer, dtype=np.int64)
    value = np.asarray(value, dtype=float)
    group, first = _index(_codes(keys, BLOCK_KEY))
    n_groups = len(first)
    ok = usable(value)
    out = _key_rows(keys, BLOCK_KEY, first) + [
        np.bincount(group, minlength=n_groups).tolist(),
        np.bincount(group, np.isfinite(value), minlength=n_groups).astype(int).tolist(),
        np.bincount(group, value == 0, minlength=n_groups).astype(int).tolist()]
    out += [x.tolist() for x in _group_moments(group, _log10(value, ok), ok, n_groups)]
    return _table(block_columns(), [list(row) for row in zip(*out)])


def cell_columns():
    names = GROUP + ["n_cells"] + [f"state_{s.replace('-', '_')}" for s in states.STATES]
    for v in cell_stats.LOG_VALUES:
        names += [f"log10_{v}_n", f"log10_{v}_mean", f"log10_{v}_m2"]
    for v in cell_stats.PLAIN_VALUES:
        names += [f"{v}_n", f"{v}_mean", f"{v}_m2"]
    return names


def _cells(cells, values):
    group, first = _index(_codes(cells, GROUP))
    n_groups = len(first)
    out = _key_rows(cells, GROUP, first) + [np.bincount(group, minlength=n_groups).tolist()]
    k = len(states.STATES)
    counts = np.bincount(group * k + np.asarray(values["state"], dtype=np.int64),
                         minlength=n_groups * k).reshape(n_groups, k)
    out += counts.T.tolist()
    for name in cell_stats.LOG_VALUES:
        v = np.asarray(values[name], dtype=float)
        ok = usable(v)
        out += [x.tolist() for x in _group_moments(group, _log10(v, ok), ok, n_groups)]
    for name in cell_stats.PLAIN_VALUES:
        v = np.asarray(values[name], dtype=float)
        out += [x.tolist() for x in _group_moments(group, v, np.isfinite(v), n_groups)]
    return _table(cell_columns(), [list(row) for row in zip(*out)])


def pair_columns():
    return PAIR_KEY + ["n_pairs", "n_usable", "log10_ratio_mean", "log10_ratio_m2",
                       "n_without_subnormal", "excluded_seeds"]


def _pairs(cells, values):
    """The first layer's gradient with each shortcut arm over without, paired
    by seed (and every other axis)."""
    first = np.asarray(values["first_grad"], dtype=float)
    base = [c for c in GROUP if c not in ARM_COLUMNS] + ["seed"]
    code = _codes(cells, base)
    without = ~cells["shortcut"]
    with_ = cells["shortcut"]
    if not without.any() or not with_.any():
        return _table(pair_columns(), [])
    wo_code, wo_at = code[without], np.flatnonzero(without)
    order = np.argsort(wo_code, kind="stable")
    wo_code, wo_at = wo_code[order], wo_at[order]
    at = np.flatnonzero(with_)
    pos = np.searchsorted(wo_code, code[at])
    found = (pos < len(wo_code)) & (wo_code[np.minimum(pos, len(wo_code) - 1)] == code[at])
    at, partner = at[found], wo_at[pos[found]]
    if not len(at):
        return _table(pair_columns(), [])
    sub = {name: cells[name][at] for name in CELL_COLUMNS}
    group, firsts = _index(_codes(sub, PAIR_KEY))
    n_groups = len(firsts)
    w, wo = first[at], first[partner]
    ok = usable(w) & usable(wo)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = np.log10(np.where(ok, w, 1.0)) - np.log10(np.where(ok, wo, 1.0))
    n_usable, mean, m2 = _group_moments(group, ratio, ok, n_groups)
    subnormal = states.subnormal(wo, sub["dtype"])
    excluded = [[] for _ in range(n_groups)]
    bad = np.flatnonzero(~ok)
    for g, seed in sorted(zip(group[bad].tolist(), sub["seed"][bad].tolist())):
        if len(excluded[g]) < SPECIAL_SEEDS:
            excluded[g].append(seed)
    out = _key_rows(sub, PAIR_KEY, firsts) + [
        np.bincount(group, minlength=n_groups).tolist(), n_usable.tolist(), mean.tolist(),
        m2.tolist(), np.bincount(group, subnormal, minlength=n_groups).astype(int).tolist(),
        excluded]
    return _table(pair_columns(), [list(row) for row in zip(*out)])


def _lines(columns, cells, cell_of_row):
    """The profiles of each group's LINES smallest seeds: one row per cell,
    its layers, params and grad_abs_mean as lists."""
    group, _ = _index(_codes(cells, GROUP))
    order = np.lexsort((cells["seed"], group))
    sorted_group = group[order]
    starts = np.searchsorted(sorted_group, sorted_group, side="left")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - starts
    keep = np.flatnonzero(rank < LINES)
    bounds = np.searchsorted(cell_of_row, np.append(keep, keep + 1)).reshape(2, -1)
    lists = {name: columns[name].tolist() for name in ("layer", "param", "grad_abs_mean")}
    out = [cells[name][keep].tolist() for name in CELL_COLUMNS]
    for name in ("layer", "param", "grad_abs_mean"):
        out.append([lists[name][a:b] for a, b in zip(*bounds.tolist())])
    return _table(LINE_COLUMNS, [list(row) for row in zip(*out)])


def special_columns():
    return GROUP + ["kind", "n", "seeds", "output_zero", "n_output_zero"]


def _special(columns, cells, cell_of_row):
    """Non-finite cells (the records' `finite` is False) and all-zero cells
    (finite, every layer's gradient exactly 0), per group."""
    nonzero = np.bincount(cell_of_row, columns["grad_abs_mean"] != 0,
                          minlength=len(cells["seed"])) > 0
    rows = []
    for kind, mask in (("non_finite", ~cells["finite"]), ("zero", cells["finite"] & ~nonzero)):
        if not mask.any():
            continue
        sub = {name: values[mask] for name, values in cells.items()}
        group, firsts = _index(_codes(sub, GROUP))
        keys = _key_rows(sub, GROUP, firsts)
        seeds = [[] for _ in firsts]
        for g, seed in sorted(zip(group.tolist(), sub["seed"].tolist())):
            if len(seeds[g]) < SPECIAL_SEEDS:
                seeds[g].append(seed)
        n = np.bincount(group, minlength=len(firsts))
        zero_out = np.bincount(group, sub["output"] == 0, minlength=len(firsts)).astype(int)
        for g, key in enumerate(zip(*keys)):
            rows.append([*key, kind, int(n[g]), seeds[g], bool(zero_out[g] == n[g]),
                         int(zero_out[g])])
    return _table(special_columns(), rows)


def _book(columns):
    """The book's cell, both arms: without, and x + layer(x) (lambda 1, alpha 1)."""
    mask = columns["model"] == families.top_level_family()
    for axis, value in BOOK_CASE.items():
        mask &= columns[axis] == value
    mask &= ~columns["shortcut"] | ((columns["shortcut_scale"] == 1.0)
                                    & (columns["branch_scale"] == "1"))
    out = [columns[name][mask].tolist() for name in COLUMNS]
    return _table(COLUMNS, [list(row) for row in zip(*out)])


def _outside(columns, cells, cell_of_row, starts, position):
    """The parameters outside every block and the tied ones, per group (the
    first cell of each group: a group's cells have one architecture)."""
    group, first = _index(_codes(cells, GROUP))
    position = position - np.minimum.reduceat(position, starts)[cell_of_row]
    inside = columns["layer"] >= 0
    n_cells = len(starts)
    lowest = np.full(n_cells, np.iinfo(np.int64).max)
    highest = np.full(n_cells, -1)
    np.minimum.at(lowest, cell_of_row[inside], position[inside])
    np.maximum.at(highest, cell_of_row[inside], position[inside])
    picked = np.isin(cell_of_row, first) & (~inside | (columns["tied"] != ""))
    rows = []
    for i in np.flatnonzero(picked).tolist():
        c = cell_of_row[i]
        side = ("before" if position[i] < lowest[c] else "after" if position[i] > highest[c]
                else "between")
        rows.append([cells[name][c].item() for name in GROUP]
                    + [int(position[i]), str(columns["param"][i]), int(columns["layer"][i]),
                       int(columns["numel"][i]), str(columns["tied"][i]), side])
    return _table(OUTSIDE_COLUMNS, rows)


def empty_tables():
    """{table: its columns}: every table's columns, rows or none."""
    return {"layers": layer_columns(), "blocks": block_columns(), "cells": cell_columns(),
            "pairs": pair_columns(),
            "lines": LINE_COLUMNS, "special": special_columns(), "book": COLUMNS,
            "outside": OUTSIDE_COLUMNS}
