"""The gradient profile: mean |grad| per layer, one panel per depth, one
colour per shortcut arm, for the headline's variant as a figure, and for
every variant as numbers (results/figures/profiles.json) that the page's
script draws for the variant a reader picks (drawing 60 variants here cost
~0.25 s each).  Read from results/summary.csv (geometric means, intervals,
log10 quantiles of the seeds' values) and results/lines.csv (at most ~50
single-seed profiles per group), never the records.  No torch.
"""

import numpy as np

from shortcutbench.analysis.mlp.merged_tables import arms_of, read_table, select
from shortcutbench.analysis.style import empty, grid, header, log_y, positive, pow10, save, setup
from shortcutbench.analysis.variants import VARIANT_AXES, headline_variant, variant_label
from shortcutbench.core import arms as arm_forms
from shortcutbench.core.arms import ARM_COLUMNS
from shortcutbench.core.files import read_json, write_json
from shortcutbench.core.partials import LINES

# log10 quantiles of the seeds' values in results/summary.csv
QUANTILES = ("q05", "q25", "q50", "q75", "q95")
# Quantile bands are drawn from this many seeds on; below it every seed is a line.
BAND_MIN_SEEDS = 10


MAX_LINES = LINES  # the single seeds the partial results keep per group


PROFILE_COLUMNS = ("layer", "n_finite", "log10_mean", "log10_ci95_low", "log10_ci95_high")


def variant_tuple(variant):
    return tuple(variant[axis] for axis in VARIANT_AXES)


def profile_data(summary, lines):
    """Every variant's profile as both drawings use it, in one pass over
    each table: {variant_tuple: (depths, centres, seeds)}, where per
    (depth, arm) `centres` holds the summary's columns by layer and `seeds`
    at most MAX_LINES single seeds' values, seeds x layers."""
    by = [*VARIANT_AXES, "depth", *ARM_COLUMNS]
    quantiles = QUANTILES if all(q in summary.columns for q in QUANTILES) else ()
    out = {}

    def entry(key):
        n = len(VARIANT_AXES)
        return (out.setdefault(tuple(key[:n]), (set(), {}, {})), int(key[n]),
                arm_forms.of(key[n + 1:]))

    # Sorted once, grouped once: positions within a group follow the layers
    # (and the seeds), and numpy arrays are cut by them, not frames.
    summ = summary.sort_values([*by, "layer"], kind="stable")
    columns = {c: summ[c].to_numpy(dtype=float) for c in (*PROFILE_COLUMNS, *quantiles)}
    for key, rows in summ.groupby(by, sort=False).indices.items():
        (depths, centres, _), depth, arm = entry(key)
        depths.add(depth)
        centres[(depth, arm)] = {c: values[rows] for c, values in columns.items()}
    if lines is not None and len(lines):
        lines = lines.sort_values([*by, "seed", "layer"], kind="stable")
        grads = positive(lines["grad_abs_mean"])
        for key, rows in lines.groupby(by, sort=False).indices.items():
            (_, _, seeds), depth, arm = entry(key)
            seeds[(depth, arm)] = grads[rows].reshape(-1, depth)[:MAX_LINES]
    return {v: (sorted(depths), centres, seeds) for v, (depths, centres, seeds) in out.items()}


def bands_of(line):
    """The bands around a centre line: where every layer has BAND_MIN_SEEDS
    seeds or more, the seeds' 5-95% (light) and 25-75% (dark) quantiles,
    else the 95% t-interval of the mean; as (low column, high column, alpha)."""
    if "q05" in line and np.nanmin(line["n_finite"]) >= BAND_MIN_SEEDS:
        return [("q05", "q95", 0.16), ("q25", "q75", 0.32)]
    return [("log10_ci95_low", "log10_ci95_high", 0.3)]


def profile_figure(summary, lines, variant, swept=(), arms=None, profiles=None):
    """Mean |grad| per layer, one panel per depth.  Per arm: the geometric
    mean over seeds (thick line); its bands (bands_of); at most MAX_LINES
    single seeds, faint.  profiles: what profile_data returned, if the
    caller has it; else this variant's rows are grouped here."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    setup()
    if profiles is None:
        profiles = profile_data(select(summary, variant),
                                select(lines, variant) if lines is not None else None)
    arms = arms or arms_of(select(summary, variant))
    depths, centres, seeds_of = profiles.get(variant_tuple(variant), ([], {}, {}))
    ncol = 4
    fig, axes = grid(len(depths), ncol, panel=(2.05, 1.45), top=0.95, bottom=0.6,
                     left=0.95, wspace=0.72, hspace=0.62, legend=len(arms))
    for depth, ax in zip(depths, axes):
        anything = False
        for arm in arms:
            color = arms.color(arm)
            values = seeds_of.get((depth, arm), np.empty((0, depth)))
            anything |= bool(np.isfinite(values).any())
            layers = np.arange(depth)
            alpha = 0.16 if len(values) <= 12 else 0.09
            if depth > 1 and len(values):
                segments = [np.column_stack([layers, v]) for v in values]
                ax.add_collection(LineCollection(segments, colors=color, alpha=alpha,
                                                 linewidths=0.6, zorder=1))
            elif len(values):
                ax.plot(np.zeros(len(values)), values[:, 0], "o", color=color, alpha=0.25,
                        ms=2.5, zorder=1)
            line = centres.get((depth, arm))
            if line is None:
                continue
            x = line["layer"]
            centre = pow10(line["log10_mean"])
            anything |= bool(np.isfinite(centre).any())
            if not np.isfinite(centre).any():
                continue
            for low, high, shade in bands_of(line):
                lo, hi = pow10(line[low]), pow10(line[high])
                if depth > 1:
                    ax.fill_between(x, lo, hi, color=color, alpha=shade, lw=0, zorder=2)
                elif np.isfinite(lo).all() and np.isfinite(hi).all():
                    ax.errorbar(x, centre, yerr=[centre - lo, hi - centre], color=color,
                                capsize=3, lw=1.2, zorder=3, fmt="none")
            ax.plot(x, centre, color=color, lw=2, zorder=3,
                    marker="o" if depth <= 8 else None, ms=3.5)
        log_y(ax, numticks=4)
        if not anything:
            empty(ax, "no finite, non-zero\ngradient")
        else:
            ax.autoscale_view()
        pad = 0.5 if depth <= 2 else 0.03 * depth
        ax.set_xlim(-pad, depth - 1 + pad)
        if depth == 1:
            ax.set_xticks([0])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
        ax.set_title(f"depth {depth}")
    ncol = min(ncol, len(depths))
    for i, ax in enumerate(axes):
        if i % ncol == 0:
            ax.set_ylabel("mean |grad|")
        if i >= len(axes) - ncol:
            ax.set_xlabel("layer")
    header(fig, f"Gradient per layer \u2014 {variant_label(variant, swept)}", arms)
    return fig


def _log10_list(values):
    """log10 values rounded to 3 decimals (0.1% of a value, far finer than
    a pixel of the drawing), None where not finite."""
    return [round(float(v), 3) if np.isfinite(v) else None for v in values]


# The single-seed values the page holds at most (~6 bytes each): with many
# variants, fewer seeds' lines per depth and arm, so that the page stays small.
PAGE_LINE_VALUES = 300_000


def page_lines(profiles):
    """How many single seeds per (depth, arm) the page gets: MAX_LINES, or
    fewer where every variant's lines would hold more than PAGE_LINE_VALUES."""
    shapes = [values.shape for _, _, seeds in profiles.values() for values in seeds.values()]
    for lines in range(MAX_LINES, 0, -1):
        if sum(min(n, lines) * depth for n, depth in shapes) <= PAGE_LINE_VALUES:
            return lines
    return 0


def profile_numbers(profiles, variant, arms, swept=(), lines=MAX_LINES):
    """One variant's profile as numbers for the page's script, which draws
    it like profile_figure: per depth, per arm (an index into `arms`), the
    log10 of the centre line, of its bands and of at most `lines` single
    seeds.  profiles: what profile_data returned."""
    depths, centres, seeds_of = profiles.get(variant_tuple(variant), ([], {}, {}))
    panels = []
    for depth in depths:
        series = []
        for index, arm in enumerate(arms):
            line = centres.get((depth, arm))
            values = seeds_of.get((depth, arm), np.empty((0, depth)))[:lines]
            if line is None and not len(values):
                continue
            with np.errstate(divide="ignore", invalid="ignore"):
                logged = np.log10(values)
            series.append({
                "arm": index,
                "centre": _log10_list(line["log10_mean"]) if line is not None else [],
                "bands": [[_log10_list(line[low]), _log10_list(line[high]), shade]
                          for low, high, shade in bands_of(line)] if line is not None else [],
                "lines": [_log10_list(v) for v in logged]})
        panels.append({"depth": depth, "series": series})
    return {"variant": variant, "label": variant_label(variant, swept), "panels": panels}


def make_profiles(summary_path, lines_path, tables_path, stem, json_path, partials_path=None):
    """Rule figures: the profile figure of the headline's variant
    (stem.svg, stem.png), and every variant's profile as numbers
    (json_path), which the page's variant picker draws."""
    summary = read_table(summary_path, partials_path)
    lines = read_table(lines_path, partials_path)
    data = read_json(tables_path)
    swept = data["sweep"]["swept"]
    variants = data["sweep"]["variants"]
    arms = arms_of(summary)
    profiles = profile_data(summary, lines)
    save(profile_figure(summary, lines, headline_variant(data), swept, arms, profiles), stem)
    shown = page_lines(profiles)
    numbers = {"arms": [{"label": arms.label(arm), "color": arms.color(arm)} for arm in arms],
               "lines": shown,
               "variants": [profile_numbers(profiles, v, arms, swept, shown) for v in variants]}
    write_json(numbers, json_path, compact=True)
