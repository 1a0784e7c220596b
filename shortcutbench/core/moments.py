"""Moments triples (n, mean, m2), m2 being the sum of squared deviations
from the mean, combined with Chan et al.'s parallel formula (`combine`):
the merged mean and variance of two sets equal the whole set's to rounding.

numpy only.
"""

import math

import numpy as np

# (n, mean, m2): a count, the mean and the sum of squared deviations of a
# group's values; combined across chunks exactly (Chan et al.).
Moments = tuple[int, float, float]


def moments(values) -> Moments:
    """(n, mean, m2) of the values: m2 = sum of squared deviations."""
    values = np.asarray(values, dtype=float).reshape(-1)
    n = len(values)
    if n == 0:
        return 0, math.nan, math.nan
    mean = float(values.mean())
    return n, mean, float(np.sum((values - mean) ** 2))


def combine(a: Moments, b: Moments) -> Moments:
    """Two moments triples -> the triple of both sets (Chan et al. 1979)."""
    na, ma, m2a = a
    nb, mb, m2b = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def _group_moments(group, values, mask, n_groups):
    """Per group: (n, mean, m2) of values[mask], vectorised."""
    group, values = group[mask], values[mask]
    n = np.bincount(group, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(group, values, minlength=n_groups) / n
    m2 = np.bincount(group, (values - mean[group]) ** 2, minlength=n_groups)
    m2 = np.where(n > 0, m2, np.nan)
    return n, mean, m2


def usable(values):
    with np.errstate(invalid="ignore"):
        return np.isfinite(values) & (values > 0)


def _log10(values, mask):
    out = np.zeros(len(values))
    out[mask] = np.log10(values[mask])
    return out
