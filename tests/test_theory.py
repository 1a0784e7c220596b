"""Mean-field predictions (shortcutbench.analysis.theory): closed forms, and agreement
with the real measurement on wide networks.

`pytest -s tests/test_theory.py` also prints the predicted and measured
per-layer factors at width 256 and width 3 (where mean field does not hold).
"""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from shortcutbench.analysis import theory
from shortcutbench.analysis.theory import (
    ACTIVATIONS_NP,
    chi1,
    depth_scale,
    fit_layer_factor,
    gauss_mean,
    predicted_layer_factor,
    predicted_profile,
    weight_variance,
)
from shortcutbench.core.records import Cell
from shortcutbench.measuring.measure import configure_torch
from shortcutbench.measuring.mlp.exact import measure_cell
from shortcutbench.measuring.mlp.model import ACTIVATIONS, draw_linear, gelu_tanh

X = np.linspace(-6, 6, 1201) + 1e-3  # no point exactly at relu's kink


# ------------------------------------------------------------- activations

def test_gelu_tanh_matches_the_books_torch_formula():
    x = torch.linspace(-8, 8, 4001, dtype=torch.float64)
    np.testing.assert_allclose(ACTIVATIONS_NP["gelu_tanh"][0](x.numpy()),
                               gelu_tanh(x).numpy(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS_NP))
def test_activations_match_torch(name):
    x = torch.from_numpy(X)
    np.testing.assert_allclose(ACTIVATIONS_NP[name][0](X), ACTIVATIONS[name][0](x).numpy(),
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS_NP))
def test_derivatives_match_finite_differences(name):
    phi, dphi = ACTIVATIONS_NP[name]
    eps = 1e-6
    numeric = (phi(X + eps) - phi(X - eps)) / (2 * eps)
    np.testing.assert_allclose(dphi(X), numeric, atol=1e-7, rtol=0)


@pytest.mark.parametrize("name", sorted(ACTIVATIONS_NP))
def test_derivatives_match_torch_autograd(name):
    x = torch.from_numpy(X).requires_grad_()
    (grad,) = torch.autograd.grad(ACTIVATIONS[name][0](x).sum(), x)
    np.testing.assert_allclose(ACTIVATIONS_NP[name][1](X), grad.numpy(), atol=1e-9, rtol=0)


def test_theory_imports_no_torch_pandas_or_seaborn():
    code = ("import sys, shortcutbench.analysis.theory; "
            "print(sorted(m for m in ('torch', 'pandas', 'seaborn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------ closed forms

def test_gauss_mean():
    assert gauss_mean(lambda h: h ** 2, 2.5) == pytest.approx(2.5, rel=1e-12)
    assert gauss_mean(lambda h: h ** 4, 2.0) == pytest.approx(3 * 2.0 ** 2, rel=1e-12)
    assert gauss_mean(lambda h: np.maximum(h, 0) ** 2, 3.0) == pytest.approx(1.5, rel=1e-12)


@pytest.mark.parametrize("init", ["pytorch", "xavier_uniform", "kaiming_normal"])
@pytest.mark.parametrize("fan_in, fan_out", [(256, 256), (256, 1), (64, 64)])
def test_weight_variance_matches_the_models_draws(init, fan_in, fan_out):
    torch.manual_seed(0)
    n_draws = max(1, 4000 // fan_out, 20000 // (fan_in * fan_out))  # >= 4000 biases
    draws = [draw_linear(fan_in, fan_out, init) for _ in range(n_draws)]
    weights = torch.cat([w.flatten() for w, _ in draws]).double()
    biases = torch.cat([b for _, b in draws]).double()
    sigma_w2, sigma_b2 = weight_variance(init, fan_in, fan_out)
    assert fan_in * weights.var().item() == pytest.approx(sigma_w2, rel=0.05)
    assert biases.var().item() == pytest.approx(sigma_b2, rel=0.1, abs=1e-12)


def test_chi1_relu_pytorch_is_one_sixth():
    # E[relu'(h)^2] = 1/2 for every q, so chi_1 = sigma_w^2 / 2 = 1/6.
    assert chi1("relu", "pytorch") == pytest.approx(1 / 6, rel=1e-12)
    assert chi1("relu", "pytorch", width=256) == pytest.approx(1 / 6, rel=1e-12)
    assert chi1("relu", "kaiming_normal") == pytest.approx(1.0, rel=1e-12)
    assert depth_scale("relu", "pytorch") == pytest.approx(-1 / math.log(1 / 6))
    assert depth_scale("relu", "kaiming_normal") == math.inf


def test_chi1_tanh():
    # sigma_w^2 = 1/3 < 1, sigma_b = 0: q* -> 0 and tanh'(0) = 1, so chi_1 -> sigma_w^2.
    assert chi1("tanh", "pytorch") == pytest.approx(1 / 3, rel=1e-9)
    # The pytorch bias keeps q* > 0 at finite width: chi_1 slightly below 1/3.
    assert 0.3 < chi1("tanh", "pytorch", width=256) < 1 / 3
    # sigma_w^2 = 2 (kaiming) is in the chaotic phase; xavier (1) is critical.
    assert chi1("tanh", "kaiming_normal") > 1 > 0 > depth_scale("tanh", "kaiming_normal")
    assert chi1("tanh", "xavier_uniform") == pytest.approx(1.0, abs=1e-3)
    # gelu: phi'(0) = 1/2, so chi_1 -> sigma_w^2 / 4 in the ordered phase.
    assert chi1("gelu", "pytorch") == pytest.approx(1 / 12, rel=1e-6)
    assert chi1("gelu_tanh", "pytorch") == pytest.approx(1 / 12, rel=1e-6)


# ------------------------------------------------------------- the profile

def test_profile_shape_and_normalisation():
    p = predicted_profile(12, 64, "gelu_tanh")
    assert p.shape == (12,) and p[-1] == 1.0 and np.all(np.isfinite(p) & (p > 0))
    assert predicted_profile(1, 3).tolist() == [1.0]
    assert predicted_profile(12, 64, statistic="rms")[-1] == 1.0


def test_pre_layernorm_has_no_prediction():
    assert predicted_profile(10, 64, norm="pre_layernorm") is None
    assert predicted_layer_factor(10, 64, norm="pre_layernorm") is None
    with pytest.raises(ValueError):
        predicted_profile(10, 64, norm="batchnorm")


def test_default_fit_needs_depth_3():
    with pytest.raises(ValueError):
        predicted_layer_factor(2, 64)
    assert predicted_layer_factor(2, 64, layers=[0, 1]) > 0


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS_NP))
@pytest.mark.parametrize("statistic", ["abs", "rms"])
def test_lambda_zero_is_no_shortcut(activation, statistic):
    np.testing.assert_array_equal(
        predicted_profile(15, 32, activation, True, 0.0, statistic=statistic),
        predicted_profile(15, 32, activation, False, statistic=statistic))


@pytest.mark.parametrize("statistic", ["abs", "rms", "bias"])
def test_branch_scale_one_is_the_unscaled_shortcut(statistic):
    np.testing.assert_array_equal(
        predicted_profile(15, 32, "gelu_tanh", True, 1.0, statistic=statistic, branch_scale=1.0),
        predicted_profile(15, 32, "gelu_tanh", True, 1.0, statistic=statistic))


def test_branch_scale_enters_forward_and_backward_as_derived():
    lam, alpha = 0.9, 0.3
    mf = theory.mean_field(10, 64, "gelu_tanh", True, lam, "pytorch", branch_scale=alpha)
    gain = mf["q_g"][3] / mf["q_g"][4]
    assert gain == pytest.approx(lam ** 2 + alpha ** 2 * mf["gamma"][4] * mf["dphi2"][4])
    rule = theory.mean_field(16, 64, "gelu_tanh", True, 1.0, "pytorch",
                             branch_scale="1/sqrt(depth)")
    quarter = theory.mean_field(16, 64, "gelu_tanh", True, 1.0, "pytorch", branch_scale=0.25)
    np.testing.assert_array_equal(rule["q_g"], quarter["q_g"])
    # a smaller branch: a slower-growing stream, a gain nearer 1
    assert rule["q_in"][-1] < theory.mean_field(16, 64, "gelu_tanh", True)["q_in"][-1]


def test_plain_tanh_profile_is_chi1_deep_down():
    # Past the forward transient, grad[l] / grad[l+1] = sqrt(chi_1 at q*).
    p = predicted_profile(60, 256, "tanh", statistic="rms")
    assert p[30] / p[31] == pytest.approx(math.sqrt(chi1("tanh", "pytorch", width=256)), rel=1e-6)


def test_shortcut_keeps_gelu_gradients_alive():
    """Plain: the weight gradient shrinks fast toward the input.  lambda = 1:
    the stream's gradient grows toward the input (gain 1 + chi per layer),
    but the stream itself grows toward the output by about as much, and the
    weight gradient is their product: nearly flat, slightly shrinking (the
    GELU's positive mean grows the stream a little faster).  Both the theory
    and the measurement say so (test_wide_networks_match_the_measurement)."""
    factors = [predicted_layer_factor(20, 256, "gelu_tanh", lam > 0, lam) for lam in (0, 0.5, 1)]
    assert factors[0] < 0.4 < factors[1] < 0.8 < factors[2] < 1
    assert predicted_layer_factor(20, 256, "tanh", True, 1.0) > 1


def test_fit_layer_factor():
    values = 3.0 * 0.5 ** np.arange(10)  # halves toward the output: factor 2
    assert fit_layer_factor(values, range(9)) == pytest.approx(2.0)
    assert fit_layer_factor(values) == pytest.approx(2.0)
    values[[2, 5]] = [0.0, np.inf]
    values[7] = np.nan
    assert fit_layer_factor(values, range(10)) == pytest.approx(2.0)
    assert math.isnan(fit_layer_factor(np.array([1.0, 0.0, np.nan]), [0, 1, 2]))


# --------------------------------------------- against the real measurement

DEPTH = 20


def measured_profile(width, activation, init, shortcut=False, shortcut_scale=1.0,
                     seeds=5, max_seed=400):
    """Geometric mean of grad_abs_mean over `seeds` seeds, per layer.  Seeds
    whose gradients are all exactly zero (a dead output unit: relu, or a
    saturated tanh/GELU output in float32) have no logarithm and are skipped."""
    configure_torch()
    logs = []
    for seed in range(max_seed):
        cell = Cell(depth=DEPTH, width=width, seed=seed, shortcut=shortcut,
                    shortcut_scale=shortcut_scale if shortcut else 0.0,
                    activation=activation, init=init)
        values = np.array([r["grad_abs_mean"] for r in measure_cell(cell)])
        if np.all(np.isfinite(values) & (values > 0)):
            logs.append(np.log10(values))
        if len(logs) == seeds:
            break
    return 10 ** np.mean(logs, axis=0)


def factors(width, activation, init, shortcut=False, shortcut_scale=1.0, seeds=5):
    """(predicted, measured) per-layer factor over the hidden layers."""
    predicted = predicted_layer_factor(DEPTH, width, activation, shortcut, shortcut_scale, init)
    measured = fit_layer_factor(measured_profile(width, activation, init, shortcut,
                                                 shortcut_scale, seeds), range(DEPTH - 1))
    return predicted, measured


CASES = [(activation, init, shortcut, scale)
         for activation in ("tanh", "gelu_tanh")
         for init in ("pytorch", "kaiming_normal")
         for shortcut, scale in ((False, 1.0), (True, 1.0), (True, 0.5))]


def case_name(case):
    activation, init, shortcut, scale = case
    return f"{activation}-{init}-" + (f"lambda{scale}" if shortcut else "plain")


@pytest.mark.parametrize("case", CASES, ids=case_name)
def test_wide_networks_match_the_measurement(case):
    """Width 256, depth 20: the predicted per-layer factor is the measured
    one.  Without shortcut to < 1% (asserted: 3%).  With a shortcut, tanh
    agrees to < 1% too; gelu_tanh with kaiming init is measured ~5% above
    the prediction.  That is a finite-width effect, not the derivation: the
    excess halves from width 256 to 1024 (4.7% -> 2.3%), and in the real
    network the gradient of the first layers has aligned with the weights it
    passes back through (2 lam <g, W^T delta> > 0 and |W^T delta|^2 above
    sigma_w^2 E[phi'^2] |g|^2 by 10-30%), which gradient independence
    neglects; tanh shows neither."""
    predicted, measured = factors(256, *case)
    _, _, shortcut, _ = case
    print(f"\nwidth 256 {case_name(case)}: predicted {predicted:.4f} measured {measured:.4f}")
    assert measured == pytest.approx(predicted, rel=0.10)
    if not shortcut:
        assert measured == pytest.approx(predicted, rel=0.03)


@pytest.mark.parametrize("alpha", ["0.1", "1/sqrt(depth)"])
def test_a_scaled_branch_matches_the_measurement(alpha):
    """Width 256, depth 20, gelu_tanh, lambda = 1, x + alpha f(x): the
    predicted factor is the measured one within 10%."""
    predicted = predicted_layer_factor(DEPTH, 256, "gelu_tanh", True, 1.0, branch_scale=alpha)
    configure_torch()
    logs = [np.log10([r["grad_abs_mean"] for r in measure_cell(Cell(
        DEPTH, 256, seed, True, 1.0, branch_scale=alpha))]) for seed in range(5)]
    measured = fit_layer_factor(10 ** np.mean(logs, axis=0), range(DEPTH - 1))
    print(f"\nwidth 256 alpha {alpha}: predicted {predicted:.4f} measured {measured:.4f}")
    assert measured == pytest.approx(predicted, rel=0.10)


def test_report_width_3(capsys):
    """Mean field needs width -> infinity; at width 3 it does not hold (and
    five seeds are a noisy estimate).  Nothing to assert: the table is the
    point (pytest -s)."""
    rows = []
    for case in CASES:
        predicted, measured = factors(3, *case)
        rows.append(f"width 3 {case_name(case):30s} predicted {predicted:.4f} "
                    f"measured {measured:.4f} measured/predicted {measured / predicted:.3f}")
        assert np.isfinite(predicted) and np.isfinite(measured)
    with capsys.disabled():
        print("\n" + "\n".join(rows))
