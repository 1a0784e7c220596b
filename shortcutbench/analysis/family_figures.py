"""Every family's figures, drawn alike from its numbers (analysis/families.py):

- profile: the gradient per profile layer at the deepest depth, one panel
  per variant, one line per shortcut arm (geometric mean over seeds, 95%
  t-interval as a band);
- healthy: the share of healthy cells against depth;
- first: the first profile layer's gradient against depth (geometric mean,
  95% t-interval).

`make_families` is rule `families`: results/families.json (every family's
numbers, and what its hook adds) and these figures, plus the hook's own, for
every family the config's models list; the numbers only of a family whose
spec draws no generic figures (its own rules draw richer ones).  No torch.
"""

from __future__ import annotations

import numpy as np

from shortcutbench.analysis import families as numbers_of
from shortcutbench.analysis.partials_frame import facts, read_partials
from shortcutbench.analysis.style import Arms, empty, grid, header, log_y, save, setup
from shortcutbench.analysis.variants import overview_variants
from shortcutbench.core import arms as arm_forms
from shortcutbench.core import families
from shortcutbench.core.families import NUMBERS_FORMAT
from shortcutbench.core.files import write_json

MAX_PANELS = 6


def shown(numbers: dict) -> list[dict]:
    """The variants the figures show: all of them up to MAX_PANELS, else the
    main one and those that differ from it on one axis."""
    return overview_variants(numbers["variants"], numbers["main"], MAX_PANELS)


def _label(numbers, variant):
    return numbers["labels"][numbers["variants"].index(variant)]


def _floats(values):
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _panels(numbers, variants, xlabel, legend):
    fig, axes = grid(len(variants), 3, panel=(2.9, 2.1), top=1.0, bottom=0.65, left=1.0,
                     wspace=0.8, hspace=0.75, legend=legend)
    for ax, variant in zip(axes, variants):
        if numbers["swept"]:
            ax.set_title(_label(numbers, variant))
        ax.set_xlabel(xlabel)
    return fig, axes


def _band(ax, x, centre, low, high, color, label=None, marker="o"):
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.sum() > 1:
        ax.fill_between(x[ok], low[ok], high[ok], color=color, alpha=0.22, lw=0)
    elif ok.any():
        ax.errorbar(x[ok], centre[ok], yerr=[centre[ok] - low[ok], high[ok] - centre[ok]],
                    color=color, fmt="none", capsize=3)
    ax.plot(x, centre, color=color, lw=1.8, marker=marker if len(x) <= 24 else None,
            markersize=3.5, label=label)


def profile_figure(numbers: dict):
    """The gradient per profile layer at the deepest depth."""
    setup()
    arms = Arms(numbers["arms"])
    variants = shown(numbers)
    xlabel = {"layers": "layer", "blocks": "block"}.get(numbers["depth_name"], "block")
    fig, axes = _panels(numbers, variants, xlabel, len(arms))
    for ax, variant in zip(axes, variants):
        anything = False
        for row in numbers["profiles"]:
            if row["variant"] != variant:
                continue
            centre = _floats(row["centre"])
            anything |= bool(np.isfinite(centre).any())
            _band(ax, np.asarray(row["layers"], dtype=float), centre, _floats(row["low"]),
                  _floats(row["high"]), arms.color(row["arm"]))
        log_y(ax, numticks=5)
        if not anything:
            empty(ax, "no finite, non-zero\ngradient")
    axes[0].set_ylabel("mean |grad|")
    where = numbers_of.at_depth(numbers["name"], numbers["deepest"])
    header(fig, f"{numbers['title']}: gradient per layer {where}", arms)
    return fig


def _against_depth(numbers, draw, ylabel, title, log=False):
    setup()
    arms = Arms(numbers["arms"])
    variants = shown(numbers)
    fig, axes = _panels(numbers, variants, numbers["depth_name"], len(arms))
    for ax, variant in zip(axes, variants):
        for arm in arms:
            rows = sorted((r for r in numbers["states"] if r["variant"] == variant
                           and arm_forms.of(r["arm"]) == arm), key=lambda r: r["depth"])
            if rows:
                draw(ax, rows, arms.color(arm))
        if len(numbers["depths"]) > 2 and max(numbers["depths"]) >= 8 * min(numbers["depths"]):
            ax.set_xscale("log", base=2)
        if log:
            log_y(ax, numticks=5)
    axes[0].set_ylabel(ylabel)
    header(fig, f"{numbers['title']}: {title}", arms)
    return fig


def healthy_figure(numbers: dict):
    """The share of healthy cells against depth."""
    def draw(ax, rows, color):
        x = np.array([r["depth"] for r in rows], dtype=float)
        y = _floats([r["healthy"] for r in rows])
        ax.plot(x, y, color=color, lw=1.8, marker="o", markersize=3.5)
        ax.set_ylim(-0.04, 1.04)
        ax.set_yticks([0, 0.5, 1], ["0", "50%", "100%"])

    return _against_depth(numbers, draw, "healthy share of seeds", "healthy cells against depth")


def first_figure(numbers: dict):
    """The first profile layer's gradient against depth."""
    def draw(ax, rows, color):
        x = np.array([r["depth"] for r in rows], dtype=float)
        _band(ax, x, _floats([r["first"]["gmean"] for r in rows]),
              _floats([r["first"]["low"] for r in rows]),
              _floats([r["first"]["high"] for r in rows]), color)

    return _against_depth(numbers, draw, "first layer's mean |grad|",
                          "the first layer's gradient against depth", log=True)


DRAW = {"profile": profile_figure, "healthy": healthy_figure, "first": first_figure}


def analysis_hook(name):
    """What a family's analysis adds (its spec's `analysis_hook`):
    hook(frames, numbers) -> (its numbers, {figure name: figure}); None
    where it adds nothing.  Its figures are declared in the spec
    (extra_figures), so that the workflow knows them before any job runs."""
    where = families.spec(name).analysis_hook
    return None if where is None else families.resolve(where)


def make_families(partials_path, names, sections, json_path, stems):
    """Rule families: results/partials.json -> results/families.json and,
    per family, its figures (stems: {family: {figure: path without
    extension}}: its spec's generic figures and its hook's)."""
    frames = read_partials(partials_path)
    seeds = facts(frames["cells"]).get("family_seeds", {})
    band = facts(frames["cells"]).get("band")
    out = []
    for name in names:
        numbers = numbers_of.family_numbers(frames, name, sections.get(name),
                                            seeds.get(name))
        for figure in families.spec(name).generic_figures:
            save(DRAW[figure](numbers), stems[name][figure])
        hook = analysis_hook(name)
        if hook is not None:
            extra, figures = hook(frames, numbers)
            numbers["extra"] = extra
            for figure, fig in figures.items():
                save(fig, stems[name][figure])
        out.append(numbers)
    # megabytes for a sweep of many variants, read by the report: compact
    write_json({"format": NUMBERS_FORMAT, "band": band, "families": out}, json_path,
               compact=True)
    return out
