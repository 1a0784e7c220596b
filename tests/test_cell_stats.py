"""The per-cell values the laws need, on hand-made and measured cells."""

import math

import numpy as np
import pytest

from shortcutbench.core import cell_stats, states
from shortcutbench.core.cell_stats import (
    LOG_VALUES,
    PLAIN_VALUES,
    cell_values,
    cell_values_many,
    fit_layer_factor,
)
from shortcutbench.core.records import CELL_COLUMNS, COLUMNS, Cell, record_fields
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.mlp.exact import measure_cell


def hand_made(cell, grad, bias=None, rms=None, cos=None, output=0.5, finite=True):
    """Records of one cell from per-layer lists."""
    depth = len(grad)
    bias = grad if bias is None else bias
    rms = [1.0] * depth if rms is None else rms
    cos = [math.nan] * depth if cos is None else cos
    return [{**record_fields(cell), "layer": i, "param": f"layers.{i}.0.weight",
             "numel": cell.width * (cell.width if i < depth - 1 else 1),
             "grad_abs_mean": grad[i], "grad_l2": grad[i], "bias_grad_abs_mean": bias[i],
             "output_rms": rms[i], "grad_stream_cos": cos[i], "loss": output ** 2,
             "output": output, "finite": finite} for i in range(depth)]


def test_declared_values():
    assert set(LOG_VALUES) >= {"first_grad", "factor", "bias_factor", "stream_growth",
                               "stream_max"}
    assert PLAIN_VALUES == ("cos_mid", "token_cosine")  # token_cosine: the GPT's
    got = cell_values(hand_made(Cell(4, 3, 0, False, 0.0), [1.0] * 4))
    assert set(got) == set(LOG_VALUES) | set(PLAIN_VALUES) | {"state"}


def test_a_geometric_profile_gives_its_factor():
    # grad[l] = 0.5 ** (depth - 1 - l) on the hidden layers: factor 0.5 toward the input
    depth = 8
    grad = [0.5 ** (depth - 2 - i) for i in range(depth - 1)] + [123.0]
    rms = [2.0 ** i for i in range(depth - 1)] + [1.0]
    got = cell_values(hand_made(Cell(depth, 3, 0, False, 0.0), grad, rms=rms))
    assert got["factor"] == pytest.approx(0.5, rel=1e-12)
    assert got["bias_factor"] == pytest.approx(0.5, rel=1e-12)
    assert got["stream_growth"] == pytest.approx(2.0, rel=1e-12)
    assert got["first_grad"] == grad[0]
    assert got["stream_max"] == pytest.approx(2.0 ** 6 / float(states.input_rms(3)))
    assert got["factor"] == pytest.approx(fit_layer_factor(grad, range(depth - 1)), rel=1e-12)


def test_shallow_and_unusable_cells_have_no_factor():
    assert math.isnan(cell_values(hand_made(Cell(2, 3, 0, False, 0.0), [1.0, 2.0]))["factor"])
    zero = cell_values(hand_made(Cell(5, 3, 0, False, 0.0), [0.0] * 5, output=0.0))
    assert math.isnan(zero["factor"]) and zero["state"] == "dead"
    broken = cell_values(hand_made(Cell(5, 3, 0, False, 0.0), [1.0, math.nan, 1, 1, 1]))
    assert broken["state"] == "non-finite" and math.isnan(broken["stream_max"]) is False


def test_cos_mid_is_the_mean_over_layers_10_to_30():
    depth = 40
    cos = [float(i) for i in range(depth)]
    cos[12] = math.nan  # a zero vector: left out
    got = cell_values(hand_made(Cell(depth, 3, 0, True), [1.0] * depth, cos=cos))
    expected = np.mean([c for c in cos[10:31] if math.isfinite(c)])
    assert got["cos_mid"] == pytest.approx(expected, rel=1e-12)
    assert math.isnan(cell_values(hand_made(Cell(10, 3, 0, True), [1.0] * 10,
                                            cos=[0.5] * 10))["cos_mid"])


def test_the_state_divides_a_scaled_branch_by_its_alpha():
    grad = [0.1, 0.1, 0.1, 50.0]
    cell = Cell(4, 3, 0, True, 1.0, branch_scale="0.1")
    assert cell_values(hand_made(cell, grad))["state"] == "healthy"


def test_fit_layer_factor():
    values = 2.0 ** -np.arange(10.0)[::-1]
    assert fit_layer_factor(values, range(9)) == pytest.approx(0.5)
    assert math.isnan(fit_layer_factor(np.array([1.0, 0.0, np.nan]), [0, 1, 2]))


@pytest.fixture(scope="module")
def measured():
    configure_torch()
    cells = [Cell(d, w, s, sc, 1.0 if sc else 0.0, branch_scale=a)
             for d in (1, 2, 3, 12, 40) for w in (1, 3, 32) for s in range(2)
             for sc in (False, True) for a in (("1", "0.1", "1/sqrt(depth)") if sc else ("1",))]
    return cells, [measure_cell(cell) for cell in cells]


def test_one_cell_and_many_give_the_same_numbers(measured):
    cells, per_cell = measured
    rows = [r for records in per_cell for r in records]
    many = cell_values_many({c: [r[c] for r in rows] for c in COLUMNS})
    assert len(many["state"]) == len(cells)
    for i, (cell, records) in enumerate(zip(cells, per_cell)):
        assert [many[c][i] for c in CELL_COLUMNS] == [getattr(cell, c) for c in CELL_COLUMNS]
        one = cell_values(records[::-1])  # any order of its records
        assert one["state"] == many["state"][i]
        for name in LOG_VALUES + PLAIN_VALUES:  # bit for bit: a cell's numbers are its own
            np.testing.assert_array_equal(one[name], many[name][i], err_msg=name)


def test_many_takes_numpy_columns_and_refuses_shuffled_records(measured):
    _, per_cell = measured
    rows = [r for records in per_cell if len(records) == 3 for r in records][:12]
    columns = {c: np.array([r[c] for r in rows]) for c in COLUMNS}
    assert len(cell_values_many(columns)["factor"]) == 4
    shuffled = rows[1:] + rows[:1]
    with pytest.raises(ValueError):
        cell_values_many({c: [r[c] for r in shuffled] for c in COLUMNS})
    assert len(cell_values_many({c: [] for c in COLUMNS})["state"]) == 0


def test_the_book_at_depth_explodes_and_the_scaled_branch_stays_healthy(measured):
    cells, per_cell = measured
    got = {(c.depth, c.width, c.shortcut, c.branch_scale, c.seed): cell_values(r)["state"]
           for c, r in zip(cells, per_cell)}
    assert got[(40, 32, True, "1/sqrt(depth)", 0)] == "healthy"
    assert got[(40, 32, True, "1", 0)] in ("exploded", "dead")
    assert got[(40, 32, False, "1", 0)] == "vanished"
    assert cell_stats.MID_LAYERS == (10, 30)
