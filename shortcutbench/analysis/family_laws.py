"""What the sweep shows for the families beyond the book's MLP: one finding
each for He et al.'s ResNet (BatchNorm without shortcuts, after Yang et al.
2019) and for the book's GPT (layer norm placement, after Xiong et al. 2020),
where the family ran.  From the main sweep's merged partial results, like
the MLP's (analysis/laws.py): a group's log10 moments give its geometric mean
and 95% CI, and a fit over depths pools the groups' moments into one least
squares line over every cell.  No torch, no scipy.stats.
"""

from __future__ import annotations

import math

import numpy as np

from shortcutbench.analysis import intervals
from shortcutbench.analysis.findings import Finding, Verdict, compare, verdict_text
from shortcutbench.analysis.partials_frame import only_model

# Yang et al. 2019: a batch-normalised ReLU network's squared gradient norm
# grows by pi / (pi - 1) per layer for large batches; the gradient by its root.
BN_RELU_FACTOR = math.sqrt(math.pi / (math.pi - 1))
# Xiong et al. 2020, Theorem 1: the exponent of L in the last FFN weight's
# gradient norm, per norm placement.
XIONG_EXPONENTS = {"post_layernorm": 0.0, "pre_layernorm": -0.5}
XIONG_PARAM = "ff.layers.2.weight"  # W2 of the last block's feed-forward
EXPONENT_CLOSE = 0.1  # an exponent outside the CI but within 0.1 of the theorem's: close
# Pre-LN's regime: the blocks' part of the stream's variance at least the
# embeddings', i.e. the stream's largest RMS (pre-LN: the last block's, the
# stream only grows) >= sqrt(2) x the embeddings'.
REGIME_STREAM = math.sqrt(2)
STATES = ("healthy", "vanished", "exploded", "dead", "non_finite")


def _log(row, value):
    n, centre, low, high, _ = intervals.log10_moments_interval(
        row[f"log10_{value}_n"], row[f"log10_{value}_mean"], row[f"log10_{value}_m2"])
    return n, centre, low, high


def _table(rows, columns):
    from shortcutbench.analysis.variants import plain

    return {"columns": columns, "rows": [[plain(r[c]) for c in columns] for r in rows]}


def _share(row, state):
    return row[f"state_{state}"] / row["n_cells"] if row["n_cells"] else math.nan


def reference_setting(rows):
    """The (dtype, device) a finding judges: float32 on the CPU where the
    sweep has it (the precision the theories' numbers are compared in),
    else the first; the table keeps every setting."""
    settings = sorted({(r["dtype"], r["device"]) for r in rows})
    return ("float32", "cpu") if ("float32", "cpu") in settings else settings[0]


def log_verdict(predicted, low, high, measured):
    """A per-layer factor's verdict on its growth rate, ln f: a factor near
    1 is a small rate, and 10% of the factor would be half the rate."""
    logs = [math.log(x) if math.isfinite(x) and x > 0 else math.nan
            for x in (predicted, low, high, measured)]
    outcome = compare(*logs)
    why = "Yang et al.'s rate is derived for wide, fully connected layers and large batches"
    return outcome, verdict_text(outcome, logs[0], logs[3],
                                 why if outcome == Verdict.DIFFERS else None)


# ---------------------------------------------------------------- ResNet

def _first_over_last(blocks, group):
    """The first conv's gradient over the last conv's, geometric mean over
    the seeds (the difference of the two layers' mean log10)."""
    mine = blocks
    for column in ("depth", "shortcut", "dtype", "device"):
        mine = mine[mine[column] == group[column]]
    by_layer = {int(r["layer"]): r for r in mine.to_dict("records")}
    first, last = by_layer.get(0), by_layer.get(int(group["depth"]) - 2)
    if not first or not last or not first["log10_n"] or not last["log10_n"]:
        return math.nan
    return 10.0 ** (first["log10_mean"] - last["log10_mean"])


def batchnorm_finding(frames):
    """He et al.'s plain nets with BatchNorm against Yang et al.'s explosion:
    per depth, the plain and the residual net's per-layer factor (a log-linear
    fit over the blocks' convs, one intercept per stage: core/resnet.py) with
    its 95% CI, and the healthy share of each; the verdict compares the plain
    net's factor at the deepest depth with sqrt(pi/(pi-1))."""
    mine = only_model(frames, "resnet")
    cells = mine["cells"]
    if cells.empty:
        return None
    cells = cells.sort_values(["dtype", "device", "depth", "shortcut"], kind="stable")
    blocks = mine.get("blocks")
    rows = []
    for r in cells.to_dict("records"):
        n, factor, low, high = _log(r, "factor")
        row = {"depth": int(r["depth"]), "shortcut": bool(r["shortcut"]), "dtype": r["dtype"],
               "device": r["device"], "seeds": n, "factor": factor, "ci_low": low,
               "ci_high": high, "predicted": BN_RELU_FACTOR if not r["shortcut"] else math.nan,
               "first_over_last": (_first_over_last(blocks, r) if blocks is not None
                                   else math.nan),
               **{f"share_{s}": _share(r, s) for s in STATES}}
        if not r["shortcut"]:
            row["outcome"], row["verdict"] = log_verdict(BN_RELU_FACTOR, low, high, factor)
        else:
            row["verdict"], row["outcome"] = "", None
        rows.append(row)
    setting = reference_setting(rows)
    main = [r for r in rows if (r["dtype"], r["device"]) == setting]
    plain = [r for r in main if not r["shortcut"]]
    residual = {r["depth"]: r for r in main if r["shortcut"]}
    if not plain:
        return Finding("batchnorm", Verdict.NOT_MEASURED, measured="no plain cells",
                       missing="add false to resnet.shortcut in the config")
    deepest = plain[-1]
    verdict = deepest["outcome"]
    twin = residual.get(deepest["depth"])
    if math.isfinite(deepest["ci_low"]):
        grows = deepest["ci_low"] > 1
        growth = ("It grows exponentially with depth, as Yang et al. prove, not with He et "
                  "al.'s \u201chealthy norms\u201d" if grows else
                  "No exponential growth is measured: the CI of the factor holds 1")
    else:
        growth = "With one seed there is no interval to judge the growth by"
    detail = (f"the plain net's gradient grows x{deepest['factor']:.3g} per layer toward the "
              f"input at {deepest['depth']} layers (95% CI {deepest['ci_low']:.3g}-"
              f"{deepest['ci_high']:.3g}; a rate ln f of {math.log(deepest['factor']):.3g} per "
              f"layer), Yang et al.'s is {BN_RELU_FACTOR:.4g} (a rate of "
              f"{math.log(BN_RELU_FACTOR):.3g}): {deepest['verdict']}. " + growth
              + (f"; the ResNet's grows x{twin['factor']:.3g} per layer" if twin else "")
              + f". Healthy at {deepest['depth']} layers: {deepest['share_healthy']:.0%} of the "
              f"plain nets" + (f", {twin['share_healthy']:.0%} of the ResNets" if twin else ""))
    measured = "; ".join(
        f"{r['depth']} layers: plain x{r['factor']:.3g} per layer (95% CI {r['ci_low']:.3g}-"
        f"{r['ci_high']:.3g}), first conv {r['first_over_last']:.3g} x its last, "
        f"{r['share_healthy']:.0%} healthy"
        + (f"; ResNet x{residual[r['depth']]['factor']:.3g}, first conv "
           f"{residual[r['depth']]['first_over_last']:.3g} x its last, "
           f"{residual[r['depth']]['share_healthy']:.0%} healthy" if r["depth"] in residual
           else "")
        for r in plain)
    return Finding("batchnorm", verdict, detail=detail, measured=measured, sweep="main",
                   table=_table(rows, ["depth", "shortcut", "dtype", "device", "seeds",
                                       "factor", "ci_low", "ci_high", "predicted", "verdict",
                                       "first_over_last", *(f"share_{s}" for s in STATES)]))


# ---------------------------------------------------------------- GPT

def pooled_fit(x, n, mean, m2):
    """The least squares line y = a + slope x over every cell, from each
    group's x and the moments (n, mean, m2) of its y: (slope, its standard
    error, cells); NaN where fewer than 3 cells or one x."""
    x, n, mean, m2 = (np.asarray(v, dtype=float) for v in (x, n, mean, m2))
    keep = n > 0
    x, n, mean, m2 = x[keep], n[keep], mean[keep], m2[keep]
    total = n.sum()
    if total < 3 or len(np.unique(x)) < 2:
        return math.nan, math.nan, int(total)
    xbar, ybar = np.sum(n * x) / total, np.sum(n * mean) / total
    sxx = np.sum(n * (x - xbar) ** 2)
    slope = np.sum(n * (x - xbar) * (mean - ybar)) / sxx
    intercept = ybar - slope * xbar
    rss = np.sum(m2) + np.sum(n * (mean - intercept - slope * x) ** 2)
    return float(slope), float(math.sqrt(rss / (total - 2) / sxx)), int(total)


def _exponent_verdict(predicted, slope, low, high):
    if not math.isfinite(slope):
        return Verdict.NO_DATA
    if low <= predicted <= high:
        return Verdict.AGREES
    return Verdict.CLOSE if abs(slope - predicted) <= EXPONENT_CLOSE else Verdict.DIFFERS


def xiong_rows(frames):
    """Per norm placement and number of blocks L (with shortcuts): the L2
    norm of the last block's W2 gradient (geometric mean over seeds, 95% CI,
    its log10 moments) and the last block's stream over the embeddings'."""
    mine = only_model(frames, "gpt")
    layers, cells = mine["layers"], mine["cells"]
    if cells.empty:
        return []
    layers = layers[layers["shortcut"].astype(bool)]
    cells = cells[cells["shortcut"].astype(bool)]
    stream = {(r["norm"], r["dtype"], r["device"], int(r["depth"])): _log(r, "stream_max")[1]
              for r in cells.to_dict("records")}
    rows = []
    for r in layers.to_dict("records"):
        if r["norm"] not in XIONG_EXPONENTS or int(r["layer"]) != int(r["depth"]) - 1 \
                or not str(r["param"]).endswith("." + XIONG_PARAM):
            continue
        n, centre, low, high, _ = intervals.log10_moments_interval(
            r["grad_l2_n_pos"], r["grad_l2_log10_mean"], r["grad_l2_log10_m2"])
        rows.append({"norm": r["norm"], "dtype": r["dtype"], "device": r["device"],
                     "blocks": int(r["depth"]), "seeds": n, "grad_l2": centre, "ci_low": low,
                     "ci_high": high, "n": n, "log10_mean": r["grad_l2_log10_mean"],
                     "log10_m2": r["grad_l2_log10_m2"],
                     "stream_over_embeddings": stream.get(
                         (r["norm"], r["dtype"], r["device"], int(r["depth"])), math.nan)})
    rows.sort(key=lambda r: (r["dtype"], r["device"], r["norm"], r["blocks"]))
    return rows


def xiong_finding(frames):
    """The exponent of L in the last block's W2 gradient norm, fitted per
    norm placement where the theorem's regime holds (post-LN: every L; pre-LN:
    where the blocks outweigh the embeddings in the stream), with its 95% CI,
    against Xiong et al.'s 0 and -1/2."""
    rows = xiong_rows(frames)
    if not rows:
        return None
    setting = reference_setting(rows)
    for r in rows:
        r["in_regime"] = False
    fits, notes = [], []
    for norm, predicted in XIONG_EXPONENTS.items():
        mine = [r for r in rows if (r["dtype"], r["device"]) == setting and r["norm"] == norm]
        if not mine:
            continue
        regime = (mine if norm == "post_layernorm" else
                  [r for r in mine if r["stream_over_embeddings"] >= REGIME_STREAM])
        for r in mine:
            r["in_regime"] = r in regime
        slope, se, cells = pooled_fit([math.log10(r["blocks"]) for r in regime],
                                      [r["n"] for r in regime],
                                      [r["log10_mean"] for r in regime],
                                      [r["log10_m2"] for r in regime])
        half = intervals.t975(cells - 2) * se if cells > 2 and math.isfinite(se) else math.nan
        low, high = slope - half, slope + half
        verdict = _exponent_verdict(predicted, slope, low, high)
        other = XIONG_EXPONENTS["pre_layernorm" if norm == "post_layernorm" else "post_layernorm"]
        excludes = math.isfinite(half) and not (low <= other <= high)
        blocks = [r["blocks"] for r in regime]
        where = (f"L = {blocks[0]}-{blocks[-1]}" if len(blocks) > 1 else
                 f"L = {blocks[0]} only" if blocks else "no L")
        fits.append({"norm": norm, "predicted": predicted, "exponent": slope, "ci_low": low,
                     "ci_high": high, "cells": cells, "regime": where,
                     "regime_blocks": blocks, "verdict": str(verdict), "outcome": verdict,
                     "excludes_other": excludes})
        if norm == "pre_layernorm":
            notes.append(f"pre-LN's regime (the stream's RMS at the last block at least "
                         f"sqrt 2 x the embeddings': the blocks outweigh them): {where}")
    if not fits:
        return None
    missing = [f for f in fits if len(f["regime_blocks"]) < 2]
    if missing:
        return Finding("xiong", Verdict.NOT_MEASURED, measured="; ".join(
            f"{f['norm']}: {f['regime']} in the theorem's regime" for f in fits),
            missing="gpt.blocks up to 64 or more (pre-LN's regime starts where the blocks "
                    "outweigh the embeddings in the stream, ~32 blocks at PyTorch's default "
                    "init)",
            table=_table(rows, ["norm", "blocks", "seeds", "grad_l2", "ci_low", "ci_high",
                                "stream_over_embeddings"]))
    verdicts = [f["outcome"] for f in fits]
    word = (Verdict.AGREES if all(v == Verdict.AGREES for v in verdicts) else
            Verdict.DIFFERS if all(v == Verdict.DIFFERS for v in verdicts) else
            Verdict.CLOSE if all(v in (Verdict.AGREES, Verdict.CLOSE) for v in verdicts)
            else Verdict.PARTLY)
    measured = "; ".join(
        f"{f['norm']}: exponent {f['exponent']:.3g} (95% CI {f['ci_low']:.3g} to "
        f"{f['ci_high']:.3g}) over {f['regime']}, {f['cells']} cells" for f in fits)
    detail = "; ".join(
        f"{f['norm']} {f['verdict']} with {f['predicted']:g}"
        + (" and excludes the other placement's" if f["excludes_other"] else
           ", but its CI also holds the other placement's") for f in fits)
    return Finding("xiong", word, detail=detail + ". " + "; ".join(notes), measured=measured,
                   sweep="main",
                   table=_table(fits, ["norm", "predicted", "exponent", "ci_low", "ci_high",
                                       "cells", "regime", "verdict"]),
                   tables={"points": _table(rows, ["norm", "blocks", "seeds", "grad_l2",
                                                   "ci_low", "ci_high",
                                                   "stream_over_embeddings", "in_regime"])})


def family_findings(frames):
    """The findings of the families that ran (none for a family that did not)."""
    if frames is None or "cells" not in frames:
        return []
    found = [batchnorm_finding(frames), xiong_finding(frames)]
    return [f for f in found if f is not None]
