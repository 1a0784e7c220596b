"""Every number the report prints, from the merged partial results
(results/partials.json, rule merge; see core/partials.py), with pandas.

`tables(partials)` gives the sweep's facts, the headline ratio, the book's
case, the attenuation with depth, the cell states, device differences and
the non-finite and zero cells.  Rule `tables` writes them to
results/tables.json, which the figures and the report (analysis/mlp/report.py)
both read, so that they show the very same numbers and each can be traced to one
file.  Nothing here reads the records: memory grows with the number of
groups (cells without their seed), not with seeds.  Each table function
also takes a frame of records (a hand-made results/gradients.csv), turned
into partial results first.  No torch here.
"""

import math
from os import PathLike

import numpy as np

from shortcutbench.analysis.families import main_variant, variants_of
from shortcutbench.analysis.partials_frame import (
    facts,
    interval_columns,
    only_model,
    partials_of_records,
    to_frames,
)
from shortcutbench.analysis.variants import (
    VARIANT_AXES,
    describe_seeds,
    plain,
    variant_of,
    variant_sort_key,
)
from shortcutbench.core import arms
from shortcutbench.core.arms import ARM_COLUMNS, BOOK_BRANCH, BOOK_SCALE
from shortcutbench.core.book import BOOK_CASE, BOOK_GRADIENTS, RTOL
from shortcutbench.core.families import layout
from shortcutbench.core.families.mlp import NAME
from shortcutbench.core.files import write_json
from shortcutbench.core.partials import GROUP, LINES, read_merged
from shortcutbench.core.records import CELL_COLUMNS
from shortcutbench.core.states import DEFAULT_BAND, STATE_COLUMNS

STATES = layout(NAME).states  # never zero-branch

CELL_AXES = tuple(CELL_COLUMNS)

# ---------------------------------------------------------------- tables

def frames_of(data, band=DEFAULT_BAND):
    """Merged partial results (the JSON's dict, or its frames) or a frame of
    records (hand-made) -> {table: DataFrame}."""
    if hasattr(data, "columns"):  # records
        from shortcutbench.analysis.aggregate import with_all_axes

        records = with_all_axes(data)
        missing = {c: np.nan for c in ("grad_l2", "bias_grad_abs_mean", "output_rms",
                                       "grad_stream_cos", "token_cosine") if c not in records}
        if "param" not in records:
            missing["param"] = "layers." + records["layer"].astype(str) + ".0.weight"
        return to_frames(partials_of_records(records.assign(**missing), band))
    if isinstance(data, dict) and hasattr(data.get("layers"), "columns"):
        return only_model(data, NAME)
    return only_model(to_frames(data), NAME)  # the other families have their own sections


def _gmean(log10_mean, n):
    return 10.0 ** float(log10_mean) if n else math.nan


def _interval(n, mean, m2):
    """Moments of log10 values -> (n, centre, low, high, log10_sd), back-transformed."""
    n = int(n)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    sd, low, high = (float(x[0]) for x in interval_columns([n], [mean], [m2]))
    return n, 10.0 ** float(mean), 10.0 ** low, 10.0 ** high, sd


def _seeds_text(seeds, n):
    """The first seeds of a group, as ranges; '…' when there are more."""
    text = describe_seeds(seeds)
    return text + (", \u2026" if n > len(seeds) else "")


def _axes(frames):
    cells = frames["cells"]
    axes = {}
    for axis in CELL_AXES:
        if axis == "seed":
            axes[axis] = sorted(int(s) for s in facts(cells).get("seeds", []))
        else:
            axes[axis] = sorted(plain(v) for v in cells[axis].unique())
    return axes


def _arms(frame):
    return [a.as_dict() for a in arms.ordered(frame[list(ARM_COLUMNS)].itertuples(index=False))]


def sweep_facts(data):
    """What the data holds: the values of every axis and the cell counts."""
    frames = frames_of(data)
    cells, special = frames["cells"], frames["special"]
    axes = _axes(frames)
    found = _arms(cells)
    variants = cells[list(VARIANT_AXES)].drop_duplicates()
    return {
        "axes": axes,
        "arms": found,
        "scales": sorted({a["scale"] for a in found if a["shortcut"]}),
        "branches": sorted({a["branch"] for a in found if a["shortcut"]},
                           key=lambda b: (b != BOOK_BRANCH, b)),
        "swept": [axis for axis in VARIANT_AXES if len(axes[axis]) > 1],
        "n_cells": int(cells["n_cells"].sum()),
        "n_nonfinite": int(special.loc[special["kind"] == "non_finite", "n"].sum()),
        "n_zero": int(special.loc[special["kind"] == "zero", "n"].sum()),
        "n_rows": int(frames["layers"]["grad_abs_mean_n"].sum()),
        "band": facts(cells).get("band", DEFAULT_BAND),
        "variants": sorted((variant_of(k) for k in variants.itertuples(index=False)),
                           key=variant_sort_key),
    }


def main_choice(axes, sweep_arms, variants):
    """The headline's main row: its variant (analysis/families.py's
    main_variant: the book's value on every axis the sweep includes it,
    else its first), its arm's lambda and alpha (the book's where swept),
    and the axes where the book's value was chosen among others
    (book_axes)."""
    variant = main_variant(NAME, variants)
    book_axes = [axis for axis in VARIANT_AXES
                 if len(axes[axis]) > 1 and variant[axis] == BOOK_CASE[axis]]
    withs = [a for a in sweep_arms if a["shortcut"]]
    scales = sorted({a["scale"] for a in withs})
    branches = sorted({a["branch"] for a in withs})
    scale = BOOK_SCALE if BOOK_SCALE in scales else (scales[0] if scales else None)
    branch = BOOK_BRANCH if BOOK_BRANCH in branches else (branches[0] if branches else None)
    if len(scales) > 1 and scale == BOOK_SCALE:
        book_axes.append("shortcut_scale")
    if len(branches) > 1 and branch == BOOK_BRANCH:
        book_axes.append("branch_scale")
    return variant, scale, branch, book_axes


def headline_table(data):
    """At the deepest depth, per variant and shortcut arm: the first layer's
    gradient with and without shortcut, paired by seed, and the
    geometric-mean ratio with its 95% t-interval over seeds (in log space).
    Seeds where either gradient is non-finite or exactly 0 cannot enter a
    ratio on a log scale; they are counted, not hidden, and so are the seeds
    whose gradient without shortcut is subnormal (without_subnormal).  The
    main row is the book's variant (main_choice)."""
    frames = frames_of(data)
    cells, layers, pairs, special = (frames[k] for k in ("cells", "layers", "pairs", "special"))
    deepest = int(cells["depth"].max())
    axes = list(VARIANT_AXES)
    key = axes + list(ARM_COLUMNS)
    # Plain dicts of the few columns used, not pandas rows: reading a wide
    # frame row by row (itertuples, .loc, .iloc) cost ~0.5 s at 60 variants.
    first = layers.loc[(layers["depth"] == deepest) & (layers["layer"] == 0),
                       key + [f"grad_abs_mean_{c}" for c in ("n", "n_finite", "n_pos",
                                                             "n_zero", "log10_mean")]]
    zero = special.loc[(special["depth"] == deepest) & (special["kind"] == "zero"),
                       key + ["n_output_zero"]]
    silent = {tuple(k[:-1]): int(k[-1]) for k in zero.itertuples(index=False)}
    pairs = pairs[pairs["depth"] == deepest]
    pair_rows = {tuple(r[c] for c in axes + ["shortcut_scale", "branch_scale"]): r
                 for r in pairs.to_dict("records")}
    n_seeds = cells[cells["depth"] == deepest].groupby(axes)["n_cells"].max().to_dict()
    by_variant = {}
    for r in first.to_dict("records"):
        arm = (bool(r["shortcut"]), float(r["shortcut_scale"]), str(r["branch_scale"]))
        by_variant.setdefault(tuple(r[a] for a in axes), {})[arm] = r
    rows = []
    for vkey, by_arm in sorted(by_variant.items()):
        without = next((r for (f, _, _), r in by_arm.items() if not f), None)
        withs = sorted(((s, b) for f, s, b in by_arm if f),
                       key=lambda a: (a[0] != BOOK_SCALE, a[0], a[1] != BOOK_BRANCH, a[1]))
        for scale, branch in withs or [(None, None)]:
            with_ = by_arm.get((True, scale, branch)) if scale is not None else None
            row = {"variant": variant_of(vkey), "depth": deepest, "scale": scale,
                   "branch": branch, "n_seeds": int(n_seeds[vkey]),
                   "flags": [f for f, v in ((False, without), (True, with_)) if v is not None]}
            for name, r, arm in (("without", without, (False, 0.0, BOOK_BRANCH)),
                                 ("with", with_, (True, scale, branch))):
                if r is None:
                    row.update({f"{name}_n": 0, f"{name}_gmean": math.nan, f"{name}_zero": 0,
                                f"{name}_silent": 0, f"{name}_nonfinite": 0})
                    continue
                n = int(r["grad_abs_mean_n_pos"])
                row.update({f"{name}_n": n,
                            f"{name}_gmean": _gmean(r["grad_abs_mean_log10_mean"], n),
                            f"{name}_zero": int(r["grad_abs_mean_n_zero"]),
                            f"{name}_silent": silent.get(vkey + arm, 0),
                            f"{name}_nonfinite": int(r["grad_abs_mean_n"]
                                                     - r["grad_abs_mean_n_finite"])})
            p = pair_rows.get(vkey + (scale, branch)) if scale is not None else None
            if without is not None and p is not None:
                n, ratio, low, high, sd = _interval(p["n_usable"], p["log10_ratio_mean"],
                                                    p["log10_ratio_m2"])
                excluded = int(p["n_pairs"]) - n
                row.update({"pairs": int(p["n_pairs"]), "n": n, "ratio": ratio, "ci_low": low,
                            "ci_high": high, "log10_sd": sd, "excluded": excluded,
                            "excluded_seeds": _seeds_text(p["excluded_seeds"], excluded),
                            "without_subnormal": int(p["n_without_subnormal"])})
            else:
                row.update({"pairs": 0, "n": 0, "ratio": math.nan, "ci_low": math.nan,
                            "ci_high": math.nan, "log10_sd": math.nan, "excluded": 0,
                            "excluded_seeds": "", "without_subnormal": 0})
            rows.append(row)
    variant, scale, branch, book_axes = main_choice(_axes(frames), _arms(cells), variants_of(cells))

    def order(r):
        return (r["variant"] != variant, variant_sort_key(r["variant"]),
                r["scale"] != scale, r["scale"] or 0.0, r["branch"] != branch, r["branch"] or "")

    rows.sort(key=order)
    return {"depth": deepest, "rows": rows, "main": 0 if rows else None,
            "main_variant": variant, "book_axes": book_axes}


def book_table(data):
    """The book's case beside the book's printed numbers."""
    frames = frames_of(data)
    case = frames["book"]
    facts = {"case": dict(BOOK_CASE), "rtol": RTOL, "found": False,
             "rows": [], "missing": [], "passed": 0, "compared": 0, "all_pass": False}
    shortcut = case["shortcut"].astype(bool).to_numpy()
    arms = {False: case[~shortcut], True: case[shortcut]}
    if case.empty:
        facts["missing"] = _book_missing(_axes(frames))
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


def _book_missing(axes):
    """Which parts of the book's case the sweep lacks, e.g. ['seed 123']."""
    missing = [f"{axis} {value}" for axis, value in BOOK_CASE.items()
               if value not in axes.get(axis, [])]
    return missing or ["that exact combination (each value is in the sweep, but not together)"]


def _group_rows(frame):
    """Rows of a per-group frame as (variant, depth, arm, row)."""
    for r in frame.to_dict("records"):
        yield ({axis: plain(r[axis]) for axis in VARIANT_AXES}, int(r["depth"]),
               arms.of(r).as_dict(), r)


def _by_variant_arm_depth(row):
    return (variant_sort_key(row["variant"]), arms.of(row).sort_key(), row["depth"])


def attenuation_table(data):
    """Per variant, depth and arm: the first-layer / last-layer gradient
    ratio of each seed, its geometric mean and 95% t-interval over seeds."""
    cells = frames_of(data)["cells"]
    if "log10_attenuation_n" not in cells:
        return []
    rows = []
    for variant, depth, arm, r in _group_rows(cells):
        n, centre, low, high, _ = _interval(r["log10_attenuation_n"],
                                            r["log10_attenuation_mean"],
                                            r["log10_attenuation_m2"])
        rows.append({"variant": variant, "depth": depth, **arm,
                     "seeds": int(r["n_cells"]), "n": n, "ratio": centre,
                     "ci_low": low, "ci_high": high})
    rows.sort(key=_by_variant_arm_depth)
    return rows


def states_table(data):
    """Per variant, arm and depth: how many cells are in each state
    (core/states.py, with the sweep's healthy band), the geometric mean of
    the first layer's usable gradients and how many of them are subnormal."""
    frames = frames_of(data)
    cells, layers = frames["cells"], frames["layers"]
    group = list(GROUP)
    first = {tuple(r[c] for c in group): r
             for r in layers[layers["layer"] == 0].to_dict("records")}
    rows = []
    for variant, depth, arm, r in _group_rows(cells):
        f = first.get(tuple(r[c] for c in group))
        n_first = int(f["grad_abs_mean_n_pos"]) if f is not None else 0
        rows.append({"variant": variant, **arm, "depth": depth, "n": int(r["n_cells"]),
                     "counts": {s: int(r[STATE_COLUMNS[s]]) for s in STATES},
                     "first_gmean": (_gmean(f["grad_abs_mean_log10_mean"], n_first)
                                     if f is not None else math.nan),
                     "first_subnormal": int(f["grad_abs_mean_n_subnormal"])
                     if f is not None else 0})
    rows.sort(key=_by_variant_arm_depth)
    return {"band": facts(cells).get("band", DEFAULT_BAND), "rows": rows}


def device_table(data, top=10):
    """Where more than one device ran: per cell (everything but the device),
    the largest relative difference of any layer's gradient between the
    reference device (cpu if it ran) and each other device.  Compared on
    the single-seed profiles the partial results keep: the LINES smallest
    seeds of each group (all seeds of a smaller sweep)."""
    gradients = frames_of(data)["lines"]
    devices = sorted(gradients["device"].unique())
    if len(devices) < 2:
        return {"devices": devices, "compared": False, "groups": [], "worst": [],
                "seeds_per_group": LINES}
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
            key = key if isinstance(key, tuple) else (key,)
            groups.append({"reference": reference, "device": other,
                           "variant": {**{a: plain(v) for a, v in zip(group_keys, key)},
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
            "groups": groups, "worst": worst[:top], "seeds_per_group": LINES}


def special_cells(data):
    """The non-finite cells (overflow at depth is a finding) and the cells
    whose gradient is exactly 0 everywhere, both listed compactly (the
    first core.partials.SPECIAL_SEEDS seeds of each group)."""
    frames = frames_of(data)
    cells, special = frames["cells"], frames["special"]
    group = list(GROUP)
    total = {tuple(k[:-1]): int(k[-1]) for k in cells[group + ["n_cells"]].itertuples(
        index=False)}
    listings = {"non_finite": [], "zero": []}
    for variant, depth, arm, r in _group_rows(special):
        seeds = list(r["seeds"])
        listings[r["kind"]].append({
            "variant": variant, "depth": depth, **arm, "n": int(r["n"]),
            "of": total.get(tuple(r[c] for c in group), int(r["n"])),
            "seeds": _seeds_text(seeds, int(r["n"])), "output_zero": bool(r["output_zero"])})
    for rows in listings.values():
        rows.sort(key=lambda r: (variant_sort_key(r["variant"]), r["depth"],
                                 arms.of(r).sort_key()))
    return listings["non_finite"], listings["zero"]


def tables(data) -> dict:
    """Every number the report prints, as plain JSON-able data, from the
    merged partial results (or a frame of records)."""
    frames = frames_of(data)
    nonfinite, zero = special_cells(frames)
    return {
        "sweep": sweep_facts(frames),
        "headline": headline_table(frames),
        "book": book_table(frames),
        "attenuation": attenuation_table(frames),
        "states": states_table(frames),
        "devices": device_table(frames),
        "nonfinite": nonfinite,
        "zero": zero,
    }


def write_tables(data: dict, path: PathLike) -> None:
    write_json(data, path)


def make_tables(partials_path: PathLike, tables_path: PathLike) -> dict:
    """Rule tables: results/partials.json -> results/tables.json."""
    data = tables(read_merged(partials_path))
    write_tables(data, tables_path)
    return data
