"""What the sweep shows of the laws a family is a case of (its spec's or
its section's `laws`): BatchNorm without shortcuts (after Yang et al. 2019),
layer norm placement (after Xiong et al. 2020) and the branch scale, where
the family ran.  From the main sweep's merged partial results, like the
top-level family's own laws: a group's log10 moments give its geometric mean
and 95% CI, and a fit over depths pools the groups' moments into one least
squares line over every cell.  No torch, no scipy.stats.
"""

from __future__ import annotations

import math
import re

import numpy as np

from shortcutbench.analysis import intervals
from shortcutbench.analysis.findings import Finding, Verdict, compare, verdict_text
from shortcutbench.analysis.partials_frame import only_model
from shortcutbench.core import arms, families
from shortcutbench.core.records import BRANCH_RULE, branch_label, branch_value
from shortcutbench.core.states import STATE_COLUMNS, STATE_KEYS, STATES, ZERO_BRANCH

# Yang et al. 2019: a batch-normalised ReLU network's squared gradient norm
# grows by pi / (pi - 1) per layer for large batches; the gradient by its root.
BN_RELU_FACTOR = math.sqrt(math.pi / (math.pi - 1))
# Xiong et al. 2020, Theorem 1: the exponent of L in the last FFN weight's
# gradient norm, per norm placement.
XIONG_EXPONENTS = {"post_layernorm": 0.0, "pre_layernorm": -0.5}
EXPONENT_CLOSE = 0.1  # an exponent outside the CI but within 0.1 of the theorem's: close
# Pre-LN's regime: the blocks' part of the stream's variance at least the
# embeddings', i.e. the stream's largest RMS (pre-LN: the last block's, the
# stream only grows) >= sqrt(2) x the embeddings'.
REGIME_STREAM = math.sqrt(2)
# The states whose shares a finding's table shows (zero-branch is no law's).
SHOWN_STATES = STATES[:ZERO_BRANCH]


def _log(row, value):
    n, centre, low, high, _ = intervals.log10_moments_interval(
        row[f"log10_{value}_n"], row[f"log10_{value}_mean"], row[f"log10_{value}_m2"])
    return n, centre, low, high


def _table(rows, columns):
    from shortcutbench.analysis.variants import plain

    return {"columns": columns, "rows": [[plain(r[c]) for c in columns] for r in rows]}


def _share(row, state):
    return row[STATE_COLUMNS[state]] / row["n_cells"] if row["n_cells"] else math.nan


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


# ---------------------------------------------------------------- BatchNorm

def _first_over_last(blocks, group, last_offset):
    """The first conv's gradient over the last conv's (layer depth +
    last_offset), geometric mean over the seeds (the difference of the two
    layers' mean log10)."""
    mine = blocks
    for column in ("depth", "shortcut", "dtype", "device"):
        mine = mine[mine[column] == group[column]]
    by_layer = {int(r["layer"]): r for r in mine.to_dict("records")}
    first, last = by_layer.get(0), by_layer.get(int(group["depth"]) + last_offset)
    if not first or not last or not first["log10_n"] or not last["log10_n"]:
        return math.nan
    return 10.0 ** (first["log10_mean"] - last["log10_mean"])


def batchnorm_finding(frames, family, law):
    """He et al.'s plain nets with BatchNorm against Yang et al.'s explosion,
    on a family that declares it (law: {"last": the offset from depth of
    its last conv's layer}): per depth, the plain and the residual net's
    per-layer factor (a log-linear fit over the blocks' convs, one intercept
    per stage: its Layout's `fit`) with its 95% CI, and the healthy share of
    each; the verdict compares the plain net's factor at the deepest depth
    with sqrt(pi/(pi-1))."""
    mine = only_model(frames, family)
    cells = _scale_one(mine["cells"])
    if cells.empty:
        return None
    cells = cells.sort_values(["dtype", "device", "depth", "shortcut"], kind="stable")
    blocks = mine.get("blocks")
    blocks = _scale_one(blocks) if blocks is not None else None
    rows = []
    for r in cells.to_dict("records"):
        n, factor, low, high = _log(r, "factor")
        row = {"depth": int(r["depth"]), "shortcut": bool(r["shortcut"]), "dtype": r["dtype"],
               "device": r["device"], "seeds": n, "factor": factor, "ci_low": low,
               "ci_high": high, "predicted": BN_RELU_FACTOR if not r["shortcut"] else math.nan,
               "first_over_last": (_first_over_last(blocks, r, law["last"])
                                   if blocks is not None else math.nan),
               **{f"share_{STATE_KEYS[s]}": _share(r, s) for s in SHOWN_STATES}}
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
                       missing=f"add false to {families.config_key(family, 'shortcut')} "
                               "in the config",
                       families=(family,))
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
              + (f"; the residual net's grows x{twin['factor']:.3g} per layer" if twin else "")
              + f". Healthy at {deepest['depth']} layers: {deepest['share_healthy']:.0%} of the "
              f"plain nets"
              + (f", {twin['share_healthy']:.0%} of the residual nets" if twin else ""))
    measured = "; ".join(
        f"{r['depth']} layers: plain x{r['factor']:.3g} per layer (95% CI {r['ci_low']:.3g}-"
        f"{r['ci_high']:.3g}), first conv {r['first_over_last']:.3g} x its last, "
        f"{r['share_healthy']:.0%} healthy"
        + (f"; residual x{residual[r['depth']]['factor']:.3g}, first conv "
           f"{residual[r['depth']]['first_over_last']:.3g} x its last, "
           f"{residual[r['depth']]['share_healthy']:.0%} healthy" if r["depth"] in residual
           else "")
        for r in plain)
    return Finding("batchnorm", verdict, detail=detail, measured=measured, sweep="main",
                   families=(family,),
                   table=_table(rows, ["depth", "shortcut", "dtype", "device", "seeds",
                                       "factor", "ci_low", "ci_high", "predicted", "verdict",
                                       "first_over_last",
                                       *(f"share_{STATE_KEYS[s]}" for s in SHOWN_STATES)]))


# ---------------------------------------------------------------- layer norm placement

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


def _scale_one(frame):
    """The cells of the network as its family builds it, without and with
    x = skip + branch (shortcut_scales and branch_scales other than 1 are
    other networks: the generic switch's)."""
    if "shortcut_scale" in frame:
        frame = frame[~frame["shortcut"].astype(bool)
                      | (frame["shortcut_scale"].astype(float) == arms.BOOK_SCALE)]
    if "branch_scale" in frame:
        frame = frame[frame["branch_scale"].astype(str) == arms.BOOK_BRANCH]
    return frame


def xiong_rows(frames, family, law=None):
    """Per norm placement and number of blocks L (with shortcuts) of one
    family that declares Xiong's law (law: {"param": a regular expression
    matching each block's W2, "placement": its LayerNorms' placement, or
    none where its `norm` axis gives it}): the L2 norm of the last block's
    W2 gradient (geometric mean over seeds, 95% CI, its log10 moments) and
    the last block's stream over the embeddings' (NaN where the family does
    not record its stream)."""
    law = law or families.spec(family).laws["xiong"]
    mine = only_model(frames, family)
    layers, cells = mine["layers"], mine["cells"]
    if cells.empty:
        return []
    layers = _scale_one(layers[layers["shortcut"].astype(bool)])
    cells = _scale_one(cells[cells["shortcut"].astype(bool)])
    stream = {(r["norm"], r["dtype"], r["device"], int(r["depth"])): _log(r, "stream_max")[1]
              for r in cells.to_dict("records")}
    pattern = re.compile(law["param"])
    last = {}  # per group, its last block's W2: the matching row of the largest layer
    for r in layers.to_dict("records"):
        placement = law.get("placement") or r["norm"]
        if placement not in XIONG_EXPONENTS or not pattern.fullmatch(str(r["param"])):
            continue
        key = (placement, r["dtype"], r["device"], int(r["depth"]))
        if key not in last or int(r["layer"]) > int(last[key]["layer"]):
            last[key] = r
    rows = []
    for (placement, dtype, device, depth), r in last.items():
        n, centre, low, high, _ = intervals.log10_moments_interval(
            r["grad_l2_n_pos"], r["grad_l2_log10_mean"], r["grad_l2_log10_m2"])
        rows.append({"family": family, "norm": placement, "dtype": dtype, "device": device,
                     "blocks": depth, "seeds": n, "grad_l2": centre, "ci_low": low,
                     "ci_high": high, "n": n, "log10_mean": r["grad_l2_log10_mean"],
                     "log10_m2": r["grad_l2_log10_m2"],
                     "stream_over_embeddings": stream.get((r["norm"], dtype, device, depth),
                                                          math.nan)})
    rows.sort(key=lambda r: (r["dtype"], r["device"], r["norm"], r["blocks"]))
    return rows


def xiong_fit(rows, norm, regime):
    """The exponent of L fitted over the regime's rows (one family, one
    placement), with its 95% CI, against Xiong et al.'s for `norm`."""
    predicted = XIONG_EXPONENTS[norm]
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
    return {"family": rows[0]["family"] if rows else "", "norm": norm, "predicted": predicted,
            "exponent": slope, "ci_low": low, "ci_high": high, "cells": cells,
            "regime": where, "regime_blocks": blocks, "verdict": str(verdict),
            "outcome": verdict, "excludes_other": excludes}


def _joint_verdict(fits):
    verdicts = [f["outcome"] for f in fits]
    return (Verdict.AGREES if all(v == Verdict.AGREES for v in verdicts) else
            Verdict.DIFFERS if all(v == Verdict.DIFFERS for v in verdicts) else
            Verdict.CLOSE if all(v in (Verdict.AGREES, Verdict.CLOSE) for v in verdicts)
            else Verdict.PARTLY)


def xiong_finding(frames, family, law=None):
    """The exponent of L in the last block's W2 gradient norm of a family
    whose norm placement is an axis (its `norm`), fitted per placement
    where the theorem's regime holds (post-LN: every L; pre-LN: where the
    blocks outweigh the embeddings in the stream), with its 95% CI, against
    Xiong et al.'s 0 and -1/2."""
    rows = xiong_rows(frames, family, law)
    if not rows:
        return None
    setting = reference_setting(rows)
    for r in rows:
        r["in_regime"] = False
    fits, notes = [], []
    for norm in XIONG_EXPONENTS:
        mine = [r for r in rows if (r["dtype"], r["device"]) == setting and r["norm"] == norm]
        if not mine:
            continue
        regime = (mine if norm == "post_layernorm" else
                  [r for r in mine if r["stream_over_embeddings"] >= REGIME_STREAM])
        for r in mine:
            r["in_regime"] = r in regime
        fit = xiong_fit(mine, norm, regime)
        fits.append(fit)
        if norm == "pre_layernorm":
            notes.append(f"pre-LN's regime (the stream's RMS at the last block at least "
                         f"sqrt 2 x the embeddings': the blocks outweigh them): {fit['regime']}")
    if not fits:
        return None
    missing = [f for f in fits if len(f["regime_blocks"]) < 2]
    if missing:
        spec = families.spec(family)
        return Finding("xiong", Verdict.NOT_MEASURED, measured="; ".join(
            f"{f['norm']}: {f['regime']} in the theorem's regime" for f in fits),
            missing=f"{spec.section}.{spec.depths_key} up to 64 or more (pre-LN's regime "
                    "starts where the blocks outweigh the embeddings in the stream, ~32 blocks "
                    "at PyTorch's default init)", families=(family,),
            table=_table(rows, ["norm", "blocks", "seeds", "grad_l2", "ci_low", "ci_high",
                                "stream_over_embeddings"]))
    measured = "; ".join(_fit_words(f, f["norm"])[0] for f in fits)
    detail = "; ".join(_fit_words(f, f["norm"])[1] for f in fits)
    return Finding("xiong", _joint_verdict(fits), detail=detail + ". " + "; ".join(notes),
                   measured=measured, sweep="main", families=(family,),
                   table=_table(fits, ["norm", "predicted", "exponent", "ci_low", "ci_high",
                                       "cells", "regime", "verdict"]),
                   tables={"points": _table(rows, ["norm", "blocks", "seeds", "grad_l2",
                                                   "ci_low", "ci_high",
                                                   "stream_over_embeddings", "in_regime"])})


def _fit_words(fit, who):
    """One exponent fit's words, (measured, verdict), `who` naming it: the
    norm placement of a family whose `norm` axis places them, or a family
    and its placement."""
    measured = (f"{who}: exponent {fit['exponent']:.3g} (95% CI {fit['ci_low']:.3g} to "
                f"{fit['ci_high']:.3g}) over {fit['regime']}, {fit['cells']} cells")
    detail = (f"{who} {fit['verdict']} with {fit['predicted']:g}"
              + (" and excludes the other placement's" if fit["excludes_other"] else
                 ", but its CI also holds the other placement's"))
    return measured, detail


def xiong_families_finding(frames, declared):
    """Xiong et al.'s exponents on the families whose config places their
    LayerNorms (`laws: {xiong: {param, placement}}`: transformers' gpt2,
    pre-LN, and BERT, post-LN), one fit per family over every L swept
    (the pre-LN regime is checked where the family records its stream, as
    a shipped family may; a library model's is not recorded)."""
    rows, fits = [], []
    for family, law in declared.items():
        mine = xiong_rows(frames, family, law)
        if not mine:
            continue
        setting = reference_setting(mine)
        main = [r for r in mine if (r["dtype"], r["device"]) == setting]
        recorded = all(math.isfinite(r["stream_over_embeddings"]) for r in main)
        regime = (main if law["placement"] == "post_layernorm" or not recorded else
                  [r for r in main if r["stream_over_embeddings"] >= REGIME_STREAM])
        for r in mine:
            r["in_regime"] = r in regime
        rows += mine
        fits.append({**xiong_fit(main, law["placement"], regime), "family": family,
                     "stream": recorded})
    if not fits:
        return None
    names = tuple(f["family"] for f in fits)
    points = _table(rows, ["family", "norm", "blocks", "seeds", "grad_l2", "ci_low", "ci_high",
                           "in_regime"])
    missing = [f for f in fits if len(f["regime_blocks"]) < 2]
    if missing:
        return Finding("xiong_families", Verdict.NOT_MEASURED, families=names,
                       measured="; ".join(f"{f['family']} ({f['norm']}): {f['regime']}"
                                          for f in fits),
                       missing=" and ".join(f"two or more depths to families.{f['family']}.depths"
                                            for f in missing),
                       table=points)
    measured = "; ".join(_fit_words(f, f"{f['family']} ({f['norm']})")[0] for f in fits)
    detail = "; ".join(
        _fit_words(f, f"{f['family']} ({f['norm']})")[1]
        + ("" if f["stream"] or f["norm"] == "post_layernorm" else
           " (fitted over every L: the stream is not recorded, so pre-LN's regime is not "
           "checked)") for f in fits)
    return Finding("xiong_families", _joint_verdict(fits), detail=detail, measured=measured,
                   sweep="main", families=names,
                   table=_table(fits, ["family", "norm", "predicted", "exponent", "ci_low",
                                       "ci_high", "cells", "regime", "verdict"]),
                   tables={"points": points})


# ---------------------------------------------------------------- branch scale

def _grows(fit):
    """Growth with depth: the exponent's 95% CI lies above 0."""
    return math.isfinite(fit["ci_low"]) and fit["ci_low"] > 0


def branch_scale_rows(frames, family):
    """Per branch scale (1, 1/sqrt(depth)) and depth, of one family's cells
    with shortcuts at the reference setting: the healthy share, the first
    block's gradient and that gradient over alpha (what reaches the first
    block's branch: its parameters' gradient carries alpha itself), the
    first block's over the last's (alpha cancels), each with its 95% CI,
    and the log10 moments of the gradient over alpha for the fit."""
    cells = only_model(frames, family)["cells"]
    if cells.empty:
        return [], {}
    setting = reference_setting(cells.to_dict("records"))
    cells = cells[(cells["dtype"] == setting[0]) & (cells["device"] == setting[1])]
    with_shortcut = cells["shortcut"].astype(bool)
    plain = {int(r["depth"]): _share(r, "healthy")
             for r in cells[~with_shortcut].to_dict("records")}
    rows = []
    for r in cells[with_shortcut & (cells["shortcut_scale"].astype(float) == 1)].to_dict(
            "records"):
        label = branch_label(r["branch_scale"])
        if label not in ("1", BRANCH_RULE):
            continue
        depth = int(r["depth"])
        alpha = branch_value(label, depth)
        n, first, low, high = _log(r, "first_grad")
        _, spread, spread_low, spread_high = _log(r, "attenuation")
        rows.append({"family": family, "branch_scale": label, "depth": depth, "alpha": alpha,
                     "seeds": n, "first_grad": first, "first_over_alpha": first / alpha,
                     "ci_low": low / alpha, "ci_high": high / alpha,
                     "first_over_last": spread, "spread_ci_low": spread_low,
                     "spread_ci_high": spread_high,
                     **{f"share_{STATE_KEYS[s]}": _share(r, s) for s in SHOWN_STATES},
                     "n": r["log10_first_grad_n"],
                     "log10_mean": r["log10_first_grad_mean"] - math.log10(alpha),
                     "log10_m2": r["log10_first_grad_m2"]})
    rows.sort(key=lambda r: (r["branch_scale"] != "1", r["depth"]))
    return rows, plain


def _growth_fit(rows):
    """The exponent of depth in the first block's gradient over alpha, with
    its 95% CI, pooled over every cell (as Xiong's fit)."""
    slope, se, cells = pooled_fit([math.log10(r["depth"]) for r in rows],
                                  [r["n"] for r in rows], [r["log10_mean"] for r in rows],
                                  [r["log10_m2"] for r in rows])
    half = intervals.t975(cells - 2) * se if cells > 2 and math.isfinite(se) else math.nan
    return {"exponent": slope, "ci_low": slope - half, "ci_high": slope + half,
            "cells": cells}


def branch_scale_families_finding(frames, declared):
    """The branch scale fix on the families that declare themselves
    unnormalised residual networks (`laws: {branch_scale: true}`: gpt2
    without its LayerNorms): alpha = 1 against alpha = 1/sqrt(depth).  The
    claim holds where alpha = 1's first-block gradient (over alpha) grows
    with depth (the exponent's CI above 0) and alpha = 1/sqrt(depth)'s does
    not; confirmed if both, partly if one."""
    rows, fits, plains = [], [], {}
    for family in declared:
        mine, plain = branch_scale_rows(frames, family)
        if not mine:
            continue
        rows += mine
        plains[family] = plain
        for label in ("1", BRANCH_RULE):
            these = [r for r in mine if r["branch_scale"] == label]
            if these:
                fits.append({"family": family, "branch_scale": label,
                             "depths": f"{these[0]['depth']}-{these[-1]['depth']}",
                             **_growth_fit(these), "deepest": these[-1]})
    if not fits:
        return None
    names = tuple(dict.fromkeys(f["family"] for f in fits))
    columns = ["family", "branch_scale", "depth", "alpha", "seeds", "first_grad",
               "first_over_alpha", "ci_low", "ci_high", "first_over_last", "spread_ci_low",
               "spread_ci_high", *(f"share_{STATE_KEYS[s]}" for s in SHOWN_STATES)]
    unmeasured = [f for f in fits if not math.isfinite(f["ci_low"])]
    labels = {(f["family"], f["branch_scale"]) for f in fits}
    lacking = [n for n in names if len({lab for fam, lab in labels if fam == n}) < 2]
    if unmeasured or lacking:
        return Finding("branch_scale_families", Verdict.NOT_MEASURED, families=names,
                       measured="; ".join(f"{f['family']}, alpha {f['branch_scale']}: depths "
                                          f"{f['depths']}, {f['cells']} cells" for f in fits),
                       missing=" and ".join(
                           f"two or more depths and both 1 and \"{BRANCH_RULE}\" to "
                           f"families.{n}.branch_scales" for n in names),
                       table=_table(rows, columns))
    unit = [f for f in fits if f["branch_scale"] == "1"]
    scaled = [f for f in fits if f["branch_scale"] == BRANCH_RULE]
    fails = all(_grows(f) for f in unit)
    holds = not any(_grows(f) for f in scaled)
    word = (Verdict.CONFIRMED if fails and holds else Verdict.PARTLY if fails or holds
            else Verdict.NOT_CONFIRMED)

    def fit_text(f):
        d = f["deepest"]
        return (f"{f['family']}, alpha {f['branch_scale']}: the first block's gradient over "
                f"alpha scales with depth as depth^{f['exponent']:.3g} (95% CI "
                f"{f['ci_low']:.3g} to {f['ci_high']:.3g}, depths {f['depths']}, "
                f"{f['cells']} cells); at depth {d['depth']} it is {d['first_over_alpha']:.3g} "
                f"(the gradient itself {d['first_grad']:.3g}), the first block's "
                f"{d['first_over_last']:.4g} x the last's, {d['share_healthy']:.0%} healthy")

    def plain_text(family):
        plain = plains.get(family, {})
        if not plain:
            return ""
        deepest = max(plain)
        return (f"; without shortcuts {plain[deepest]:.0%} of {family}'s cells are healthy at "
                f"depth {deepest}")

    measured = "; ".join(fit_text(f) for f in fits) + "".join(plain_text(n) for n in names)
    detail = ("alpha = 1 " + ("grows with depth" if fails else
                              "does not grow with depth (its exponent's CI does not lie above "
                              "0): this network's residual branches do not grow what flows "
                              "back at its init, and there is nothing for the scale to fix")
              + "; alpha = 1/sqrt(depth) " + ("does not" if holds else "grows too")
              + "; the first block's gradient with alpha = 1/sqrt(depth) is "
              + ", ".join(f"x{f['deepest']['first_grad'] / u['deepest']['first_grad']:.3g} "
                          f"that with alpha = 1 at depth {f['deepest']['depth']} ({f['family']}; "
                          f"alpha = {f['deepest']['alpha']:.3g})"
                          for f in scaled for u in unit if u["family"] == f["family"]
                          and u["deepest"]["depth"] == f["deepest"]["depth"]))
    return Finding("branch_scale_families", word, detail=detail, measured=measured,
                   sweep="main", families=names,
                   table=_table(fits, ["family", "branch_scale", "depths", "exponent",
                                       "ci_low", "ci_high", "cells"]),
                   tables={"points": _table(rows, columns)})


def family_findings(frames, declared=None):
    """The findings of the families that ran (none for a family that did
    not).  declared: {family: {law: what it needs}} (core/families/'s
    declared_laws of the config; default: the shipped families')."""
    if frames is None or "cells" not in frames:
        return []
    if declared is None:
        declared = {name: spec.laws for name, spec in families.SPECS.items() if spec.laws}
    found = [batchnorm_finding(frames, name, laws["batchnorm"])
             for name, laws in declared.items() if "batchnorm" in laws]
    # A family whose norm placement is an axis has a finding of its own;
    # those that give theirs are judged together.
    found += [xiong_finding(frames, name, laws["xiong"]) for name, laws in declared.items()
              if "xiong" in laws and not laws["xiong"].get("placement")]
    found.append(xiong_families_finding(frames, {
        name: laws["xiong"] for name, laws in declared.items()
        if "xiong" in laws and laws["xiong"].get("placement")}))
    found.append(branch_scale_families_finding(frames, [
        name for name, laws in declared.items() if laws.get("branch_scale")]))
    return [f for f in found if f is not None]
