"""95% t-intervals over seeds, shared by the summary, the report and the laws.

numpy and scipy.special only (scipy.stats alone costs ~0.6 s of import).
"""

import math

import numpy as np


def t975(df):
    """The 97.5% quantile of Student's t with `df` degrees of freedom."""
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.975))


def usable(values):
    """Which gradients can enter a log-scale statistic: finite and > 0."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def t_interval(values):
    """n, mean, std and the 95% t-interval of the mean, over the finite
    values only (NaN where there are too few)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    n = len(values)
    mean = values.mean() if n else np.nan
    std = values.std(ddof=1) if n > 1 else np.nan
    half = t975(n - 1) * std / np.sqrt(n) if n > 1 else np.nan
    return n, mean, std, mean - half, mean + half


def log10_interval(values):
    """Geometric mean of positive `values` and the 95% t-interval of the mean
    of their log10, back-transformed: (n, centre, low, high, log10_sd).
    low/high are NaN with fewer than two values."""
    logs = np.log10(np.asarray(values, dtype=float))
    n = len(logs)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(logs.mean())
    if n == 1:
        return 1, 10.0 ** mean, math.nan, math.nan, math.nan
    sd = float(logs.std(ddof=1))
    half = t975(n - 1) * sd / math.sqrt(n)
    return n, 10.0 ** mean, 10.0 ** (mean - half), 10.0 ** (mean + half), sd


def moments_interval(n, mean, m2):
    """The t_interval of values known only by their moments: n, their mean
    and m2 (the sum of squared deviations from it) -> (n, mean, std, low,
    high), NaN where there are too few.  On log10 moments, 10**mean is the
    geometric mean and 10**low, 10**high its 95% interval
    (log10_moments_interval)."""
    n = int(n)
    if n == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    mean = float(mean)
    if n == 1:
        return 1, mean, math.nan, math.nan, math.nan
    std = math.sqrt(max(float(m2), 0.0) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return n, mean, std, mean - half, mean + half


def log10_moments_interval(n, mean, m2):
    """log10_interval from the moments of the log10 values: (n, geometric
    mean, low, high, log10_sd)."""
    n, mean, std, low, high = moments_interval(n, mean, m2)
    return n, 10.0 ** mean, 10.0 ** low, 10.0 ** high, std


def pool_moments(n, mean, m2):
    """The moments of the union of groups from each group's (n, mean, m2):
    n = sum n_i, mean = sum n_i mean_i / n, m2 = sum m2_i + sum n_i (mean_i -
    mean)^2 (Chan et al.'s combination, all groups at once).  Groups with
    n = 0 add nothing."""
    n = np.asarray(n, dtype=float)
    keep = n > 0
    n, mean, m2 = n[keep], np.asarray(mean, dtype=float)[keep], np.asarray(m2, dtype=float)[keep]
    total = n.sum()
    if total == 0:
        return 0, math.nan, math.nan
    centre = float(np.sum(n * mean) / total)
    return int(total), centre, float(np.sum(m2) + np.sum(n * (mean - centre) ** 2))
