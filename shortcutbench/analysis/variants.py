"""The report's vocabulary, shared by the tables, the figures and the page.

A *variant* is one value of every axis that is not depth, seed or shortcut
(width, activation, init, norm, dtype, device); an *arm* is the shortcut
choice: without, or with a shortcut of scale lambda (x = lambda * x +
layer(x); the book's is lambda = 1).  numpy only: no pandas, no torch.
"""

import numpy as np

from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.sweep import seed_runs

# In the order variants are sorted and labelled.
VARIANT_AXES = ("width", "activation", "init", "norm", "dtype", "device")
ARM_AXES = ("shortcut", "shortcut_scale")
BOOK_SCALE = 1.0
# The variant the headline is about when the sweep has it: the book's.
BOOK_VARIANT = {axis: BOOK_CASE[axis] for axis in VARIANT_AXES}


def describe_seeds(seeds):
    """[100, 101, 102, 105] -> '100\u2013102, 105' (for people; a chunk's
    file name uses sweep.seeds_slug)."""
    return ", ".join(str(a) if a == b else f"{a}\u2013{b}" for a, b in seed_runs(seeds))


def plain(value):
    """numpy scalars -> plain Python, for JSON."""
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def variant_of(key):
    """A groupby key over VARIANT_AXES -> {axis: value}."""
    return {axis: plain(value) for axis, value in zip(VARIANT_AXES, key)}


def arm_of(shortcut, scale):
    return {"shortcut": bool(shortcut), "scale": float(scale) if shortcut else 0.0}


def variant_sort_key(variant):
    """The book's variant first, then by width, activation, init, norm, dtype, device."""
    return (variant != BOOK_VARIANT, *(str(variant[a]).zfill(12) if a == "width"
                                      else str(variant[a]) for a in VARIANT_AXES))


def arm_sort_key(arm):
    """Without first, then the book's lambda = 1, then the other scales."""
    return (arm["shortcut"], arm["scale"] != BOOK_SCALE, arm["scale"])



def variant_label(variant, swept):
    """'width 3', or with every other swept axis: 'width 3 · relu · cuda'."""
    parts = [f"width {variant['width']}"]
    for axis in VARIANT_AXES[1:]:
        if axis in swept:
            parts.append(str(variant[axis]))
    return " \u00b7 ".join(parts)


def arm_label(shortcut, scale, scales=(BOOK_SCALE,), short=False):
    """'without shortcut', 'with shortcut', or 'with shortcut, λ=0.5' when
    the sweep has other scales than the book's 1."""
    word = "" if short else " shortcut"
    if not shortcut:
        return f"without{word}"
    if list(scales) == [BOOK_SCALE] and scale == BOOK_SCALE:
        return f"with{word}"
    return f"with{word}, \u03bb={scale:g}"

