"""Mean-field predictions for the statistic the sweep measures.

The measured statistic of layer l (0-based) is grad_abs_mean[l] = mean |dL/dW_l|
at initialisation, for the input x_0 = linspace(1, -1, width) (a batch of one)
and loss = MSE(output, 0).  Layer l computes

    h_l = W_l x_{l-1} + b_l,   f_l = phi(h_l),
    x_l = lam * x_{l-1} + alpha * f_l
                                if it has a shortcut (use_shortcut, lam != 0 and
                                the shapes match: never the last width -> 1 layer;
                                alpha = branch_scale, 1 in the book),
    x_l = f_l                   otherwise,

and its weight gradient is an outer product: dL/dW_l = delta_l x_{l-1}^T with
delta_l = dL/dh_l = phi'(h_l) * g_l and g_l = dL/dx_l (= dL/df_l).  So

    mean |dL/dW_l| = mean |delta_l| * mean |x_{l-1}|,   delta_l = phi'(h_l) * g_l.

Mean field (Poole et al. 2016, "Exponential expressivity in deep neural networks
through transient chaos"; Schoenholz et al. 2017, "Deep Information
Propagation"): in a wide network at initialisation the pre-activations of a
layer are Gaussian across its units, h_l ~ N(0, q_h(l)), and the moments obey
deterministic recursions.  With sigma_w^2 = fan_in Var(W), sigma_b^2 = Var(b),
E[F(h)] = E_z[F(sqrt(q_h) z)], z ~ N(0, 1):

forward   q_h(l) = sigma_w^2 q_x(l-1) + sigma_b^2
          shortcut:     q_x(l) = lam^2 q_x(l-1) + 2 lam alpha m_x(l-1) E[phi]
                                 + alpha^2 E[phi^2]
                        m_x(l) = lam m_x(l-1) + alpha E[phi]
          no shortcut:  q_x(l) = E[phi^2],  m_x(l) = E[phi]
          q_x(-1) = mean(x_0^2), m_x(-1) = mean(x_0) = 0   (q_x: mean square per unit
          of the stream, m_x: its mean; E[phi] != 0 for sigmoid and GELU)
backward  everything behind the output carries the common factor
          c = dL/dh_{depth-1} = 2 phi(h_last) phi'(h_last), a scalar; it cancels in
          every ratio of layers, so set |c| = 1.  Then delta_{depth-1} = 1 and
          q_g(depth-2) = gamma_{depth-1}  (+ lam^2 if the last layer had a shortcut),
          q_g(l) = gamma_{l+1} E[phi'(h_{l+1})^2] q_g(l+1)            without a shortcut on l+1,
          q_g(l) = (lam^2 + alpha^2 gamma_{l+1} E[phi'(h_{l+1})^2]) q_g(l+1)   with one
          (delta_l = alpha phi'(h_l) g_l on a layer with a shortcut),
          gamma = fan_out Var(W) = sigma_w^2 fan_out / fan_in  (= sigma_w^2 for the
          square hidden layers, sigma_w^2 / width for the last width -> 1 layer).

The prediction, statistic="rms" (second moments only):
          s_l = sqrt(E[phi'(h_l)^2] q_g(l) q_x(l-1)),   s_{depth-1} = sqrt(q_x(depth-2));
(a layer with a shortcut multiplies s_l by its alpha: its weight sees alpha f_l)
statistic="abs" (the default: what grad_abs_mean is, a mean of absolute values):
          s_l = E|phi'(h_l)| kappa_l sqrt(q_g(l)) E|x_{l-1}|,   s_{depth-1} = E|x_{depth-2}|,
          kappa_l = E|g|/rms(g): sqrt(2/pi) for a Gaussian g (a sum over many units),
          but for layer depth-2, whose g is the last weight row times c, that of the
          init's distribution (uniform: sqrt(3)/2; normal: sqrt(2/pi)).
          E|x| is exact for x_0 and for x = phi(h) (no shortcut); a shortcut stream
          lam^(l+1) x_0 + (sum of branch outputs) is taken as lam^(l+1) x_0 plus a
          Gaussian with the branch sum's mean and variance (a folded normal).
The two differ by E|.|/rms(.) ratios that drift with q_h; "rms" is off by up
to 3% per layer at width 256 (gelu_tanh with kaiming_normal, tanh with a
shortcut), "abs" agrees to < 1% (tests/test_theory.py).

Approximations, all exact only as width -> infinity:
- a branch output f_l is independent of the stream x_{l-1} it is added to, so
  E[x f] = E[x] E[f] (zero-mean weights make h depend on q_x only);
- gradient independence (Schoenholz et al. 2017): the weights used on the way
  back are independent of those on the way forward, so the cross term
  2 lam <g, W^T delta> averages to zero and phi'(h_l) is independent of g_l;
- one network's average over its `width` units is the ensemble average.  At
  small width this fails: the typical (log-averaged) gradient falls below the
  mean-field (mean-square) one by a variance that grows like depth / width
  (Hanin 2018), and at width 3 the predicted factors are off by up to ~30%.

statistic="bias" is mean |dL/db_l| = mean |delta_l|, the signal flowing back
through the layer without its input's scale: s_l = E|phi'(h_l)| kappa_l
sqrt(q_g(l)) (times alpha with a shortcut), s_{depth-1} = 1.

The shortcut's lam enters the gradient as in He et al. 2016 ("Identity Mappings
in Deep Residual Networks"): the shortcut path carries lam per layer, so the
backward gain per layer is lam^2 + alpha^2 gamma E[phi'^2] rather than gamma
E[phi'^2].  The residual branch's alpha (Fixup, Zhang et al. 2019; SkipInit,
De & Smith 2020) scales what each branch adds to the stream, alpha^2 E[phi^2]
per layer forward, and what it adds to the gradient's mean square backward.

Where mean field misses with a shortcut (measured, laws.py's shortcut
finding): the forward moments hold (width 32, depth 64: stream RMS 1.73e5
predicted, 1.75e5 measured), but the backward gain does not.  An activation
with a positive mean (GELU) builds a shared offset across the stream's units
(m_x^2 / q_x ~ 0.8 deep in the net), and the gradient g_l aligns with the
stream x_l: cos(g_l, x_l) ~ 0.7-0.9 at width 32 where independence would give
~ +-1/sqrt(width).  The cross term 2 lam alpha <g, W^T delta>, zero under
gradient independence, is then positive, and the measured factor lies above
the prediction (+14% at width 32, lam = alpha = 1).  A smaller alpha shrinks
the branch's share of both, so the caveat weighs less as alpha falls.

chi_1 = sigma_w^2 E[phi'(h)^2] at the forward fixed point q* of the network
without shortcut is the per-layer gain of the gradient's mean square deep in
the network; it vanishes (chi_1 < 1) or explodes (chi_1 > 1) over the depth
scale xi = -1 / log chi_1 (Schoenholz et al. 2017).

Pre-LayerNorm gets no prediction (None): LayerNorm rescales each sample by its
own stream RMS and projects out two directions (the sample's mean and x
itself), so a layer's gain depends on one sample's norm rather than on
ensemble moments, and at the small widths the sweep is about (3) the
projection removes two of three directions.  The wide-width limit is
derivable (q_in = 1, backward gain divided by q_x) but is not implemented.

Numpy only (and scipy.special for the normal CDF and the logistic; records for
the branch scale's labels): this module must not import torch, pandas or seaborn.
"""

import math

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import expit, ndtr

# fit_layer_factor: one copy, shared with the measured factors (core.cell_stats)
from shortcutbench.core.cell_stats import fit_layer_factor  # noqa: F401
from shortcutbench.core.records import branch_value

NORMS_WITHOUT_PREDICTION = ("pre_layernorm",)
STATISTICS = ("abs", "rms", "bias")

# ---------------------------------------------------------------- activations

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_A * x ** 3)))


def _gelu_tanh_prime(x):
    t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_A * x ** 3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * _SQRT_2_OVER_PI * (1 + 3 * _GELU_A * x ** 2)


def _gelu(x):
    return x * ndtr(x)


def _gelu_prime(x):
    return ndtr(x) + x * np.exp(-0.5 * x ** 2) / math.sqrt(2 * math.pi)


def _relu(x):
    return np.maximum(x, 0.0)


def _relu_prime(x):
    return (np.asarray(x) > 0).astype(float)  # relu'(0) = 0, as torch


def _tanh_prime(x):
    return 1 - np.tanh(x) ** 2


def _sigmoid_prime(x):
    s = expit(x)
    return s * (1 - s)


# name -> (phi, phi'), the numpy twins of shortcutbench.model.ACTIVATIONS.
ACTIVATIONS_NP = {
    "gelu_tanh": (_gelu_tanh, _gelu_tanh_prime),
    "gelu": (_gelu, _gelu_prime),
    "relu": (_relu, _relu_prime),
    "tanh": (np.tanh, _tanh_prime),
    "sigmoid": (expit, _sigmoid_prime),
}

# ------------------------------------------------------- Gaussian expectations

# Probabilists' Gauss-Hermite: sum(w f(z)) = E[f(z)], z ~ N(0, 1), after
# dividing the weights by sqrt(2 pi).  An even number of nodes puts none at
# z = 0, so relu'(sqrt(q) z) is right for every q > 0.
_Z, _W = hermegauss(120)
_W = _W / math.sqrt(2 * math.pi)


def gauss_mean(f, q):
    """E[f(sqrt(q) z)], z ~ N(0, 1), by 120-point Gauss-Hermite quadrature."""
    return float(np.dot(_W, f(math.sqrt(q) * _Z)))


def _folded_normal_mean(mu, var):
    """E|y| for y ~ N(mu, var) (elementwise in mu)."""
    if var <= 0:
        return np.abs(mu)
    sd = math.sqrt(var)
    return (sd * _SQRT_2_OVER_PI * np.exp(-mu ** 2 / (2 * var))
            + mu * (1 - 2 * ndtr(-mu / sd)))


# ----------------------------------------------------------------- the inits

def weight_variance(init, fan_in, fan_out):
    """(sigma_w^2, sigma_b^2) = (fan_in Var(W), Var(b)) of one Linear layer.

    pytorch (nn.Linear): W, b ~ U(+-1/sqrt(fan_in))  -> (1/3, 1/(3 fan_in))
    xavier_uniform:      Var(W) = 2/(fan_in+fan_out) -> (2 fan_in/(fan_in+fan_out), 0)
    kaiming_normal (relu gain, fan_in): Var(W) = 2/fan_in -> (2, 0)
    (shortcutbench.model.draw_linear: the non-pytorch inits start b at 0.)
    """
    if init == "pytorch":
        return 1.0 / 3.0, 1.0 / (3.0 * fan_in)
    if init == "xavier_uniform":
        return 2.0 * fan_in / (fan_in + fan_out), 0.0
    if init == "kaiming_normal":
        return 2.0, 0.0
    raise ValueError(f"unknown init {init!r}")


def _abs_over_rms(init):
    """E|w| / rms(w) of the init's weight distribution (uniform or normal)."""
    return _SQRT_2_OVER_PI if init == "kaiming_normal" else math.sqrt(3) / 2


# ------------------------------------------------------------------ the theory

def _layers(depth, width):
    """(fan_in, fan_out) of each layer: layer_sizes = [width] * depth + [1]."""
    sizes = [width] * depth + [1]
    return list(zip(sizes[:-1], sizes[1:]))


def _forward(depth, width, activation, shortcut, lam, init, alpha=1.0):
    """Forward moments, layer by layer: q_in, abs_in (E|x_{l-1}|), q_h,
    has_shortcut, gamma (fan_out Var(W)), alpha (the layer's branch scale,
    1 without a shortcut).  See the module docstring."""
    phi = ACTIVATIONS_NP[activation][0]
    x0 = np.linspace(1, -1, width)
    q_x, m_x = float(np.mean(x0 ** 2)), float(np.mean(x0))
    abs_x = float(np.mean(np.abs(x0)))
    x0_coef, branch_var = 1.0, 0.0  # shortcut stream = x0_coef x_0 + branch sum
    rows = []
    for n_in, n_out in _layers(depth, width):
        sigma_w2, sigma_b2 = weight_variance(init, n_in, n_out)
        q_h = sigma_w2 * q_x + sigma_b2
        has_shortcut = bool(shortcut) and lam != 0 and n_in == n_out
        rows.append({"q_in": q_x, "m_in": m_x, "abs_in": abs_x, "q_h": q_h,
                     "has_shortcut": has_shortcut,
                     "gamma": sigma_w2 * n_out / n_in, "alpha": alpha if has_shortcut else 1.0})
        mean_f = gauss_mean(phi, q_h)
        mean_f2 = gauss_mean(lambda h: phi(h) ** 2, q_h)
        if has_shortcut:
            q_x = lam ** 2 * q_x + 2 * lam * alpha * m_x * mean_f + alpha ** 2 * mean_f2
            m_x = lam * m_x + alpha * mean_f
            x0_coef *= lam
            branch_var = lam ** 2 * branch_var + alpha ** 2 * (mean_f2 - mean_f ** 2)
            branch_mean = m_x  # x_0 has mean 0: the stream's mean is the branches'
            abs_x = float(np.mean(_folded_normal_mean(x0_coef * x0 + branch_mean, branch_var)))
        else:
            q_x, m_x = mean_f2, mean_f
            abs_x = gauss_mean(lambda h: np.abs(phi(h)), q_h)
            x0_coef, branch_var = 0.0, mean_f2 - mean_f ** 2
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


def mean_field(depth, width, activation="gelu_tanh", shortcut=False, shortcut_scale=1.0,
               init="pytorch", branch_scale=1.0):
    """The mean-field moments of every layer (see the module docstring).

    branch_scale is alpha of x = lam x + alpha f(x): a number, or a label of
    records.Cell ("0.1", "1/sqrt(depth)"), resolved with `depth`.  The
    prediction assumes the gradient independent of the stream; with a GELU
    shortcut it is not (the module docstring), so the backward gain is
    underestimated, the more so the larger alpha.

    Returns a dict of length-depth arrays, entry l for layer l:
      q_in, abs_in   mean square and mean |.| of its input x_{l-1},
      m_in           the mean of x_{l-1} (m_in^2 / q_in: the stream's shared offset),
      q_h            variance of its pre-activation h_l,
      dphi2, dphi_abs  E[phi'(h_l)^2], E|phi'(h_l)|,
      q_g            mean square of g_l = dL/dx_l per unit, relative to the
                     output's c = dL/dh_last (q_g[depth-1] is nan: unused),
      kappa          E|g_l| / sqrt(q_g(l)),
      has_shortcut, gamma, alpha.
    """
    lam = shortcut_scale
    alpha = branch_value(branch_scale, depth) if isinstance(branch_scale, str) else branch_scale
    mf = _forward(depth, width, activation, shortcut, lam, init, float(alpha))
    dphi = ACTIVATIONS_NP[activation][1]
    mf["dphi2"] = np.array([gauss_mean(lambda h: dphi(h) ** 2, q) for q in mf["q_h"]])
    mf["dphi_abs"] = np.array([gauss_mean(lambda h: np.abs(dphi(h)), q) for q in mf["q_h"]])
    q_g = np.full(depth, np.nan)
    kappa = np.full(depth, _SQRT_2_OVER_PI)
    if depth >= 2:
        # g_{depth-2} = c * (last weight row) (+ lam c if the last layer had a shortcut)
        q_g[depth - 2] = (lam ** 2 + mf["alpha"][-1] ** 2 * mf["gamma"][-1]
                          if mf["has_shortcut"][-1] else mf["gamma"][-1])
        kappa[depth - 2] = _abs_over_rms(init)
    for l in range(depth - 3, -1, -1):
        gain = mf["gamma"][l + 1] * mf["dphi2"][l + 1]
        if mf["has_shortcut"][l + 1]:
            gain = lam ** 2 + mf["alpha"][l + 1] ** 2 * gain
        q_g[l] = gain * q_g[l + 1]
    mf["q_g"], mf["kappa"] = q_g, kappa
    return mf


def _check_norm(norm):
    if norm not in ("none",) + NORMS_WITHOUT_PREDICTION:
        raise ValueError(f"unknown norm {norm!r}")
    return norm == "none"


def predicted_profile(depth, width, activation="gelu_tanh", shortcut=False,
                      shortcut_scale=1.0, init="pytorch", norm="none", statistic="abs",
                      branch_scale=1.0):
    """Predicted grad_abs_mean per layer, up to a constant: a length-depth
    array divided by its last entry (the last, width -> 1 layer is 1).

    statistic="abs":  s_l = E|phi'(h_l)| kappa_l sqrt(q_g(l)) E|x_{l-1}|
    statistic="rms":  s_l = sqrt(E[phi'(h_l)^2] q_g(l) q_x(l-1))
    statistic="bias": s_l = E|phi'(h_l)| kappa_l sqrt(q_g(l))  (mean |dL/db_l|)
    each times alpha on a layer with a shortcut (formulas and approximations:
    the module docstring).  None for pre_layernorm: no mean-field prediction.
    """
    if not _check_norm(norm):
        return None
    if statistic not in STATISTICS:
        raise ValueError(f"unknown statistic {statistic!r}; use one of {STATISTICS}")
    mf = mean_field(depth, width, activation, shortcut, shortcut_scale, init, branch_scale)
    if statistic == "abs":
        s = mf["alpha"] * mf["dphi_abs"] * mf["kappa"] * np.sqrt(mf["q_g"]) * mf["abs_in"]
        s[-1] = mf["abs_in"][-1]
    elif statistic == "bias":
        s = mf["alpha"] * mf["dphi_abs"] * mf["kappa"] * np.sqrt(mf["q_g"])
        s[-1] = 1.0
    else:
        s = mf["alpha"] * np.sqrt(mf["dphi2"] * mf["q_g"] * mf["q_in"])
        s[-1] = np.sqrt(mf["q_in"][-1])
    return s / s[-1]


def predicted_layer_factor(depth, width, activation="gelu_tanh", shortcut=False,
                           shortcut_scale=1.0, init="pytorch", norm="none", layers=None,
                           statistic="abs", branch_scale=1.0):
    """fit_layer_factor(predicted_profile(...), layers): the predicted factor
    grad[l] / grad[l+1] toward the input.  `layers` defaults to the hidden
    layers 0..depth-2 (the width -> 1 last layer excluded; needs depth >= 3).
    branch_scale: alpha, a number or a records.Cell label.  None for
    pre_layernorm.  With a GELU shortcut the prediction assumes the gradient
    independent of the stream, which it is not (the module docstring)."""
    profile = predicted_profile(depth, width, activation, shortcut, shortcut_scale, init,
                                norm, statistic, branch_scale)
    if profile is None:
        return None
    if layers is None:
        if depth < 3:
            raise ValueError("the default fit over the hidden layers needs depth >= 3")
        layers = range(depth - 1)
    return fit_layer_factor(profile, layers)


# ----------------------------------------------------- fixed point, chi_1, xi

_Q_FLOOR = 1e-100  # stands for q* = 0+ (sigma_b = 0 in the ordered phase)


def fixed_point(activation, sigma_w2, sigma_b2, q0=1.0, tol=1e-12, max_iter=10_000):
    """q* of q <- sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 (no shortcut), by
    iteration from q0.  When q* = 0 the iteration ends at a tiny positive q:
    the q -> 0+ limit."""
    phi = ACTIVATIONS_NP[activation][0]
    q = q0
    for _ in range(max_iter):
        q_next = max(sigma_w2 * gauss_mean(lambda h: phi(h) ** 2, q) + sigma_b2, _Q_FLOOR)
        if abs(q_next - q) <= tol * q_next or q_next == _Q_FLOOR:
            return q_next
        q = q_next
    return q


def chi1(activation, init="pytorch", width=None):
    """chi_1 = sigma_w^2 E[phi'(h)^2], h ~ N(0, q*), at the fixed point q* of
    the network without shortcut (Schoenholz et al. 2017, eq. 8): the per-layer
    gain of the gradient's mean square deep in a plain network (its mean |.|
    gains sqrt(chi_1)).  `width` enters through the pytorch init's bias
    variance 1/(3 width); None is the infinite-width limit (sigma_b^2 = 0)."""
    if width is None:
        sigma_w2, sigma_b2 = weight_variance(init, 1, 1)[0], 0.0
    else:
        sigma_w2, sigma_b2 = weight_variance(init, width, width)
    dphi = ACTIVATIONS_NP[activation][1]
    q_star = fixed_point(activation, sigma_w2, sigma_b2)
    return sigma_w2 * gauss_mean(lambda h: dphi(h) ** 2, q_star)


def depth_scale(activation, init="pytorch", width=None):
    """xi = -1 / log chi_1 (Schoenholz et al. 2017): the number of layers over
    which the gradient's mean square changes by a factor e.  Positive when it
    vanishes (chi_1 < 1), negative when it explodes, inf at chi_1 = 1 (to
    rounding: |chi_1 - 1| < 1e-12)."""
    c = chi1(activation, init, width)
    return math.inf if abs(c - 1) < 1e-12 else -1.0 / math.log(c)
