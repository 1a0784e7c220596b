"""Hand-built report inputs in the issue-11 data contract, for the figure and
page tests: results/summary.csv with the log10 quantiles q05..q95 and
n_subnormal, results/lines.csv (at most 50 seeds per group) and
results/tables.json with `states`, `headline.book_axes`, the headline rows'
`without_subnormal` and every arm's `branch`.

They are computed here, the plain way, from a made-up records frame
(test_report.make_gradients), so that the report side can be tested before
(and independently of) the partial results that produce them for real.
"""

import json
import math

import numpy as np

from shortcutbench.analysis.aggregate import summary_table, with_all_axes
from shortcutbench.analysis.mlp.tables import tables
from shortcutbench.analysis.variants import VARIANT_AXES, variant_of
from shortcutbench.core.records import CELL_COLUMNS
from shortcutbench.core.states import STATES, cell_states, input_rms, subnormal

GROUP = [c for c in CELL_COLUMNS if c != "seed"]
BOOK_VALUES = {"activation": "gelu_tanh", "init": "pytorch", "norm": "none",
               "dtype": "float32", "device": "cpu", "width": 3}


def contract_summary(g):
    g = with_all_axes(g)
    summary = summary_table(g)
    keys = GROUP + ["layer"]
    values = g["grad_abs_mean"].to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)
    extra = g.assign(_log=logs, _sub=subnormal(values, g["dtype"].to_numpy()))
    agg = extra.groupby(keys, sort=True).agg(
        q05=("_log", lambda v: np.nanquantile(v, 0.05) if np.isfinite(v).any() else np.nan),
        q25=("_log", lambda v: np.nanquantile(v, 0.25) if np.isfinite(v).any() else np.nan),
        q50=("_log", lambda v: np.nanquantile(v, 0.50) if np.isfinite(v).any() else np.nan),
        q75=("_log", lambda v: np.nanquantile(v, 0.75) if np.isfinite(v).any() else np.nan),
        q95=("_log", lambda v: np.nanquantile(v, 0.95) if np.isfinite(v).any() else np.nan),
        n_subnormal=("_sub", "sum")).reset_index()
    return summary.merge(agg, on=keys, how="left")


def contract_lines(g, limit=50):
    g = with_all_axes(g)
    seeds = g.drop_duplicates(CELL_COLUMNS)
    seeds = seeds.assign(_rank=seeds.groupby(GROUP)["seed"].rank(method="dense"))
    keep = seeds[seeds["_rank"] <= limit][CELL_COLUMNS]
    rows = g.merge(keep, on=CELL_COLUMNS)
    return rows[CELL_COLUMNS + ["layer", "param", "grad_abs_mean"]]


def _states_rows(g, band):
    g = with_all_axes(g).sort_values(CELL_COLUMNS + ["layer"])
    cells = g.drop_duplicates(CELL_COLUMNS).reset_index(drop=True)
    index = {tuple(k): i for i, k in enumerate(cells[CELL_COLUMNS].itertuples(index=False))}
    cell_of = np.array([index[tuple(k)] for k in g[CELL_COLUMNS].itertuples(index=False)])
    layers = int(g["layer"].max()) + 1
    grad = np.full((len(cells), layers), np.nan)
    rms = np.full((len(cells), layers), np.nan)
    grad[cell_of, g["layer"].to_numpy()] = g["grad_abs_mean"].to_numpy(dtype=float)
    rms[cell_of, g["layer"].to_numpy()] = g["output_rms"].to_numpy(dtype=float)
    state = cell_states(grad, cells["output"].to_numpy(dtype=float), rms,
                        input_rms(cells["width"].to_numpy()), cells["depth"].to_numpy(),
                        band=band, finite=cells["finite"].to_numpy(dtype=bool))
    first = grad[:, 0]
    cells = cells.assign(_state=state, _first=first,
                         _sub=subnormal(first, cells["dtype"].to_numpy()))
    rows = []
    for key, c in cells.groupby(GROUP, sort=True):
        cell = dict(zip(GROUP, key))
        v = c["_first"].to_numpy(dtype=float)
        ok = np.isfinite(v) & (v > 0)
        rows.append({
            "variant": variant_of(tuple(cell[a] for a in VARIANT_AXES)),
            "shortcut": bool(cell["shortcut"]), "scale": float(cell["shortcut_scale"]),
            "branch": str(cell["branch_scale"]), "depth": int(cell["depth"]), "n": len(c),
            "counts": {s: int((c["_state"] == s).sum()) for s in STATES},
            "first_gmean": float(10 ** np.log10(v[ok]).mean()) if ok.any() else math.nan,
            "first_subnormal": int(c["_sub"].sum())})
    return rows


def contract_tables(g, band=2.0):
    """today's tables() plus the contract's additions."""
    g = with_all_axes(g)
    data = json.loads(json.dumps(tables(g)))
    data["states"] = {"band": band, "rows": _states_rows(g, band)}
    hl = data["headline"]
    axes = data["sweep"]["axes"]
    book_axes = [a for a, v in BOOK_VALUES.items() if v in axes.get(a, [])]
    hl["book_axes"] = book_axes
    if hl["rows"]:
        def score(row):
            v = row["variant"]
            return (-sum(v[a] == BOOK_VALUES[a] for a in book_axes),
                    row["scale"] != 1.0, v["width"])
        main = min(range(len(hl["rows"])), key=lambda i: score(hl["rows"][i]))
        hl["main"] = main
    deepest = hl["depth"]
    first = g[(g["depth"] == deepest) & (g["layer"] == 0) & ~g["shortcut"].astype(bool)]
    for row in hl["rows"]:
        row.setdefault("branch", "1")
        sel = first
        for a in VARIANT_AXES:
            sel = sel[sel[a] == row["variant"][a]]
        row["without_subnormal"] = int(subnormal(sel["grad_abs_mean"].to_numpy(dtype=float),
                                                 row["variant"]["dtype"]).sum())
    for row in data["attenuation"] + data["nonfinite"] + data["zero"]:
        row.setdefault("branch", "1")
    for arm in data["sweep"]["arms"]:
        arm.setdefault("branch", "1")
    return data


def write_inputs(g, root):
    """summary.csv, lines.csv and tables.json under root; returns the tables."""
    contract_summary(g).to_csv(root / "summary.csv", index=False)
    contract_lines(g).to_csv(root / "lines.csv", index=False)
    data = contract_tables(g)
    (root / "tables.json").write_text(json.dumps(data))
    return data
