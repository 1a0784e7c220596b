"""'What the sweep shows': each finding from small real measurements, read
the way the workflow reads them -- as partial results (per group moments and
state counts), never as the records.

The frames come from tests/partials_builder.py, a tiny builder in the
contract's columns, so that these tests do not depend on the partial
results' own module."""

import math

import numpy as np
import pandas as pd
import pytest
from partials_builder import build_partials, merge_partials, moments, usable

from shortcutbench.analysis import intervals
from shortcutbench.analysis.findings import (
    Verdict,
    compare,
    format_gap,
    summarise,
    verdict_text,
)
from shortcutbench.analysis.laws import check_laws, write_laws
from shortcutbench.analysis.mlp.laws import (
    FINITE_WIDTH,
    _attenuation_detail,
    init_finding,
    known_reason,
    linear_fit,
    log_interval,
    shortcut_finding,
    training_finding,
)
from shortcutbench.core import cell_stats
from shortcutbench.core.files import read_json
from shortcutbench.core.partials import GROUP
from shortcutbench.core.records import Cell
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.mlp.exact import measure_cell

# ----------------------------------------------------------------- the sweeps

def records(cells):
    configure_torch()
    return [r for cell in cells for r in measure_cell(cell)]


SWEEPS = {
    "main": [Cell(d, w, s, sc, 1.0 if sc else 0.0) for d in (3, 12) for w in (3, 64)
             for s in range(4) for sc in (False, True)],
    "scale": [Cell(12, 64, s, sc, lam if sc else 0.0) for s in range(4)
              for sc, lam in ((False, 0.0), (True, 0.0), (True, 0.5), (True, 1.0))],
    "init": [Cell(12, 64, s, False, 0.0, init=i) for s in range(4)
             for i in ("pytorch", "xavier_uniform", "kaiming_normal")],
    "norm": [Cell(12, 16, s, sc, 1.0 if sc else 0.0, norm=n) for s in range(4)
             for sc in (False, True) for n in ("none", "pre_layernorm")],
    "spread": [Cell(d, w, s, False, 0.0) for d in (2, 4, 8) for w in (3, 8, 32)
               for s in range(5)],
    "branch": [Cell(d, 32, s, True, 1.0, branch_scale=a) for d in (4, 40) for s in range(4)
               for a in ("1", "0.1", "1/sqrt(depth)")],
}


@pytest.fixture(scope="module")
def sweep_records():
    return {name: records(cells) for name, cells in SWEEPS.items()}


@pytest.fixture(scope="module")
def partials(sweep_records):
    return {name: build_partials(recs) for name, recs in sweep_records.items()}


@pytest.fixture(scope="module")
def laws(partials):
    return [finding.to_json() for finding in check_laws(partials)]


def verdict(predicted, low, high, measured, reason=None):
    """A factor row's verdict in words, as laws.factor_rows writes it."""
    return verdict_text(compare(predicted, low, high, measured), predicted, measured, reason)


def by_key(result):
    return {f["key"]: f for f in result}


def test_every_finding_has_claim_source_number_and_verdict(laws):
    result = by_key(laws)
    assert set(result) == {"attenuation", "shortcut", "init", "shortcut_scale", "branch_scale",
                           "norm", "spread", "training"}
    for key, finding in result.items():
        assert finding["claim"] and finding["sources"] and finding["verdict"], key
        assert finding["outcome"] == Verdict(finding["verdict"]).outcome
    assert result["training"]["verdict"] == "not measured"
    assert "training" in result["training"]["missing"]


def test_attenuation_agrees_with_mean_field_only_when_wide(laws):
    rows = by_key(laws)["attenuation"]["table"]
    cols = rows["columns"]
    plain = {r[cols.index("width")]: r for r in rows["rows"] if not r[cols.index("shortcut")]}
    assert plain[64][cols.index("verdict")] == "agrees"
    measured = plain[64][cols.index("measured")]
    assert 0.2 < measured < 0.4  # sqrt(chi_1) for tanh-GELU with sigma_w^2 = 1/3
    assert plain[64][cols.index("seeds")] == 4


def test_the_numbers_are_the_records_numbers(laws, sweep_records):
    """The geometric mean and CI from a group's log10 moments equal those
    computed from its cells' values directly."""
    rows = by_key(laws)["attenuation"]["table"]
    cols = rows["columns"]
    row = next(r for r in rows["rows"] if r[cols.index("width")] == 64
               and not r[cols.index("shortcut")])
    factors = [cell_stats.cell_values(measure_cell(Cell(12, 64, s, False, 0.0)))["factor"]
               for s in range(4)]
    n, gmean, low, high, _ = intervals.log10_interval(factors)
    got = [row[cols.index(c)] for c in ("seeds", "measured", "ci_low", "ci_high")]
    assert got == pytest.approx([n, gmean, low, high], rel=1e-12)


def test_the_lambda_checks_moved_to_the_model_tests(laws):
    finding = by_key(laws)["shortcut_scale"]
    assert "tests/test_model.py" in finding["measured"]
    assert "bit for bit" in finding["measured"]
    assert finding["verdict"] in ("confirmed", "partly")


def test_findings_find_their_sweep_by_what_varies(laws):
    result = by_key(laws)
    assert result["init"]["sweep"] == "init"
    assert result["norm"]["sweep"] == "norm"
    assert result["spread"]["sweep"] == "spread"
    assert result["shortcut_scale"]["sweep"] == "scale"


def test_a_missing_study_says_what_to_add(partials):
    result = by_key(f.to_json() for f in check_laws({"main": partials["main"]}))
    for key in ("init", "shortcut_scale", "branch_scale", "norm", "spread"):
        assert result[key]["verdict"] == "not measured"
        assert result[key]["missing"].startswith("add a study with")


def test_the_spread_is_the_variance_of_the_first_layers_log10(laws, sweep_records):
    table = by_key(laws)["spread"]["table"]
    cols = table["columns"]
    row = next(r for r in table["rows"] if r[cols.index("depth")] == 8
               and r[cols.index("width")] == 3)
    first = [r["grad_abs_mean"] for r in sweep_records["spread"]
             if r["layer"] == 0 and r["depth"] == 8 and r["width"] == 3]
    logs = np.log10(usable(first))
    assert row[cols.index("seeds")] == len(logs)
    assert row[cols.index("var_log10_grad")] == pytest.approx(np.var(logs, ddof=1), rel=1e-12)


def test_linear_fit_is_scipys_linregress_bit_for_bit():
    """The spread's regression, done without scipy.stats (its import alone
    costs the laws job ~0.4 s), gives linregress's numbers exactly."""
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.random(9)
    for y in (0.3 + 0.1 * x + rng.normal(0, 0.05, 9), rng.random(9), 2 * x + 1,
              np.full(9, 0.5)):
        fit = stats.linregress(x, y)
        ours = linear_fit(x, y)
        expected = (fit.slope, fit.intercept, fit.rvalue, fit.stderr)
        assert all(a == b or (math.isnan(a) and math.isnan(b))
                   for a, b in zip(ours, expected)), (ours, expected)


def equal_numbers(a, b, path="laws"):
    """Two findings structures equal: strings and ints exactly, floats to
    rtol 1e-12 (NaN equal to NaN)."""
    assert type(a) is type(b) or {type(a), type(b)} <= {int, float}, path
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            equal_numbers(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            equal_numbers(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        if math.isnan(a):
            assert math.isnan(b), path
        else:
            assert b == pytest.approx(a, rel=1e-12, abs=0), path
    else:
        assert a == b, path


def test_laws_from_two_chunks_equal_laws_from_one(sweep_records, laws):
    """Partial results merged over two chunks (the seeds split in two) give
    the same findings as one chunk: the same numbers to rtol 1e-12."""
    merged = {}
    for name, recs in sweep_records.items():
        seeds = sorted({r["seed"] for r in recs})
        low = set(seeds[: len(seeds) // 2])
        merged[name] = merge_partials(
            build_partials([r for r in recs if r["seed"] in low]),
            build_partials([r for r in recs if r["seed"] not in low]))
    equal_numbers(laws, [f.to_json() for f in check_laws(merged)])


def test_write_laws_reads_partials_and_training(tmp_path, partials):
    out = tmp_path / "laws.json"
    paths = {"main": "main.json", "norm": "norm.json"}
    result = write_laws(paths, None, out, read=lambda path: partials[path.split(".")[0]])
    assert len(read_json(out)) == len(result) == 8
    assert by_key(result)["norm"]["sweep"] == "norm"


def test_log_interval_and_verdict():
    n, gmean, low, high = log_interval([1.0, 4.0, math.nan, 0.0])
    assert (n, gmean) == (2, pytest.approx(2.0))
    assert verdict(2.1, low, high, gmean) == "agrees"
    assert verdict(1.0, 1.9, 2.1, 2.0) == "differs (+100%)"
    assert verdict(math.nan, 1, 2, 1.5) == "no prediction"


def test_moments_interval_is_the_t_interval():
    values = np.array([0.3, 1.2, -0.4, 2.5, 0.9])
    n, mean, m2 = moments(values)
    assert intervals.moments_interval(n, mean, m2) == pytest.approx(
        intervals.t_interval(values), rel=1e-12)
    assert intervals.log10_moments_interval(*moments(np.log10([1.0, 4.0])))[:4] == (
        pytest.approx(intervals.log10_interval([1.0, 4.0])[:4], rel=1e-12))
    assert intervals.moments_interval(0, math.nan, math.nan)[0] == 0
    one = intervals.moments_interval(1, 2.0, 0.0)
    assert one[:2] == (1, 2.0) and math.isnan(one[3])
    halves = [moments(values[:2]), moments(values[2:]), moments([])]
    assert intervals.pool_moments(*zip(*halves)) == pytest.approx(moments(values), rel=1e-12)


def twin_runs(final_without, final_with, grad_end=None):
    """Training rows of three seeds with and without shortcut at depth 8:
    losses 1 then `final` (jittered by seed); grad_end(shortcut, seed): the
    gradient profile after training, or None for no such rows."""
    rows = []
    for shortcut, final in ((False, final_without), (True, final_with)):
        for seed, jitter in enumerate((0.99, 1.0, 1.01)):
            base = dict(depth=8, width=4, seed=seed, shortcut=shortcut, activation="gelu_tanh",
                        norm="none", optimizer="adam", learning_rate=0.01, steps=1)
            rows += [{**base, "kind": "loss", "index": 0, "value": 1.0},
                     {**base, "kind": "loss", "index": 1, "value": final * jitter}]
            if grad_end:
                rows += [{**base, "kind": "grad_end", "index": i, "value": v}
                         for i, v in enumerate(grad_end(shortcut, seed))]
    return pd.DataFrame(rows)


def test_training_verdicts_compare_twins():
    finding = training_finding(twin_runs(0.5, 0.1)).to_json()
    assert finding["verdict"] == "confirmed" and finding["detail"].startswith("at depth 8")
    assert finding["measured"].startswith("depth 8, norm none: final loss 0.1 with shortcut, "
                                          "0.5 without (shortcut lower)")


def test_training_says_which_runs_end_with_a_gradient_of_exactly_0():
    # with shortcut every layer's gradient is 0 after training; without, one
    # run's first layer only, which is not every layer
    finding = training_finding(twin_runs(0.1, 0.5, lambda shortcut, seed: (
        [0.0, 0.0] if shortcut else [0.0 if seed == 0 else 1e-3, 1e-3]))).to_json()
    assert finding["measured"] == ("depth 8, norm none: final loss 0.5 with shortcut, 0.1 "
                                   "without (shortcut higher; after training the gradient is "
                                   "exactly 0 in every layer in all 3 runs with shortcut)")
    assert finding["detail"].endswith(
        "; after training the gradient is exactly 0 in every layer in all 3 runs at depth 8, "
        "norm none, with shortcut")
    table = finding["table"]
    zero = table["columns"].index("zero_grad_end")
    assert [r[zero] for r in table["rows"]] == [0, 3]


# Hand-made rows: (predicted, ci_low, ci_high, measured) -> verdict.
VERDICTS = [
    ((2.0, 1.9, 2.1, 2.0), "agrees"),
    ((1.9, 1.9, 2.1, 2.0), "agrees"),           # on the lower bound: inside
    ((2.1, 1.9, 2.1, 2.0), "agrees"),           # on the upper bound: inside
    ((0.2945, 0.2861, 0.2900, 0.2881), "close (\u22122.2%)"),  # the width-32 row
    ((0.872, 0.98, 1.01, 0.994), "differs (+14%)"),
    ((1.0, 1.05, 1.2, 1.1), "close (+10%)"),     # exactly 10%: still close
    ((1.0, 0.8, 0.95, 0.9), "close (\u221210%)"),
    ((1.0, 1.05, 1.2, 1.1001), "differs (+10%)"),
    ((1.0, math.nan, math.nan, 1.0), "close (+0.0%)"),  # no CI (one seed): never agrees
]


@pytest.mark.parametrize("row, expected", VERDICTS, ids=[v for _, v in VERDICTS])
def test_a_verdict_follows_its_interval(row, expected):
    predicted, low, high, measured = row
    assert verdict(predicted, low, high, measured) == expected
    inside = math.isfinite(low) and low <= predicted <= high
    assert (verdict(predicted, low, high, measured) == "agrees") == inside


def test_a_prediction_outside_the_ci_is_never_agrees():
    # Just outside either bound, however close the measurement is.
    for predicted in (0.5, 0.99, np.nextafter(0.999, 0), np.nextafter(1.001, 2), 1.01, 2.0):
        assert not verdict(float(predicted), 0.999, 1.001, 1.0).startswith("agrees")
    for predicted in (0.999, 1.0, 1.001):
        assert verdict(predicted, 0.999, 1.001, 1.0) == "agrees"


def test_a_verdict_carries_its_known_reason():
    assert verdict(0.2945, 0.2861, 0.2900, 0.2881, FINITE_WIDTH) == (
        f"close (\u22122.2%; {FINITE_WIDTH})")
    plain = {"shortcut": False, "shortcut_scale": 0.0, "activation": "gelu_tanh"}
    assert known_reason(plain, -0.02) == FINITE_WIDTH
    assert known_reason(plain, +0.02) is None  # the finite-width bias only lowers the factor
    shortcut = {"shortcut": True, "shortcut_scale": 1.0, "activation": "gelu_tanh"}
    assert "independent" in known_reason(shortcut, 0.14)
    assert known_reason({**shortcut, "activation": "tanh"}, 0.14) is None
    assert format_gap(-0.0217) == "\u22122.2%" and format_gap(0.14) == "+14%"


def test_a_summary_never_agrees_while_a_row_is_outside():
    rows = [{"width": 32, "outcome": Verdict.CLOSE,
             "verdict": verdict(0.2945, 0.2861, 0.2900, 0.2881, FINITE_WIDTH)},
            {"width": 64, "outcome": Verdict.AGREES, "verdict": "agrees"}]
    assert summarise([r["outcome"] for r in rows]) == Verdict.CLOSE
    assert summarise([Verdict.AGREES]) == Verdict.AGREES
    assert summarise([r["outcome"] for r in rows] + [Verdict.DIFFERS]) == Verdict.PARTLY
    assert summarise([Verdict.DIFFERS, Verdict.NO_PREDICTION]) == Verdict.DIFFERS
    text = _attenuation_detail(rows, [{"width": 3, "outcome": Verdict.DIFFERS,
                                       "verdict": "differs (\u221230%)"}])
    assert not text.startswith("agrees")
    assert text.startswith("close where mean field holds (width >= 16): width 32: close")
    assert "differs at width < 16" in text


def test_the_shortcut_finding_reports_the_alignment(laws):
    finding = by_key(laws)["shortcut"]
    cols, rows = finding["table"]["columns"], finding["table"]["rows"]
    assert {"cos_mid", "cos_if_independent", "stream_offset_predicted"} <= set(cols)
    assert "cos(g, x)" in finding["measured"]  # depth 12 reaches layers 10-30
    assert "independence" in finding["claim"] or "independent" in finding["claim"]
    for row in rows:
        assert row[cols.index("stream_rms_measured")] > 0


def test_the_branch_scale_finding_gives_states_by_depth(laws):
    finding = by_key(laws)["branch_scale"]
    assert finding["sweep"] == "branch"
    states_table = finding["states"]
    cols = states_table["columns"]
    assert cols[:5] == ["width", "shortcut_scale", "branch_scale", "depth", "seeds"]
    for row in states_table["rows"]:
        shares = [row[cols.index(c)] for c in cols if c.startswith("share_")]
        assert sum(shares) == pytest.approx(1.0)
    deep_rule = [r for r in states_table["rows"] if r[cols.index("branch_scale")] == "1/sqrt(depth)"
                 and r[cols.index("depth")] == 40]
    assert deep_rule and deep_rule[0][cols.index("share_exploded")] == 0
    assert deep_rule[0][cols.index("share_healthy")] == 1.0
    table = finding["table"]
    assert {"measured", "ci_low", "ci_high", "predicted", "verdict"} <= set(table["columns"])


def test_every_factor_table_keeps_the_interval_columns(laws):
    for finding in laws:
        if finding.get("table") and "predicted" in finding["table"]["columns"]:
            cols = finding["table"]["columns"]
            assert {"measured", "ci_low", "ci_high", "predicted", "verdict"} <= set(cols)
            for row in finding["table"]["rows"]:
                v, p = row[cols.index("verdict")], row[cols.index("predicted")]
                low, high = row[cols.index("ci_low")], row[cols.index("ci_high")]
                if v == "agrees":
                    assert low <= p <= high


# ------------------------------------------------ hand-made groups of cells

def factor_group(init, gmean, low, high, n, shortcut=False, width=32, depth=64):
    """A cells frame row whose per-layer factor over n seeds has geometric
    mean gmean and 95% CI [low, high] (symmetric in log10, as the moments
    give it)."""
    std = (math.log10(high) - math.log10(low)) / 2 * math.sqrt(n) / intervals.t975(n - 1)
    return {"model": "mlp", "depth": depth, "width": width, "shortcut": shortcut,
            "shortcut_scale": 1.0 if shortcut else 0.0, "branch_scale": "1",
            "activation": "gelu_tanh", "init": init, "norm": "none", "device": "cpu",
            "dtype": "float32", "n_cells": n, "log10_factor_n": n,
            "log10_factor_mean": math.log10(gmean), "log10_factor_m2": std ** 2 * (n - 1)}


# The default report's init study at width 32, depth 64, 10 seeds: Xavier's and
# Kaiming's intervals overlap, and mean field's factor falls from Xavier (0.99923)
# to Kaiming (0.99825).
INITS = [("pytorch", 0.28780, 0.28455, 0.29109), ("xavier_uniform", 1.00093, 0.99321, 1.00871),
         ("kaiming_normal", 1.00518, 0.98524, 1.02553)]


def init_law(inits):
    cells = pd.DataFrame([factor_group(init, *numbers, n=10) for init, *numbers in inits])
    return init_finding({"init": {"cells": cells}}).to_json()


def test_the_init_finding_orders_inits_only_where_their_intervals_separate():
    finding = init_law(INITS)
    assert finding["verdict"] == "close"
    detail = finding["detail"]
    assert not detail.startswith("close")  # the page writes "Verdict: close." before it
    pytorch_to_xavier, xavier_to_kaiming = detail.split("; ")
    assert "grows" in pytorch_to_xavier and "as predicted" in pytorch_to_xavier
    assert "indistinguishable at 10 seeds each" in xavier_to_kaiming
    assert "grows" not in xavier_to_kaiming and "as predicted" not in xavier_to_kaiming
    assert "the prediction falls (0.999 to 0.998)" in xavier_to_kaiming


def test_an_ordering_against_the_predictions_direction_differs():
    """Kaiming's interval apart from and above Xavier's, while mean field's
    factor falls from Xavier to Kaiming: the measured ordering is not the
    predicted one."""
    finding = init_law(INITS[:2] + [("kaiming_normal", 1.05, 1.04, 1.06)])
    assert finding["verdict"] == "differs"
    assert ("the factor grows (95% CIs apart), against the prediction, which falls "
            "(0.999 to 0.998)") in finding["detail"]


def plain_moments(mean, low, high, n):
    """(n, mean, m2) of n values whose mean has the 95% CI [low, high]."""
    std = (high - low) / 2 * math.sqrt(n) / intervals.t975(n - 1)
    return n, mean, std ** 2 * (n - 1)


def shortcut_partials():
    """The default report's book shortcut at depth 64 (30 seeds per width):
    the factor, cos(g, x) at layers 10-30, and the log10 moments of the
    stream's RMS before the last layer, as its partial results hold them."""
    cells, layers = [], []
    for width, factor, cos, stream in (
            (3, (0.99955, 0.99326, 1.00588, 19), (0.88626, 0.86445, 0.90807, 19),
             (30, 5.248226, 11.88970)),
            (32, (0.99431, 0.98888, 0.99977, 11), (0.79204, 0.78158, 0.80251, 11),
             (30, 5.242299, 1.488268))):
        group = factor_group("pytorch", *factor[:3], n=factor[3], shortcut=True, width=width)
        n, mean, m2 = plain_moments(*cos)
        cells.append({**group, "n_cells": 30, "cos_mid_n": n, "cos_mid_mean": mean,
                      "cos_mid_m2": m2})
        keys = {c: group[c] for c in GROUP}
        n, mean, m2 = stream
        layers.append({**keys, "layer": 62, "param": "layers.62.0.weight",
                       "output_rms_n_pos": n, "output_rms_log10_mean": mean,
                       "output_rms_log10_m2": m2})
    return {"main": {"cells": pd.DataFrame(cells), "layers": pd.DataFrame(layers)}}


def test_the_shortcut_finding_says_where_the_stream_matches_mean_field():
    """At width 3 the stream's RMS lies 68% below mean field's (outside its
    95% CI), at width 32 its CI holds the prediction: the words say so, and
    the stream's offset is a prediction, never a measurement."""
    finding = shortcut_finding(shortcut_partials()).to_json()
    cols, rows = finding["table"]["columns"], finding["table"]["rows"]
    verdicts = {r[cols.index("width")]: r[cols.index("stream_rms_verdict")] for r in rows}
    assert verdicts == {3: "differs (\u221268%)", 32: "agrees"}
    measured = finding["measured"]
    assert "come out right" not in measured
    assert ("Forward, the stream's RMS before the last layer matches mean field at width 32 "
            "(the prediction inside the measured 95% CI) but misses it at width 3 "
            "(\u221268%, differs).") in measured
    assert "0.81, 0.81" not in measured
    assert "mean^2 / mean square 0.81 at widths 3 and 32" in measured
    assert "which the sweep does not measure" in measured
    assert ("Backward, at widths 3 and 32 the gradient gains more per layer than predicted "
            "(+16%, +14%)") in measured
