"""Every number the report prints, from results/gradients.csv (pandas).

`tables(gradients)` gives the headline ratio, the book's case, the
attenuation with depth, device differences, the non-finite and zero cells.
Rule `tables` writes them to results/tables.json, which the figures and the
report (shortcutbench.analysis.render) both read, so that they show the very
same numbers and each can be traced to one file.  No torch here, and no
pandas import either: it only calls methods of the DataFrame it is given.
"""

import math

import numpy as np

from shortcutbench.analysis.intervals import log10_interval, usable
from shortcutbench.analysis.variants import (
    ARM_AXES,
    BOOK_SCALE,
    VARIANT_AXES,
    arm_of,
    arm_sort_key,
    describe_seeds,
    plain,
    variant_of,
    variant_sort_key,
)
from shortcutbench.core.book import BOOK_CASE, BOOK_GRADIENTS, RTOL
from shortcutbench.core.files import read_json, write_json
from shortcutbench.core.records import CELL_COLUMNS, Cell

CELL_AXES = tuple(CELL_COLUMNS)

def read_records(path):
    """A table of records (results/gradients.csv, a summary) as pandas reads
    it, with branch_scale kept as its label ("1", not the number 1)."""
    import pandas as pd

    return with_all_axes(pd.read_csv(path, dtype={"branch_scale": str}))


def with_all_axes(gradients):
    """The frame with every cell column, filling the ones an older file or a
    hand-made test frame lacks with records.Cell's defaults (a cell without
    shortcut has lambda 0)."""
    missing = [c for c in CELL_AXES if c not in gradients.columns]
    if not missing:
        return gradients
    fill = {}
    for column in missing:
        if column == "shortcut_scale":
            fill[column] = np.where(gradients["shortcut"].to_numpy(dtype=bool), 1.0, 0.0)
        else:
            fill[column] = Cell.__dataclass_fields__[column].default
    return gradients.assign(**fill)



def select(frame, variant):
    """The rows of one variant."""
    mask = np.ones(len(frame), dtype=bool)
    for axis in VARIANT_AXES:
        mask &= (frame[axis] == variant[axis]).to_numpy()
    return frame[mask]


# ---------------------------------------------------------------- tables

def sweep_facts(gradients):
    """What the data holds: the values of every axis and the cell counts."""
    cells = gradients.drop_duplicates(list(CELL_AXES))
    axes = {axis: sorted(plain(v) for v in cells[axis].unique()) for axis in CELL_AXES}
    arms = sorted({tuple(k) for k in cells[list(ARM_AXES)].itertuples(index=False)})
    zero = _zero_cell_mask(gradients)
    return {
        "axes": axes,
        "arms": sorted((arm_of(*a) for a in arms), key=arm_sort_key),
        "scales": sorted({float(s) for f, s in arms if f}),
        "swept": [axis for axis in VARIANT_AXES if len(axes[axis]) > 1],
        "n_cells": int(len(cells)),
        "n_nonfinite": int((~cells["finite"].astype(bool)).sum()),
        "n_zero": int(zero.sum()),
        "n_rows": int(len(gradients)),
        "variants": sorted((variant_of(k) for k, _ in gradients.groupby(list(VARIANT_AXES))),
                           key=variant_sort_key),
    }


def headline_table(gradients):
    """At the deepest depth, per variant and shortcut scale: the first layer's
    gradient with and without shortcut, paired by seed, and the
    geometric-mean ratio with its 95% t-interval over seeds (in log space).
    Seeds where either gradient is non-finite or exactly 0 cannot enter a
    ratio on a log scale; they are counted, not hidden."""
    deepest = int(gradients["depth"].max())
    at_depth = gradients[gradients["depth"] == deepest]
    first = at_depth[at_depth["layer"] == 0]
    # Cells whose output and every gradient are exactly 0: the loss is 0.
    quiet = at_depth.assign(_quiet=(at_depth["grad_abs_mean"].to_numpy() == 0)
                            & (at_depth["output"].to_numpy() == 0))
    quiet = quiet.groupby(list(VARIANT_AXES) + list(ARM_AXES) + ["seed"])["_quiet"].all()
    rows = []
    for key, group in first.groupby(list(VARIANT_AXES), sort=True):
        arms = {(bool(f), float(s)): g.set_index("seed")["grad_abs_mean"]
                for (f, s), g in group.groupby(list(ARM_AXES))}
        without = next((v for (f, _), v in arms.items() if not f), None)
        with_scales = sorted(s for f, s in arms if f) or [None]
        for scale in with_scales:
            with_ = arms.get((True, scale)) if scale is not None else None
            row = {"variant": variant_of(key), "depth": deepest, "scale": scale,
                   "n_seeds": len(set(group["seed"])),
                   "flags": [f for f, v in ((False, without), (True, with_)) if v is not None]}
            for name, values, arm in (("without", without, (False, 0.0)),
                                      ("with", with_, (True, scale))):
                if values is None:
                    row.update({f"{name}_n": 0, f"{name}_gmean": math.nan, f"{name}_zero": 0,
                                f"{name}_silent": 0, f"{name}_nonfinite": 0})
                    continue
                v = values.to_numpy(dtype=float)
                n, centre, _, _, _ = log10_interval(v[usable(v)])
                silent = quiet.loc[key + arm]
                row.update({f"{name}_n": n, f"{name}_gmean": centre,
                            f"{name}_zero": int((v == 0).sum()),
                            f"{name}_silent": int(silent.sum()),
                            f"{name}_nonfinite": int((~np.isfinite(v)).sum())})
            if without is not None and with_ is not None:
                paired = sorted(set(without.index) & set(with_.index))
                w = with_.loc[paired].to_numpy(dtype=float)
                wo = without.loc[paired].to_numpy(dtype=float)
                ok = usable(w) & usable(wo)
                n, ratio, low, high, sd = log10_interval(w[ok] / wo[ok])
                row.update({"pairs": len(paired), "n": n, "ratio": ratio, "ci_low": low,
                            "ci_high": high, "log10_sd": sd, "excluded": len(paired) - n,
                            "excluded_seeds": describe_seeds(np.asarray(paired)[~ok])})
            else:
                row.update({"pairs": 0, "n": 0, "ratio": math.nan, "ci_low": math.nan,
                            "ci_high": math.nan, "log10_sd": math.nan, "excluded": 0,
                            "excluded_seeds": ""})
            rows.append(row)
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]),
                             r["scale"] != BOOK_SCALE, r["scale"] or 0.0))
    return {"depth": deepest, "rows": rows, "main": 0 if rows else None}


def headline_points(gradients):
    """The per-seed values behind the headline (for its figure)."""
    deepest = int(gradients["depth"].max())
    first = gradients[(gradients["depth"] == deepest) & (gradients["layer"] == 0)]
    return first[list(VARIANT_AXES) + list(ARM_AXES) + ["seed", "grad_abs_mean"]]


def book_table(gradients):
    """The book's case beside the book's printed numbers."""
    mask = np.ones(len(gradients), dtype=bool)
    for axis, value in BOOK_CASE.items():
        mask &= (gradients[axis] == value).to_numpy()
    case = gradients[mask]
    facts = {"case": dict(BOOK_CASE), "rtol": RTOL, "found": False,
             "rows": [], "missing": [], "passed": 0, "compared": 0, "all_pass": False}
    arms = {False: case[~case["shortcut"].astype(bool)],
            True: case[case["shortcut"].astype(bool)
                       & (case["shortcut_scale"].to_numpy() == BOOK_SCALE)]}
    if all(frame.empty for frame in arms.values()):
        facts["missing"] = _book_missing(gradients)
        return facts
    facts["found"] = True
    for flag in (False, True):
        cell = arms[flag].set_index("layer")["grad_abs_mean"]
        for layer, book in enumerate(BOOK_GRADIENTS[flag]):
            present = layer in cell.index
            measured = float(cell[layer]) if present else math.nan
            if present and math.isfinite(measured):
                rel = abs(measured - book) / abs(book)
                ok = rel <= RTOL
            else:
                rel, ok = math.nan, False
            facts["rows"].append({"shortcut": flag, "layer": layer,
                                  "param": f"layers.{layer}.0.weight", "measured": measured,
                                  "book": book, "rel_diff": rel, "pass": bool(ok),
                                  "present": present})
        if cell.empty:
            facts["missing"].append(
                "the sweep has no cell " + ("with a shortcut of scale 1" if flag
                                            else "without shortcut"))
    present = [r for r in facts["rows"] if r["present"]]
    facts["compared"] = len(present)
    facts["passed"] = sum(r["pass"] for r in present)
    facts["all_pass"] = bool(present) and all(r["pass"] for r in present)
    return facts


def _book_missing(gradients):
    """Which parts of the book's case the sweep lacks, e.g. ['seed 123']."""
    missing = [f"{axis} {value}" for axis, value in BOOK_CASE.items()
               if not (gradients[axis] == value).any()]
    return missing or ["that exact combination (each value is in the sweep, but not together)"]


def attenuation_table(gradients):
    """Per variant, depth and arm: the first-layer / last-layer gradient
    ratio of each seed, its geometric mean and 95% t-interval over seeds."""
    last = gradients[gradients["layer"] == gradients["depth"] - 1]
    first = gradients[gradients["layer"] == 0]
    keys = list(CELL_AXES)
    merged = first[keys + ["grad_abs_mean"]].merge(
        last[keys + ["grad_abs_mean"]], on=keys, suffixes=("_first", "_last"))
    g0 = merged["grad_abs_mean_first"].to_numpy(dtype=float)
    gl = merged["grad_abs_mean_last"].to_numpy(dtype=float)
    ok = usable(g0) & usable(gl)
    ratio = np.full(len(g0), np.nan)
    ratio[ok] = g0[ok] / gl[ok]
    merged = merged.assign(ratio=ratio, ok=ok)
    rows = []
    group = list(VARIANT_AXES) + ["depth"] + list(ARM_AXES)
    for key, cells in merged.groupby(group, sort=True):
        n, centre, low, high, _ = log10_interval(cells["ratio"].to_numpy()[cells["ok"].to_numpy()])
        rows.append({"variant": variant_of(key[:len(VARIANT_AXES)]), "depth": plain(key[-3]),
                     "shortcut": bool(key[-2]), "scale": float(key[-1]),
                     "seeds": int(len(cells)), "n": n, "ratio": centre,
                     "ci_low": low, "ci_high": high})
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]),
                             arm_sort_key(arm_of(r["shortcut"], r["scale"])), r["depth"]))
    return rows


def device_table(gradients, top=10):
    """Where more than one device ran: per cell (everything but the device),
    the largest relative difference of any layer's gradient between the
    reference device (cpu if it ran) and each other device."""
    devices = sorted(gradients["device"].unique())
    if len(devices) < 2:
        return {"devices": devices, "compared": False, "groups": [], "worst": []}
    reference = "cpu" if "cpu" in devices else devices[0]
    cell_keys = [c for c in CELL_AXES if c != "device"]
    keys = cell_keys + ["layer"]
    ref = gradients[gradients["device"] == reference][keys + ["grad_abs_mean"]]
    groups, worst = [], []
    for other in devices:
        if other == reference:
            continue
        oth = gradients[gradients["device"] == other][keys + ["grad_abs_mean"]]
        m = ref.merge(oth, on=keys, suffixes=("_ref", "_oth"))
        a = m["grad_abs_mean_ref"].to_numpy(dtype=float)
        b = m["grad_abs_mean_oth"].to_numpy(dtype=float)
        fa, fb = np.isfinite(a), np.isfinite(b)
        scale = np.maximum(np.abs(a), np.abs(b))
        rel = np.full(len(a), np.nan)  # both non-finite: nothing to compare
        both = fa & fb
        rel[both] = 0.0
        nonzero = both & (scale > 0)
        rel[nonzero] = np.abs(a[nonzero] - b[nonzero]) / scale[nonzero]
        rel[fa != fb] = np.inf  # one device overflowed, the other did not
        per_cell = m.assign(rel=rel).groupby(cell_keys, sort=True)["rel"].max().reset_index()
        group_keys = [a for a in VARIANT_AXES if a != "device"]
        for key, g in per_cell.groupby(group_keys, sort=True):
            vals = g["rel"].to_numpy()
            seen = vals[~np.isnan(vals)]
            groups.append({"reference": reference, "device": other,
                           "variant": {**_variant_without_device(key, group_keys),
                                       "device": other},
                           "cells": int(len(g)),
                           "median": float(np.median(seen)) if len(seen) else math.nan,
                           "max": float(seen.max()) if len(seen) else math.nan,
                           "both_nonfinite": int(np.isnan(vals).sum())})
        ranked = per_cell[~per_cell["rel"].isna()].sort_values(
            ["rel"] + cell_keys, ascending=[False] + [True] * len(cell_keys), kind="stable")
        for rec in ranked.head(top).to_dict("records"):
            worst.append({"reference": reference, "device": other,
                          **{k: plain(rec[k]) for k in cell_keys}, "rel": float(rec["rel"])})
    worst.sort(key=lambda r: -r["rel"])
    return {"devices": devices, "reference": reference, "compared": True,
            "groups": groups, "worst": worst[:top]}


def _variant_without_device(key, axes):
    key = key if isinstance(key, tuple) else (key,)
    return {axis: plain(value) for axis, value in zip(axes, key)}


def _zero_cell_mask(gradients):
    """Per cell: every layer's gradient is exactly 0."""
    nonzero = gradients.assign(_nonzero=gradients["grad_abs_mean"].to_numpy() != 0)
    return ~nonzero.groupby(list(CELL_AXES), sort=False)["_nonzero"].any()


def _cell_listing(cells, total):
    """Cells grouped by variant, depth and arm, their seeds written as ranges."""
    rows = []
    group = list(VARIANT_AXES) + ["depth"] + list(ARM_AXES)
    for key, g in cells.groupby(group, sort=True):
        rows.append({"variant": variant_of(key[:len(VARIANT_AXES)]), "depth": plain(key[-3]),
                     "shortcut": bool(key[-2]), "scale": float(key[-1]),
                     "n": int(len(g)), "of": int(total.get(key, len(g))),
                     "seeds": describe_seeds(g["seed"]),
                     "output_zero": bool((g["output"] == 0).all())})
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]), r["depth"],
                             arm_sort_key(arm_of(r["shortcut"], r["scale"]))))
    return rows


def special_cells(gradients):
    """The non-finite cells (overflow at depth is a finding) and the cells
    whose gradient is exactly 0 everywhere, both listed compactly."""
    cells = gradients[gradients["layer"] == 0]
    group = list(VARIANT_AXES) + ["depth"] + list(ARM_AXES)
    total = cells.groupby(group, sort=True).size().to_dict()
    finite = cells["finite"].to_numpy(dtype=bool)
    zero_mask = _zero_cell_mask(gradients)
    zero_keys = set(zero_mask[zero_mask].index)
    is_zero = np.array([tuple(r) in zero_keys
                        for r in cells[list(CELL_AXES)].itertuples(index=False)], dtype=bool)
    return _cell_listing(cells[~finite], total), _cell_listing(cells[is_zero & finite], total)


def tables(gradients):
    """Every number the report prints, as plain JSON-able data."""
    gradients = with_all_axes(gradients)
    nonfinite, zero = special_cells(gradients)
    return {
        "sweep": sweep_facts(gradients),
        "headline": headline_table(gradients),
        "book": book_table(gradients),
        "attenuation": attenuation_table(gradients),
        "devices": device_table(gradients),
        "nonfinite": nonfinite,
        "zero": zero,
    }



def write_tables(data, path):
    write_json(data, path)


def read_tables(path):
    return read_json(path)


def make_tables(gradients_path, tables_path):
    """Rule tables: results/gradients.csv -> results/tables.json."""
    data = tables(read_records(gradients_path))
    write_tables(data, tables_path)
    return data
