"""Cell states on hand-made cells: each state, the band's boundaries, precedence."""

import time

import numpy as np
import pytest

from shortcutbench.core.states import (
    STATES,
    branch_alpha,
    cell_states,
    classify,
    input_rms,
    subnormal,
    to_matrix,
)


def state(grad, output=0.5, rms=None, in_rms=1.0, **kwargs):
    grad = np.array([grad], dtype=float)
    rms = np.ones_like(grad) if rms is None else np.array([rms], dtype=float)
    return cell_states(grad, [output], rms, in_rms, **kwargs)[0]


def test_states_are_six_in_a_fixed_order():
    assert STATES == ("healthy", "vanished", "exploded", "dead", "non-finite", "zero-branch")


# The last column is the width -> 1 output layer; the band is around the
# last hidden layer (the column before it), which is 1.0 here.
@pytest.mark.parametrize("grad, expected", [
    ([1.0, 1.0, 1.0], "healthy"),
    ([100.0, 1.0, 1.0], "healthy"),                              # exactly 10^2 above: in
    ([np.nextafter(100.0, 200), 1.0, 1.0], "exploded"),          # just above: out
    ([0.01, 1.0, 1.0], "healthy"),                               # exactly 10^-2 below: in
    ([np.nextafter(0.01, 0), 1.0, 1.0], "vanished"),             # just below: out
    ([1.0, 0.0, 1.0], "vanished"),                               # a zero gradient never lives
    ([1.0, 1.0, 0.0], "vanished"),                               # the output layer's neither
    ([1e-38, 1e-20, 1e-3], "vanished"),                          # the plain net at depth
])
def test_the_band_around_the_last_hidden_layer(grad, expected):
    assert state(grad) == expected


def test_the_output_layer_is_not_in_the_band():
    # A wide net's output layer sits ~sqrt(width) above its hidden layers,
    # for reasons unrelated to depth: far above or below, it changes nothing.
    assert state([1.0, 1.0, 1e3]) == "healthy"
    assert state([1.0, 1.0, 1e-3]) == "healthy"
    # Measured from the old reference (the output layer) a hidden layer 2.5
    # decades below it would have vanished; around the last hidden one it is in.
    assert state([1.0, 1.0, 10 ** 2.5]) == "healthy"
    assert state([1e-3, 1.0, 10 ** 2.5]) == "vanished"


def test_shallow_nets_compare_to_their_first_layer():
    # depth 2: the only hidden layer is its own reference; depth 1: the only layer.
    assert state([1.0, 1e5]) == "healthy"
    assert state([1e-30, 1.0]) == "healthy"
    assert state([1e-30]) == "healthy"
    assert state([0.0]) == "vanished"
    assert state([1.0], rms=[1e3]) == "exploded"                 # the stream still counts


def test_a_zero_reference_is_vanished_not_exploded():
    assert state([1.0, 0.0, 1.0]) == "vanished"


def test_a_scaled_branch_is_divided_by_its_alpha():
    # Every hidden layer carries alpha: dividing it out of each cancels in
    # their ratios, the band judges what depth does.
    grad = np.array([[0.1, 0.1, 0.1, 5.0]])
    alpha = branch_alpha([4], [3], [True], [0.1])
    np.testing.assert_array_equal(alpha, [[0.1, 0.1, 0.1, 1.0]])
    assert cell_states(grad, [0.5], np.ones((1, 4)), 1.0, alpha=alpha)[0] == "healthy"
    # without a shortcut nothing is divided; at width 1 the output layer has the shortcut too
    np.testing.assert_array_equal(branch_alpha([3], [3], [False], [0.1]), [[1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(branch_alpha([2, 3], [1, 8], [True, True], [0.5, 0.2], 3),
                                  [[0.5, 0.5, 1.0], [0.2, 0.2, 1.0]])


def test_the_band_is_a_parameter():
    assert state([1e-3, 1.0, 1.0]) == "vanished"
    assert state([1e-3, 1.0, 1.0], band=3) == "healthy"
    assert state([9e2, 1.0, 1.0], band=3) == "healthy"
    assert state([1.001e3, 1.0, 1.0], band=3) == "exploded"


def test_a_forward_explosion_is_exploded_though_the_ratios_look_vanished():
    # The book's shortcut net at depth 64: stream RMS ~1.8e5 before the last
    # layer, output ~3e4, last gradient ~2.6e10, first/last only ~3e-3.
    grad = [7.8e7, 5e8, 2.6e10]
    rms = [1.0, 1.8e5, 3e4]
    assert state(grad, output=3e4, rms=rms, in_rms=0.8165) == "exploded"
    # The stream's boundary: exactly 10^2 times the input's RMS is in.
    assert state([1.0, 1.0], rms=[100.0, 1.0]) == "healthy"
    assert state([1.0, 1.0], rms=[np.nextafter(100.0, 200), 1.0]) == "exploded"


def test_dead_and_non_finite():
    assert state([0.0, 0.0, 0.0], output=0.0) == "dead"
    assert state([0.0, 0.0, 0.0], output=-0.0) == "dead"
    assert state([np.nan, 1.0], output=0.5) == "non-finite"
    assert state([1.0, np.nan], output=0.5) == "non-finite"      # the output layer counts here
    assert state([1.0, 1.0], output=np.inf) == "non-finite"
    assert state([1.0, 1.0], rms=[np.inf, 1.0]) == "non-finite"
    assert state([1.0, 1.0], finite=[False]) == "non-finite"


def test_precedence():
    # non-finite > dead > exploded > vanished > healthy
    assert state([np.nan, 0.0], output=0.0) == "non-finite"
    assert state([0.0, 0.0], output=0.0, rms=[1e6, 1e6]) == "dead"  # a saturated explosion
    assert state([1e3, 1e-3, 1.0, 1.0]) == "exploded"                # above and below
    assert state([1e-3, 1.0, 1.0], rms=[1e3, 1.0, 1.0]) == "exploded"
    assert state([1e-3, 1.0, 0.0]) == "vanished"


def test_padding_past_a_cells_depth_is_ignored():
    grad = np.array([[1.0, 1.0, np.nan], [1.0, 1.0, 1.0], [np.nan, 1.0, np.nan]])
    rms = np.where(np.isnan(grad), np.nan, 1.0)
    got = cell_states(grad, [0.5, 0.5, 0.5], rms, 1.0, depth=[2, 3, 2])
    assert got.tolist() == ["healthy", "healthy", "non-finite"]
    assert classify(grad, [0.5] * 3, rms, 1.0, depth=[2, 3, 2]).tolist() == [0, 0, 4]


def test_to_matrix_pads_with_nan():
    m = to_matrix([0, 0, 1], [0, 1, 0], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m, [[1.0, 2.0], [3.0, np.nan]])


def test_input_rms_is_the_sample_inputs():
    for width in (1, 2, 3, 32, 1000):
        x = np.linspace(1, -1, width)
        assert input_rms(width) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-12)


def test_many_cells_are_fast():
    rng = np.random.default_rng(0)
    n, layers = 100_000, 64
    grad = 10.0 ** rng.uniform(-3, 1, (n, layers))
    depth = rng.integers(1, layers + 1, n)
    grad[np.arange(layers) >= depth[:, None]] = np.nan
    started = time.perf_counter()
    codes = classify(grad, rng.uniform(-1, 1, n), np.ones((n, layers)), 1.0, depth=depth)
    assert time.perf_counter() - started < 2.0
    assert codes.shape == (n,) and set(np.unique(codes)) <= set(range(len(STATES)))


@pytest.mark.parametrize("dtype, tiny", [("float32", 1.1754944e-38), ("bfloat16", 1.1754944e-38),
                                         ("float16", 6.1035e-5),
                                         ("float64", 2.2250738585072014e-308)])
def test_subnormal(dtype, tiny):
    values = [0.0, tiny * 0.5, -tiny * 0.5, tiny * 1.0001, 1.0, np.nan, np.inf]
    assert subnormal(values, dtype).tolist() == [False, True, True, False, False, False, False]


def test_subnormal_per_value_dtype():
    got = subnormal([1e-39, 1e-39, 1e-5], np.array(["float32", "float64", "float16"]))
    assert got.tolist() == [True, False, True]
