"""Summarising over seeds (analysis/aggregate.py, the tests' plain-way
summary and the training table's concatenation)."""

import math

import numpy as np
import pandas as pd
import pytest

from shortcutbench.analysis.aggregate import summary_table, t_interval


def frame(values, seeds=None):
    seeds = seeds or list(range(len(values)))
    return pd.DataFrame({"depth": 1, "width": 3, "seed": seeds, "shortcut": True,
                         "shortcut_scale": 1.0, "activation": "gelu_tanh", "init": "pytorch",
                         "norm": "none", "device": "cpu", "dtype": "float32",
                         "layer": 0, "grad_abs_mean": values})


def test_t_interval_matches_the_textbook():
    n, mean, std, low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    assert (n, mean) == (4, 2.5)
    # t(0.975, 3) = 3.182446...
    assert high - mean == pytest.approx(3.182446305 * std / 2, rel=1e-8)


def test_summary_counts_non_finite_cells_but_averages_the_finite():
    row = summary_table(frame([1.0, 3.0, math.inf, math.nan])).iloc[0]
    assert (row["n"], row["n_finite"], row["mean"]) == (4, 2, 2.0)
    assert row["ci95_low"] < 2.0 < row["ci95_high"]
    assert row["log10_mean"] == pytest.approx(np.log10(3) / 2)


def test_an_all_nan_group_and_a_single_seed_do_not_break_the_summary():
    summary = summary_table(frame([math.nan, math.nan]))
    assert summary.iloc[0]["n_finite"] == 0 and math.isnan(summary.iloc[0]["mean"])
    single = summary_table(frame([0.5])).iloc[0]
    assert single["mean"] == 0.5 and math.isnan(single["ci95_low"])


def test_zero_gradients_give_minus_inf_logs_not_a_crash():
    row = summary_table(frame([0.0, 1.0, 10.0])).iloc[0]
    assert row["n_finite"] == 3 and row["log10_mean"] == pytest.approx(0.5)
