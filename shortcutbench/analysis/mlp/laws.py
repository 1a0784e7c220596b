"""What the sweep shows of the book's MLP: the laws behind the book's
printout, measured (its spec's `findings`; analysis/laws.py puts every
family's findings together).

Each finding (analysis/findings.py's Finding) is a claim from the literature
with its sources (analysis/claims.yaml), our measured number with a 95% CI
over seeds, the mean-field prediction where there is one, and a verdict.  A
finding looks for the sweep (main or study) that varies what it needs
(inits, shortcut scales, norms, widths), so studies can be named freely;
where no sweep has it, the finding says what to add to the config.

The laws read partial results, never the records: per sweep, the merged
results/{prefix}partials.json (analysis/partials_frame.read_partials: frames
`cells`, `layers`, `pairs`), whose groups (records.CELL_COLUMNS minus seed)
carry state counts and the moments (n, mean, m2) of each per-cell value of
core/cell_stats.py, computed inside the measuring jobs.  A geometric mean and
its 95% CI come from a group's log10 moments (intervals.log10_moments_interval);
groups pooled across axes combine their moments (intervals.pool_moments).
Memory and time do not grow with the number of seeds.

Two checks of the record-reading version are gone, because an equality of
records bit for bit does not decompose into moments: lambda = 0 equals the
plain network and lambda = 1 the main sweep's shortcut.  Both are tested on
the measurement itself (tests/test_model.py,
test_lambda_zero_is_no_shortcut_and_lambda_one_is_the_books_shortcut).

pandas and numpy only (no scipy.stats: ~0.4 s of import, for one regression);
the predictions come from shortcutbench.analysis.theory.
"""

import math

import numpy as np

from shortcutbench.analysis import intervals, theory
from shortcutbench.analysis.findings import (
    CLOSE,
    Finding,
    Verdict,
    compare,
    format_gap,
    gap,
    not_measured,
    summarise,
    verdict_text,
)
from shortcutbench.analysis.partials_frame import only_model
from shortcutbench.analysis.variants import plain
from shortcutbench.core import states
from shortcutbench.core.cell_stats import MID_LAYERS
from shortcutbench.core.families import layout
from shortcutbench.core.families.mlp import NAME
from shortcutbench.core.partials import GROUP
from shortcutbench.core.records import CELL_COLUMNS, branch_label

CONFIG_COLUMNS = [c for c in CELL_COLUMNS if c not in ("seed", "depth")]


def log_interval(values):
    """Geometric mean and 95% t-interval of the positive finite values:
    (n, gmean, low, high); the others (0, inf, nan) are left out."""
    values = np.asarray(values, dtype=float)
    return intervals.log10_interval(values[intervals.usable(values)])[:4]


MLP_STATES = layout(NAME).states  # never zero-branch


def group_log(row, value):
    """A group's geometric mean of a cell_stats.LOG_VALUES value and its 95%
    CI, from the row's log10 moments: (n, gmean, low, high)."""
    return intervals.log10_moments_interval(
        row[f"log10_{value}_n"], row[f"log10_{value}_mean"], row[f"log10_{value}_m2"])[:4]


def pooled_log(frame, value):
    """group_log over the union of the frame's groups: (n, gmean, low, high)."""
    n, mean, m2 = intervals.pool_moments(frame[f"log10_{value}_n"], frame[f"log10_{value}_mean"],
                                         frame[f"log10_{value}_m2"])
    return intervals.log10_moments_interval(n, mean, m2)[:4]


def group_plain(row, value):
    """A group's mean of a cell_stats.PLAIN_VALUES value and its 95% CI:
    (n, mean, low, high)."""
    n, mean, _, low, high = intervals.moments_interval(
        row[f"{value}_n"], row[f"{value}_mean"], row[f"{value}_m2"])
    return n, mean, low, high


def _labelled(frame):
    """branch_scale as labels ("1", "0.1", "1/sqrt(depth)"): a frame read
    without them, or from before the axis existed, gets them."""
    if frame is None:
        return None
    if "branch_scale" not in frame:
        return frame.assign(branch_scale="1")
    return frame.assign(branch_scale=frame["branch_scale"].map(branch_label))


def layer_lookup(layers):
    """rows(group, layer): the layers frame's rows of a cells frame row's
    group at one layer, from one index of the frame (not a scan per call)."""
    index = layers.groupby(GROUP + ["layer"], sort=False).indices

    def rows(group, layer):
        key = (*(group[c] for c in GROUP), layer)
        return layers.iloc[index.get(key, [])]
    return rows


def predicted_factor(row, statistic="abs"):
    """Mean field's per-layer factor for a cell's configuration: of the
    weight gradient (statistic "abs") or of the bias gradient ("bias")."""
    if row["depth"] < 3:
        return math.nan
    value = theory.predicted_layer_factor(
        int(row["depth"]), int(row["width"]), row["activation"], bool(row["shortcut"]),
        float(row["shortcut_scale"]), row["init"], row["norm"], statistic=statistic,
        branch_scale=branch_label(row.get("branch_scale", "1")))
    return math.nan if value is None else value


# The known causes of a gap between a measured factor and mean field's.
FINITE_WIDTH = "finite-width bias of log-averages, Hanin 2018"
ALIGNMENT = ("mean field assumes the gradient independent of the stream; measured, it is "
             "aligned with it (see the shortcut finding)")


def known_reason(row, gap_value):
    """The known cause of a per-layer factor's gap from mean field, or None.

    Without a shortcut, the geometric mean over seeds (an average of logs)
    falls below the mean-field factor (a mean square) at finite width, by a
    variance that grows like depth / width (Hanin 2018): a negative gap.
    With a shortcut and an activation of non-zero mean (GELU, sigmoid), the
    branches build a shared offset in the stream and the gradient aligns
    with it, which gradient independence leaves out: the measured factor
    lies above the prediction, a positive gap."""
    shortcut = bool(row["shortcut"]) and float(row["shortcut_scale"]) != 0
    if not shortcut and gap_value < 0:
        return FINITE_WIDTH
    if shortcut and gap_value > 0 and row["activation"] in ("gelu_tanh", "gelu", "sigmoid"):
        return ALIGNMENT
    return None


def deepest_groups(cells):
    """The groups of the cells frame at each configuration's deepest swept
    depth >= 3 (where a factor can be fitted), sorted by configuration."""
    deep = cells[cells["depth"] >= 3]
    if deep.empty:
        return deep
    deep = deep[deep["depth"] == deep.groupby(CONFIG_COLUMNS)["depth"].transform("max")]
    if deep.duplicated(GROUP).any():
        raise ValueError("the cells frame has a group twice: merge the partial results first")
    return deep.sort_values(CONFIG_COLUMNS + ["depth"], kind="stable")


def factor_rows(cells, by, column="factor", reason=known_reason):
    """Per configuration at its deepest swept depth: measured factor over
    seeds (geometric mean, 95% CI, from the group's log10 moments; `seeds`
    counts those with a factor), predicted factor, verdict (findings.compare
    as `outcome`, and as `verdict` the words with `reason(row, gap)`'s known
    cause of a gap).  Each row keeps its group's frame row as `group` (not a
    table column)."""
    rows = []
    for _, group in deepest_groups(cells).iterrows():
        n, gmean, low, high = group_log(group, column)
        predicted = (predicted_factor(group) if column == "factor" else
                     predicted_factor(group, "bias") if column == "bias_factor" else math.nan)
        why = (reason(group, gap(gmean, predicted))
               if reason and math.isfinite(predicted) and math.isfinite(gmean) else None)
        outcome = compare(predicted, low, high, gmean)
        rows.append({**{c: plain(group[c]) for c in by + ["depth"]},
                     "seeds": n, "measured": gmean, "ci_low": low, "ci_high": high,
                     "predicted": predicted, "outcome": outcome,
                     "verdict": verdict_text(outcome, predicted, gmean, why), "group": group})
    return rows


def _table(rows, columns):
    return {"columns": columns, "rows": [[plain(r[c]) for c in columns] for r in rows]}


def _varying(partials, column, at_least=2):
    """The first sweep (main first) in which `column` takes >= at_least
    values: its name and its partial results ({"cells": ..., "layers": ...})."""
    for name, frames in partials.items():
        if frames["cells"][column].nunique() >= at_least:
            return name, frames
    return None, None


def _summarise(rows):
    """One verdict for many factor rows' (findings.summarise)."""
    return summarise([r["outcome"] for r in rows])


def _row_verdicts(rows, label):
    """'width 32: close (\u22122.2%; ...), width 64: agrees' -- every row's verdict."""
    return ", ".join(f"{label(r)}: {r['verdict']}" for r in rows)


FACTOR_COLUMNS = ["depth", "seeds", "measured", "ci_low", "ci_high", "predicted", "verdict"]


def attenuation_finding(partials):
    rows = factor_rows(partials["main"]["cells"], ["width", "activation", "shortcut"])
    plain = [r for r in rows if not r["shortcut"]]
    wide = [r for r in plain if r["width"] >= 16]
    narrow = [r for r in plain if r["width"] < 16]
    # The claim is mean field's, which holds for wide layers: they decide.
    return Finding("attenuation", _summarise(wide or narrow),
                   detail=_attenuation_detail(wide, narrow), measured=_factor_sentence(plain),
                   sweep="main",
                   table=_table(rows, ["width", "activation", "shortcut"] + FACTOR_COLUMNS))


def _attenuation_detail(wide, narrow):
    """The summary word of the wide rows (where mean field should hold) and of
    the narrow ones (where it need not), each followed by its rows' verdicts:
    never 'agrees' while a row's prediction lies outside its CI."""
    def width(r):
        return f"width {r['width']}"
    parts = [f"{_summarise(wide)} where mean field holds (width >= 16): "
             f"{_row_verdicts(wide, width)}" if wide else "no wide layers swept"]
    parts.append(f"{_summarise(narrow)} at width < 16, where it does not have to: "
                 f"{_row_verdicts(narrow, width)}" if narrow else "no narrow layers swept")
    return ". ".join(parts)


def _factor_sentence(rows):
    parts = [f"width {r['width']}: {r['measured']:.3g} per layer "
             f"(95% CI {r['ci_low']:.3g}-{r['ci_high']:.3g}; predicted {r['predicted']:.3g})"
             for r in rows if math.isfinite(r["measured"])]
    return "; ".join(parts) if parts else "no finite cells deep enough (depth >= 3)"


def init_finding(partials):
    name, frames = _varying(partials, "init")
    if frames is None:
        return not_measured("init", "a study with inits: [pytorch, xavier_uniform, "
                                    "kaiming_normal]")
    rows = factor_rows(frames["cells"], ["width", "init", "shortcut"])
    plain = [r for r in rows if not r["shortcut"]]
    order = sorted(plain, key=lambda r: (r["width"], _sigma_w2(r)))
    pairs = [_ordering(a, b) for a, b in zip(order, order[1:]) if a["width"] == b["width"]]
    against = any(against for _, against in pairs)
    detail = ("; ".join(words for words, _ in pairs) if pairs
              else "no two inits swept at one width without a shortcut")
    if against:
        detail += f"; each init on its own: {_summarise(plain)}"
    return Finding(
        "init", Verdict.DIFFERS if against else _summarise(plain), sweep=name, detail=detail,
        measured="; ".join(f"{r['init']} (width {r['width']}): {r['measured']:.3g} per layer"
                           f" (95% CI {r['ci_low']:.3g}-{r['ci_high']:.3g}; "
                           f"predicted {r['predicted']:.3g})" for r in plain),
        table=_table(rows, ["width", "init", "shortcut"] + FACTOR_COLUMNS))


def _sigma_w2(row):
    """sigma_w^2 of a factor row's init (its layers are square)."""
    return theory.weight_variance(row["init"], row["width"], row["width"])[0]


def _seeds(n):
    return f"{n} seed" if n == 1 else f"{n} seeds"


def _interval(row, name):
    """'95% CI 1.02e+05-3.07e+05, 30 seeds', or 'no 95% CI at 1 seed'."""
    low, high, n = row[f"{name}_ci_low"], row[f"{name}_ci_high"], row[f"{name}_seeds"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"no 95% CI at {_seeds(n)}"
    return f"95% CI {low:.3g}-{high:.3g}, {_seeds(n)}"


def _ordering(a, b):
    """Two inits' factor rows at one width, a with the smaller sigma_w^2: in
    words, how the factor goes from a to b, measured and predicted, and
    whether the measured way goes against the predicted one.  A measured
    order is only claimed where the two 95% CIs separate; the predicted one
    is read off mean field's numbers, which need not grow with sigma_w^2."""
    if a["ci_high"] < b["ci_low"]:  # False where either CI is NaN (one seed)
        measured = "grows"
    elif b["ci_high"] < a["ci_low"]:
        measured = "falls"
    else:
        measured = None
    if not (math.isfinite(a["predicted"]) and math.isfinite(b["predicted"])):
        predicted = None
    else:
        predicted = ("grows" if b["predicted"] > a["predicted"] else
                     "falls" if b["predicted"] < a["predicted"] else "stays")
    numbers = _apart(a["predicted"], b["predicted"])
    words = (f"{a['init']} to {b['init']} (width {a['width']}, sigma_w^2 {_sigma_w2(a):.3g} "
             f"to {_sigma_w2(b):.3g}): ")
    if measured is None:
        seeds = (f"{_seeds(a['seeds'])} each" if a["seeds"] == b["seeds"]
                 else f"{a['seeds']} and {_seeds(b['seeds'])}")
        cis = all(math.isfinite(r[k]) for r in (a, b) for k in ("ci_low", "ci_high"))
        words += (f"their 95% CIs overlap, indistinguishable at {seeds}" if cis else
                  f"no 95% CI at {seeds}, no order to claim")
        words += f", while the prediction {predicted} ({numbers})" if predicted else ""
    elif predicted is None:
        words += f"the factor {measured} (95% CIs apart), with no prediction"
    elif measured == predicted:
        words += f"the factor {measured} (95% CIs apart), as predicted ({numbers})"
    else:
        words += (f"the factor {measured} (95% CIs apart), against the prediction, which "
                  f"{predicted} ({numbers})")
    return words, measured is not None and predicted is not None and measured != predicted


def _apart(a, b):
    """'a to b' to 3 significant digits, or to as many more as tell them apart."""
    for digits in range(3, 7):
        if f"{a:.{digits}g}" != f"{b:.{digits}g}":
            break
    return f"{a:.{digits}g} to {b:.{digits}g}"


def _direction(low, high):
    """What a per-layer factor's 95% CI says: 'vanishes' (below 1),
    'explodes' (above 1) or 'flat' (1 inside)."""
    if math.isfinite(high) and high < 1:
        return "vanishes"
    if math.isfinite(low) and low > 1:
        return "explodes"
    return "flat"


def scale_finding(partials):
    name, frames = _varying(partials, "shortcut_scale", at_least=3)
    if frames is None:
        return not_measured("shortcut_scale", "a study with shortcut: [false, true] and "
                                              "shortcut_scales: [0, 0.5, 0.9, 1, 1.1]")
    cells = frames["cells"]
    cells = cells[cells["branch_scale"] == "1"]
    rows = factor_rows(cells, ["width", "shortcut", "shortcut_scale"])
    bias = factor_rows(cells, ["width", "shortcut", "shortcut_scale"], column="bias_factor",
                       reason=None)
    for r, b in zip(rows, bias):
        r["he_path"] = r["shortcut_scale"] if r["shortcut"] else 0.0
        r["bias_measured"], r["bias_ci_low"], r["bias_ci_high"] = (
            b["measured"], b["ci_low"], b["ci_high"])
        r["bias_predicted"], r["bias_verdict"] = b["predicted"], b["verdict"]
        r["direction"] = _direction(b["ci_low"], b["ci_high"])
        r["predicted_direction"] = ("vanishes" if b["predicted"] < 1 else "explodes"
                                    if b["predicted"] > 1 else "flat")
        group = r["group"]
        r["stream_growth"] = group_log(group, "stream_growth")[1]
        r["healthy_share"] = (float(group[states.STATE_COLUMNS["healthy"]] / group["n_cells"])
                              if group["n_cells"] else math.nan)
    with_shortcut = [r for r in rows if r["shortcut"]]
    # A prediction within CLOSE of 1 (lambda^2 + gamma E[phi'^2] ~ 1, e.g. lambda = 0.9)
    # is reported, not judged: the known alignment gap is of that size.
    judged = [r for r in with_shortcut if abs(r["bias_predicted"] - 1) > CLOSE]
    wrong = [r for r in judged if r["direction"] != r["predicted_direction"]]
    unit = [r for r in with_shortcut if r["shortcut_scale"] == 1]
    unit_grows = unit and all(r["direction"] != "vanishes" and r["stream_growth"] > 1 for r in unit)
    checks = ("(lambda = 0 is the plain network and lambda = 1 the book's shortcut bit for "
              "bit: tests/test_model.py)")
    if with_shortcut and not wrong and unit_grows:
        word = Verdict.CONFIRMED
    elif with_shortcut and (not wrong or unit_grows):
        word = Verdict.PARTLY
    else:
        word = Verdict.NOT_CONFIRMED
    return Finding(
        "shortcut_scale", word, sweep=name,
        measured="; ".join(
            f"lambda {r['shortcut_scale']:g}: dL/dx (bias gradient) {r['bias_measured']:.3g} "
            f"per layer (95% CI {r['bias_ci_low']:.3g}-{r['bias_ci_high']:.3g}; predicted "
            f"{r['bias_predicted']:.3g}), stream x{r['stream_growth']:.3g} per layer, "
            f"{r['healthy_share']:.0%} healthy at depth {r['depth']}"
            for r in with_shortcut) + ". " + checks,
        detail=(", ".join(f"lambda {r['shortcut_scale']:g} {r['direction']}"
                          for r in with_shortcut)
                + ("; at lambda = 1 the stream grows "
                   + ", ".join(f"x{r['stream_growth']:.3g}" for r in unit)
                   + " per layer" if unit else "")
                + ("; against the prediction: "
                   + ", ".join(f"lambda {r['shortcut_scale']:g}" for r in wrong)
                   if wrong else "")),
        table=_table(rows, ["width", "shortcut", "shortcut_scale", "he_path", "bias_measured",
                            "bias_ci_low", "bias_ci_high", "bias_predicted", "bias_verdict",
                            "direction", "stream_growth", "healthy_share"] + FACTOR_COLUMNS))


def shortcut_finding(partials):
    """The book's shortcut (lambda = alpha = 1) against mean field, and where
    mean field misses: the gradient's alignment with the stream."""
    main = partials["main"]["cells"]
    cells = main[main["shortcut"] & (main["shortcut_scale"] == 1) & (main["branch_scale"] == "1")]
    if cells.empty:
        return not_measured("shortcut", "shortcut: [true]")
    layer_rows = layer_lookup(partials["main"]["layers"])
    rows = factor_rows(cells, ["width", "activation"])
    for r in rows:
        group = r["group"]
        n, mean, low, high = group_plain(group, "cos_mid")
        r["cos_seeds"], r["cos_mid"], r["cos_ci_low"], r["cos_ci_high"] = n, mean, low, high
        r["cos_if_independent"] = 1 / math.sqrt(r["width"])
        last = r["depth"] - 1  # q_in of the last layer: the stream before it
        r["stream_rms_predicted"] = r["stream_offset_predicted"] = math.nan
        if group["norm"] == "none":
            mf = theory.mean_field(r["depth"], r["width"], r["activation"], True, 1.0,
                                   group["init"])
            r["stream_rms_predicted"] = math.sqrt(mf["q_in"][last])
            r["stream_offset_predicted"] = mf["m_in"][last] ** 2 / mf["q_in"][last]
        stream = layer_rows(group, last - 1)
        n, gmean, low, high = intervals.log10_moments_interval(*intervals.pool_moments(
            stream["output_rms_n_pos"], stream["output_rms_log10_mean"],
            stream["output_rms_log10_m2"]))[:4]
        r["stream_rms_seeds"], r["stream_rms_measured"] = n, gmean
        r["stream_rms_ci_low"], r["stream_rms_ci_high"] = low, high
        r["stream_outcome"] = compare(r["stream_rms_predicted"], low, high, gmean)
        r["stream_rms_verdict"] = verdict_text(r["stream_outcome"], r["stream_rms_predicted"],
                                               gmean)
    reach = [r for r in rows if r["depth"] > MID_LAYERS[0] and r["cos_seeds"]]
    misses = [r for r in rows if r["outcome"] != Verdict.AGREES]
    where = "; ".join(
        f"width {r['width']}, depth {r['depth']}: factor {r['measured']:.3g} measured, "
        f"{r['predicted']:.3g} predicted ({r['verdict']}); stream RMS before the last layer "
        f"{r['stream_rms_measured']:.3g} measured ({_interval(r, 'stream_rms')}), "
        f"{r['stream_rms_predicted']:.3g} predicted ({r['stream_rms_verdict']}); "
        + (f"cos(g, x) at layers {MID_LAYERS[0]}-{MID_LAYERS[1]} {r['cos_mid']:.2f} (95% CI "
           f"{r['cos_ci_low']:.2f}-{r['cos_ci_high']:.2f}, {r['cos_seeds']} seeds with a "
           f"non-zero output) against +-{r['cos_if_independent']:.2f} if independent"
           if any(r is q for q in reach) else "too shallow for the cosine at layers 10-30")
        for r in rows)
    measured = " ".join(filter(None, (where + ".", _forward_sentence(rows),
                                      _offset_sentence(rows), _backward_sentence(misses, reach))))
    return Finding(
        "shortcut", _summarise(rows), sweep="main", measured=measured,
        detail=(_row_verdicts(rows, lambda r: f"width {r['width']}")
                + ("; mean field's independence fails: cos(g, x) "
                   + ", ".join(f"{r['cos_mid']:.2f} at width {r['width']}" for r in reach)
                   if reach and misses else "")),
        table=_table(rows, ["width", "activation"] + FACTOR_COLUMNS
                     + ["cos_seeds", "cos_mid", "cos_ci_low", "cos_ci_high",
                        "cos_if_independent", "stream_rms_seeds", "stream_rms_measured",
                        "stream_rms_ci_low", "stream_rms_ci_high", "stream_rms_predicted",
                        "stream_rms_verdict", "stream_offset_predicted"]))


def _widths(rows):
    """'width 3', 'widths 3 and 32', 'widths 3, 8 and 32'."""
    widths = [str(r["width"]) for r in rows]
    if len(widths) == 1:
        return f"width {widths[0]}"
    return f"widths {', '.join(widths[:-1])} and {widths[-1]}"


def _forward_sentence(rows):
    """Where mean field's stream RMS before the last layer lies inside the
    measured 95% CI (compare's rule, as for every verdict) and where not, by
    how much."""
    matched = [r for r in rows if r["stream_outcome"] == Verdict.AGREES]
    missed = [r for r in rows if r["stream_outcome"] in (Verdict.CLOSE, Verdict.DIFFERS)]
    misses = ", ".join(f"width {r['width']} ("
                       f"{format_gap(gap(r['stream_rms_measured'], r['stream_rms_predicted']))}, "
                       f"{r['stream_outcome']})" for r in missed)
    start = "Forward, the stream's RMS before the last layer"
    if matched and missed:
        return (f"{start} matches mean field at {_widths(matched)} (the prediction inside the "
                f"measured 95% CI) but misses it at {misses}.")
    if matched:
        return (f"{start} matches mean field at {_widths(matched)} (the prediction inside the "
                f"measured 95% CI).")
    if missed:
        return f"{start} misses mean field at {misses}."
    return ""


def _offset_sentence(rows):
    """Mean field's shared offset of the stream: a prediction only, since
    the partial results hold the stream's RMS but not its mean."""
    offsets = {}
    for r in rows:
        if math.isfinite(r["stream_offset_predicted"]) and r["stream_offset_predicted"] > 0:
            offsets.setdefault(f"{r['stream_offset_predicted']:.2f}", []).append(r)
    if not offsets:
        return ""
    values = ", ".join(f"{value} at {_widths(same)}" for value, same in offsets.items())
    return (f"Mean field also predicts a shared offset in the stream from the activation's "
            f"non-zero mean (mean^2 / mean square {values}), which the sweep does not measure.")


def _backward_sentence(misses, reach):
    """Where the factor lies above mean field's and the gradient is aligned
    with the stream (cos(g, x)'s CI above 1/sqrt(width)): the cross term
    that gradient independence drops explains the gain."""
    aligned = [r for r in misses if r["measured"] > r["predicted"]
               and any(r is q for q in reach) and r["cos_ci_low"] > r["cos_if_independent"]]
    if not aligned:
        return ""
    return (f"Backward, at {_widths(aligned)} the gradient gains more per layer than predicted ("
            + ", ".join(format_gap(gap(r["measured"], r["predicted"])) for r in aligned)
            + ") and aligns with the stream (cos(g, x)'s 95% CI above 1/sqrt(width)), so the cross "
              "term 2 <g, W^T delta> that gradient independence sets to zero is positive.")


def branch_scale_finding(partials, band=states.DEFAULT_BAND):
    name, frames = _varying(partials, "branch_scale")
    if frames is None:
        return not_measured("branch_scale", "a study with shortcut: [true] and branch_scales: "
                                            "[1, 0.7071067811865476, \"1/sqrt(depth)\", 0.1]")
    cells = frames["cells"]
    cells = cells[cells["shortcut"]]
    rows = factor_rows(cells, ["width", "shortcut_scale", "branch_scale"])
    shares = []
    for (width, lam, alpha, depth), group in cells.groupby(
            ["width", "shortcut_scale", "branch_scale", "depth"], sort=True):
        n = int(group["n_cells"].sum())
        shares.append({"width": int(width), "shortcut_scale": float(lam), "branch_scale": alpha,
                       "depth": int(depth), "seeds": n,
                       **{f"share_{states.STATE_KEYS[s]}":
                          float(group[states.STATE_COLUMNS[s]].sum() / n) if n else math.nan
                          for s in MLP_STATES},
                       "stream_max": pooled_log(group, "stream_max")[1]})
    deepest = {}
    for r in shares:
        key = (r["width"], r["shortcut_scale"], r["branch_scale"])
        if key not in deepest or r["depth"] > deepest[key]["depth"]:
            deepest[key] = r
    unit = [r for k, r in deepest.items() if k[2] == "1"]
    scaled = [r for k, r in deepest.items() if k[2] == "1/sqrt(depth)"]
    fails = unit and all(r["share_exploded"] + r["share_dead"] > 0 for r in unit)
    holds = scaled and all(r["share_exploded"] + r["share_dead"] + r["share_non_finite"] == 0
                           and r["stream_max"] <= 10 ** band for r in scaled)
    word = (Verdict.CONFIRMED if fails and holds else Verdict.PARTLY if fails or holds
            else Verdict.NOT_CONFIRMED)
    def label(r):
        try:  # a number (1/sqrt(2) as 0.7071067811865476) to 3 digits
            return f"alpha {float(r['branch_scale']):.3g}"
        except ValueError:  # a rule: 1/sqrt(depth)
            return f"alpha {r['branch_scale']}"

    rule = "".join(f" ({r['share_healthy']:.0%} healthy at depth {r['depth']})" for r in scaled)
    return Finding(
        "branch_scale", word, sweep=name,
        measured="; ".join(
            f"{label(r)}, depth {r['depth']}: {r['share_healthy']:.0%} healthy, "
            f"{r['share_vanished']:.0%} vanished, {r['share_exploded']:.0%} exploded, "
            f"{r['share_dead']:.0%} dead; stream up to x{r['stream_max']:.3g} the "
            f"input's RMS" for r in deepest.values())
        + ". Per-layer factor: " + _row_verdicts(rows, label),
        detail=("at the deepest depth alpha = 1 "
                + ("explodes or dies" if fails else "does not explode")
                + ", alpha = 1/sqrt(depth) "
                + ("keeps the stream within the band" if holds else
                   "is not measured" if not scaled else "does not stay bounded")
                + rule + f"; mean field {_summarise(rows)} (" + _row_verdicts(rows, label) + ")"),
        table=_table(rows, ["width", "shortcut_scale", "branch_scale"] + FACTOR_COLUMNS),
        tables={"states": _table(shares, ["width", "shortcut_scale", "branch_scale", "depth",
                                          "seeds"]
                                 + [f"share_{states.STATE_KEYS[s]}" for s in MLP_STATES]
                                 + ["stream_max"])})


def norm_finding(partials):
    name, frames = _varying(partials, "norm")
    if frames is None:
        return not_measured("norm", "a study with norms: [none, pre_layernorm]")
    rows = factor_rows(frames["cells"], ["width", "norm", "shortcut"])
    for r in rows:
        r["first_layer_grad"] = group_log(r["group"], "first_grad")[1]
    pre = [r for r in rows if r["norm"] == "pre_layernorm" and r["shortcut"]]
    ok = pre and all(0.8 <= r["measured"] <= 1.25 for r in pre)
    return Finding(
        "norm", Verdict.CONFIRMED if ok else Verdict.NOT_CONFIRMED, sweep=name,
        detail=("with pre-LayerNorm and a shortcut the factor stays within 0.8-1.25" if ok
                else "with pre-LayerNorm and a shortcut the factor leaves 0.8-1.25"),
        measured="; ".join(f"{r['norm']}, shortcut {r['shortcut']}: {r['measured']:.3g} "
                           f"per layer (95% CI {r['ci_low']:.3g}-{r['ci_high']:.3g}), "
                           f"first layer {r['first_layer_grad']:.3g} at depth {r['depth']}"
                           for r in rows),
        table=_table(rows, ["width", "norm", "shortcut", "first_layer_grad"] + FACTOR_COLUMNS))


def linear_fit(x, y):
    """Least squares y = intercept + slope x over n > 2 points: (slope,
    intercept, r, standard error of the slope), by scipy.stats.linregress's
    own formulas (same bits) without its import."""
    if np.amax(x) == np.amin(x):
        raise ValueError("Cannot calculate a linear regression if all x values are identical")
    ssxm, ssxym, _, ssym = np.cov(x, y, bias=1).flat
    if ssym == 0.0:  # y constant: no correlation to speak of
        r = np.nan if ssxym == 0 else 0.0
    else:
        r = min(max(ssxym / np.sqrt(ssxm * ssym), -1.0), 1.0)
    slope = ssxym / ssxm
    intercept = np.mean(y) - slope * np.mean(x)
    stderr = np.sqrt((1 - r ** 2) * ssym / ssxm / (len(x) - 2))
    return slope, intercept, r, stderr


def spread_finding(partials):
    name, frames = _varying(partials, "width", at_least=3)
    if frames is None:
        return not_measured("spread", "a study with widths: [3, 8, 32, 128]")
    layers = frames["layers"]
    first = layers[(layers["layer"] == 0) & ~layers["shortcut"].astype(bool)]
    rows = []
    for (depth, width), group in first.groupby(["depth", "width"], sort=True):
        n, _, m2 = intervals.pool_moments(group["grad_abs_mean_n_pos"],
                                          group["grad_abs_mean_log10_mean"],
                                          group["grad_abs_mean_log10_m2"])
        if n >= 3 and depth >= 2:
            rows.append({"depth": int(depth), "width": int(width), "seeds": n,
                         "sum_inv_width": (depth - 1) / width, "var_log10_grad": m2 / (n - 1)})
    if len(rows) < 3:
        return not_measured("spread", "a study with at least 3 depth/width pairs with 3+ seeds "
                                      "and shortcut: [false]")
    x = np.array([r["sum_inv_width"] for r in rows])
    y = np.array([r["var_log10_grad"] for r in rows])
    slope, intercept, r, stderr = linear_fit(x, y)
    half = intervals.t975(len(rows) - 2) * stderr
    r2 = r ** 2
    grows = slope - half > 0
    word = (Verdict.CONFIRMED if grows and r2 >= 0.7 else
            Verdict.PARTLY if grows else Verdict.NOT_CONFIRMED)
    return Finding(
        "spread", word, sweep=name,
        detail=("the variance grows linearly with sum 1/n" if word == Verdict.CONFIRMED else
                "it grows, but not linearly" if grows else "it does not grow with sum 1/n"),
        measured=(f"var(log10 grad of layer 0) = {intercept:.3g} + {slope:.3g} "
                  f"x sum 1/n (95% CI of the slope {slope - half:.3g}-"
                  f"{slope + half:.3g}), R^2 = {r2:.2f} over {len(rows)} depth/width "
                  f"pairs, no shortcut"),
        table=_table(rows, ["depth", "width", "seeds", "sum_inv_width", "var_log10_grad"]))


def training_finding(training):
    if training is None or training.empty:
        return not_measured("training", "a training section with enabled: true")
    losses = training[training["kind"] == "loss"]
    run = ["depth", "width", "seed", "shortcut", "activation", "norm"]
    last = losses[losses["index"] == losses.groupby(run)["index"].transform("max")]
    first = losses[losses["index"] == 0]
    # the runs whose gradient after training is exactly 0 in every layer: the
    # figure cannot draw them (a log axis), so the words say it
    ends = training[training["kind"] == "grad_end"]
    zero = (ends.assign(zero=ends["value"] == 0).groupby(run)["zero"].all()
            .groupby(["depth", "width", "activation", "norm", "shortcut"]).sum())
    rows = []
    for key, group in last.groupby(["depth", "width", "activation", "norm", "shortcut"], sort=True):
        depth, width, activation, norm, shortcut = key
        start = first[(first["depth"] == depth) & (first["width"] == width)
                      & (first["norm"] == norm) & (first["shortcut"] == shortcut)
                      & (first["activation"] == activation)]["value"]
        n, gmean, low, high = log_interval(group["value"])
        rows.append({"depth": int(depth), "width": int(width), "activation": activation,
                     "norm": norm, "shortcut": bool(shortcut), "runs": len(group),
                     "diverged": int((~np.isfinite(group["value"])).sum()),
                     "start_loss": log_interval(start)[1], "final_loss": gmean,
                     "ci_low": low, "ci_high": high, "zero_grad_end": int(zero.get(key, 0))})
    verdicts = []
    for r in rows:
        if not r["shortcut"]:
            continue
        twin = next((t for t in rows if not t["shortcut"] and all(
            t[k] == r[k] for k in ("depth", "width", "activation", "norm"))), None)
        if twin is None:
            r["verdict"] = "no plain twin"
            continue
        if r["ci_high"] < twin["ci_low"]:  # False where either is NaN
            r["verdict"] = "shortcut lower"
        elif r["ci_low"] > twin["ci_high"]:
            r["verdict"] = "shortcut higher"
        else:
            r["verdict"] = "no clear difference"
        zeros = "".join(f"; after training the gradient is exactly 0 in every layer in "
                        f"{_of(t)} {'with' if t['shortcut'] else 'without'} shortcut"
                        for t in (r, twin) if t["zero_grad_end"])
        verdicts.append((r["depth"], r["norm"], r["verdict"], r["final_loss"],
                         twin["final_loss"], zeros))
    for r in rows:
        r.setdefault("verdict", "")
    deepest = max(r["depth"] for r in rows)
    at_depth = [v for d, _, v, _, _, _ in verdicts if d == deepest]
    word = (Verdict.CONFIRMED if at_depth and all(v == "shortcut lower" for v in at_depth)
            else Verdict.PARTLY if "shortcut lower" in at_depth else Verdict.NOT_CONFIRMED)
    zeros = [f"{_of(r)} at depth {r['depth']}, norm {r['norm']}, "
             f"{'with' if r['shortcut'] else 'without'} shortcut"
             for r in rows if r["zero_grad_end"]]
    return Finding(
        "training", word, detail=f"at depth {deepest} (final loss, geometric mean over seeds)"
        + ("; after training the gradient is exactly 0 in every layer in " + "; ".join(zeros)
           if zeros else ""),
        measured="; ".join(f"depth {d}, norm {n}: final loss {ours:.3g} with shortcut, "
                           f"{theirs:.3g} without ({v}{z})"
                           for d, n, v, ours, theirs, z in verdicts),
        table=_table(rows, ["depth", "width", "activation", "norm", "shortcut", "runs",
                            "diverged", "zero_grad_end", "start_loss", "final_loss", "ci_low",
                            "ci_high", "verdict"]))


def _of(row):
    """'all 3 runs' or '2 of 3 runs': a training row's runs whose gradient
    after training is exactly 0 in every layer."""
    k, n = row["zero_grad_end"], row["runs"]
    return f"all {n} runs" if k == n > 1 else f"{k} of {n} run{'s' if n != 1 else ''}"


def findings(partials, training=None, band=states.DEFAULT_BAND) -> list[Finding]:
    """The book's MLP's laws (its spec's `findings`), where it ran.
    partials: {'main': the main sweep's partial results, study name: its},
    each {'cells': frame, 'layers': frame, ...} as read_partials gives them;
    the other families' cells are left out.  band: the config's healthy_band
    (the cells' states were classified with it in the measuring jobs; the
    branch_scale finding bounds the stream by it)."""
    partials = {name: {key: _labelled(frame) for key, frame in only_model(
        {k: frames[k] for k in ("cells", "layers")}, NAME).items()}
                for name, frames in partials.items()}
    if partials["main"]["cells"].empty:
        return []
    found = [attenuation_finding(partials), shortcut_finding(partials),
             init_finding(partials), scale_finding(partials),
             branch_scale_finding(partials, band), norm_finding(partials),
             spread_finding(partials), training_finding(training)]
    for finding in found:
        finding.families = (NAME,)
    return found
