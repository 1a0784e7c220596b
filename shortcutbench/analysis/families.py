"""Every model family through one path: the numbers of its report section.

From the merged partial results of the main sweep (results/partials.json),
the rows of one family (`model`), for any family alike, shipped or the
user's own:

- states: per variant, shortcut arm and depth, the cells in each state
  (core/states.py, the healthy band over the family's profile layers), the
  share of healthy ones, the first and last profile layer's gradient
  (geometric mean over seeds, 95% t-interval);
- ratios: the first layer's gradient with each shortcut arm over without,
  paired by seed, per variant and depth;
- profiles: at the deepest depth, per variant and arm, the gradient per
  profile layer (core/cell_stats.py's profile: the layer's profile
  parameter, or the element-weighted mean over a user block);
- words: what the main variant does at the deepest depth, per arm;
- outside: the parameters outside every block (layer -1) and the tied ones
  (one Parameter under several names), once each, with where they sit and
  why no cell state sees them.

A variant is one value of every axis but depth, seed and the arm
(analysis/variants.py); a family's main variant is the book's where it has
one (its spec's main_variant: what its section leads with), else
its first.  A family may add numbers and figures of its own through one hook
(its spec's analysis_hook).  No torch; the user's module is never imported.
"""

from __future__ import annotations

import math
from typing import Any

from shortcutbench.analysis import intervals
from shortcutbench.analysis.partials_frame import only_model
from shortcutbench.analysis.variants import (
    VARIANT_AXES,
    plain,
    variant_of,
    variant_sort_key,
)
from shortcutbench.analysis.words import POINT_VERBS, STATE_VERBS, breakdown, dominant_state
from shortcutbench.core import arms, families
from shortcutbench.core.arms import ARM_COLUMNS
from shortcutbench.core.states import STATE_COLUMNS, STATES

# Why a parameter outside every block is in no state, by where it sits
# among the model's parameters (partial results' `outside`).
OUTSIDE_WHY = {"before": "before the first block (an embedding or a stem)",
               "after": "after the last block (a final norm or the head)",
               "between": "between blocks, in none of them"}


def at_depth(name: str, depth: int) -> str:
    """'at 64 layers', 'at 32 blocks', 'at depth 8'."""
    word = families.spec(name).depth_name
    return f"at depth {depth}" if word == "depth" else f"at {depth} {word}"


def _number(x: Any) -> float | None:
    """A float for JSON; None where it is not finite."""
    x = float(x)
    return x if math.isfinite(x) else None


def _log_interval(n, mean, m2) -> dict[str, Any]:
    n, centre, low, high, _ = intervals.log10_moments_interval(n, mean, m2)
    return {"n": n, "gmean": _number(centre), "low": _number(low), "high": _number(high)}


def _variant(row) -> dict[str, Any]:
    return {axis: plain(row[axis]) for axis in VARIANT_AXES}


def variants_of(cells) -> list[dict[str, Any]]:
    keys = cells[list(VARIANT_AXES)].drop_duplicates().itertuples(index=False)
    return sorted((variant_of(k) for k in keys), key=variant_sort_key)


def main_variant(name: str, variants: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The variant a family's report leads with, one rule for its headline
    and its section: axis by axis, its spec's main value where the sweep
    has it, else the first value left (variants in variant_sort_key's
    order), so a sweep without the whole main variant leads with the one
    closest to it."""
    wanted = families.spec(name).main_variant
    left = list(variants)
    for axis in VARIANT_AXES:
        if not left:
            break
        values = [v[axis] for v in left]
        value = wanted[axis] if wanted.get(axis) in values else values[0]
        left = [v for v in left if v[axis] == value]
    return left[0] if left else None


def swept_axes(variants: list[dict[str, Any]]) -> list[str]:
    return [a for a in VARIANT_AXES if len({str(v[a]) for v in variants}) > 1]


def variant_text(variant: dict[str, Any], swept: list[str]) -> str:
    """The swept axes' values: 'width 3', 'pre_layernorm', 'width 32 · relu';
    'every cell' where nothing but depth, seed and the arm varies."""
    parts = [f"width {variant[a]}" if a == "width" else str(variant[a]) for a in swept]
    return " \u00b7 ".join(parts) if parts else "every cell"


def state_rows(cells, states=STATES) -> list[dict[str, Any]]:
    """Per variant, arm and depth: the states (those of `states`, the
    family's), the healthy share, and the first and last profile layer's
    gradient."""
    rows = []
    for r in cells.to_dict("records"):
        n = int(r["n_cells"])
        counts = {s: int(r[STATE_COLUMNS[s]]) for s in states}
        rows.append({
            "variant": _variant(r), "arm": arms.of(r).as_dict(), "depth": int(r["depth"]),
            "n": n, "counts": counts, "healthy": counts["healthy"] / n if n else None,
            "dominant": dominant_state(counts),
            "first": _log_interval(r["log10_first_grad_n"], r["log10_first_grad_mean"],
                                   r["log10_first_grad_m2"]),
            "last": _log_interval(r["log10_last_grad_n"], r["log10_last_grad_mean"],
                                  r["log10_last_grad_m2"])})
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]), arms.of(r["arm"]).sort_key(),
                             r["depth"]))
    return rows


def ratio_rows(pairs) -> list[dict[str, Any]]:
    """Per variant, shortcut arm and depth: the first layer's gradient with
    over without, paired by seed (geometric mean, 95% t-interval); seeds
    where either is 0 or not finite are counted, not used."""
    rows = []
    for r in pairs.to_dict("records"):
        ratio = _log_interval(r["n_usable"], r["log10_ratio_mean"], r["log10_ratio_m2"])
        rows.append({"variant": _variant(r), "depth": int(r["depth"]),
                     "arm": arms.arm(True, r["shortcut_scale"], r["branch_scale"]).as_dict(),
                     "pairs": int(r["n_pairs"]), "n": ratio["n"], "ratio": ratio["gmean"],
                     "low": ratio["low"], "high": ratio["high"],
                     "excluded": int(r["n_pairs"]) - ratio["n"]})
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]), arms.of(r["arm"]).sort_key(),
                             r["depth"]))
    return rows


def profile_rows(blocks, depth: int) -> list[dict[str, Any]]:
    """At `depth`, per variant and arm: the profile layers and the gradient
    of each (geometric mean over seeds, 95% t-interval)."""
    rows = []
    at = blocks[blocks["depth"] == depth]
    for _, group in at.groupby(list(VARIANT_AXES) + list(ARM_COLUMNS), sort=False):
        group = group.sort_values("layer")
        points = [_log_interval(n, m, m2) for n, m, m2 in zip(
            group["log10_n"], group["log10_mean"], group["log10_m2"])]
        first = group.iloc[0]
        rows.append({"variant": _variant(first), "arm": arms.of(first).as_dict(),
                     "depth": depth, "layers": [int(x) for x in group["layer"]],
                     "centre": [p["gmean"] for p in points], "low": [p["low"] for p in points],
                     "high": [p["high"] for p in points],
                     "n": [int(x) for x in group["n"]], "zero": [int(x) for x in group["n_zero"]]})
    rows.sort(key=lambda r: (variant_sort_key(r["variant"]), arms.of(r["arm"]).sort_key()))
    return rows


def outside_rows(outside, layout) -> list[dict[str, Any]]:
    """The parameters outside every block and the tied ones, once each (the
    deepest cells' where depths differ), in the model's order: name,
    element count, where it sits, its other names, and why no state sees
    it."""
    rows, seen = [], set()
    for r in outside.sort_values(["depth", "position"], ascending=[False, True],
                                 kind="stable").to_dict("records"):
        if r["param"] in seen:
            continue
        seen.add(r["param"])
        why = []
        if int(r["layer"]) < 0:
            why.append(OUTSIDE_WHY[r["side"]])
            if layout.is_head(r["param"]):
                why.append("the head, counted for a zero gradient and finiteness only")
        if r["tied"]:
            why.append(f"tied to {', '.join(r['tied'].split(','))}: one Parameter, recorded "
                       f"once under this name, its gradient the sum of every use")
        rows.append({"param": r["param"], "numel": int(r["numel"]), "layer": int(r["layer"]),
                     "side": r["side"], "tied": [t for t in r["tied"].split(",") if t],
                     "why": "; ".join(why), "order": (list(OUTSIDE_WHY).index(r["side"]),
                                                       int(r["position"]))})
    rows.sort(key=lambda r: r.pop("order"))
    return rows


def what_happens(name: str, state: str) -> str:
    """'the network explodes', or, where the family's layers are read by one
    of their parameters, what happens to that parameter's gradient: 'the
    att.W_query.weight gradient vanishes (vanished)'."""
    point = families.spec(name).layout.point
    if point and state in POINT_VERBS:
        return f"the {point} gradient {POINT_VERBS[state]}"
    return f"the network {STATE_VERBS[state]}"


def words(name: str, states: list[dict[str, Any]], variant, deepest: int) -> list[str]:
    """What the main variant does at the deepest depth, one sentence per arm."""
    scales, branches = arms.knobs(r["arm"] for r in states)
    sentences = []
    for r in states:
        if r["variant"] != variant or r["depth"] != deepest or not r["n"]:
            continue
        arm = arms.of(r["arm"])
        knobs = arms.label(arm, scales, branches).partition(", ")[2]  # "λ=0.5, α=0.1"
        subject = ("Without shortcuts" if not arm.shortcut
                   else "With shortcuts" + (f" ({knobs})" if knobs else ""))
        sentences.append(f"{subject}, {what_happens(name, r['dominant'])} "
                         f"{at_depth(name, deepest)}: "
                         f"{breakdown(r['counts'], r['n'], r['dominant'])}.")
    return sentences


def family_numbers(frames: dict, name: str, section: dict[str, Any] | None = None,
                   seeds: list[int] | None = None) -> dict[str, Any]:
    """One family's numbers (see the module's doc), from the merged partial
    results' frames (analysis/partials_frame.read_partials); `section`: its
    config section, shown as it ran."""
    mine = only_model(frames, name)
    cells, pairs, blocks, outside = mine["cells"], mine["pairs"], mine["blocks"], mine["outside"]
    if cells.empty:
        raise ValueError(f"the merged partial results hold no {name} cells; is {name} in the "
                         f"config's models?")
    variants = variants_of(cells)
    swept = swept_axes(variants)
    main = main_variant(name, variants)
    deepest = int(cells["depth"].max())
    spec = families.described(name, section)
    states = state_rows(cells, spec.layout.states)
    return {
        "name": name, "title": spec.title, "depth_name": spec.depth_name,
        "point": spec.layout.point,
        "healthy_rule": spec.layout.band_text(), "states_order": list(spec.layout.states),
        "section": section or {}, "seeds": seeds or [],
        "n_cells": int(cells["n_cells"].sum()),
        "depths": sorted(int(d) for d in cells["depth"].unique()), "deepest": deepest,
        "variants": variants, "swept": swept, "main": main,
        "labels": [variant_text(v, swept) for v in variants],
        "arms": [a.as_dict() for a in arms.ordered(r["arm"] for r in states)],
        "states": states, "ratios": ratio_rows(pairs),
        "profiles": profile_rows(blocks, deepest),
        "words": words(name, states, main, deepest),
        "outside": outside_rows(outside, spec.layout) if len(outside) else [],
    }
