"""The report's vocabulary, shared by the tables, the figures and the page.

A *variant* is one value of every axis that is not depth, seed or the
shortcut arm (width, activation, init, norm, dtype, device); the arm is
core/arms.py's.  numpy only: no pandas, no torch.
"""

import numpy as np

from shortcutbench.core.book import BOOK_CASE
from shortcutbench.core.sweep import seed_runs

# In the order variants are sorted and labelled.
VARIANT_AXES = ("width", "activation", "init", "norm", "dtype", "device")
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


def variant_sort_key(variant):
    """The book's variant first, then by width, activation, init, norm, dtype, device."""
    return (variant != BOOK_VARIANT, *(str(variant[a]).zfill(12) if a == "width"
                                      else str(variant[a]) for a in VARIANT_AXES))


def variant_label(variant, swept):
    """'width 3', or with every other swept axis: 'width 3 · relu · cuda'."""
    parts = [f"width {variant['width']}"]
    for axis in VARIANT_AXES[1:]:
        if axis in swept:
            parts.append(str(variant[axis]))
    return " \u00b7 ".join(parts)


def overview_variants(variants, base, limit=6):
    """The variants the overview's many-panel figures (attenuation) show:
    all of them when there are at most `limit`, else `base` (the headline's)
    and those that differ from it on one axis only."""
    variants = sorted(variants, key=variant_sort_key)
    if len(variants) <= limit or base is None:
        return variants
    near = [v for v in variants
            if sum(v[a] != base[a] for a in VARIANT_AXES) <= 1]
    return sorted(near, key=lambda v: (v != base, variant_sort_key(v)))


def heatmap_variants(variants, base, limit=2):
    """The variants of the heat map: all of them when there are at most
    `limit`, else `base` alone."""
    variants = sorted(variants, key=variant_sort_key)
    if len(variants) <= limit or base is None:
        return variants
    return [base]


def headline_variant(tables):
    """The variant of the headline, the book section, the overview figures
    and the profile figure (the book's value on every axis that has it:
    tables.main_choice), from results/tables.json; else the first variant."""
    headline = tables.get("headline") or {}
    if headline.get("rows") and headline.get("main") is not None:
        return headline["rows"][headline["main"]]["variant"]
    variants = tables["sweep"].get("variants") or []
    return sorted(variants, key=variant_sort_key)[0] if variants else None
