"""The report's figures, drawn with seaborn (matplotlib).  No torch.

They read the small merged results only, never the tidy records, so that no
figure and no file grows with the number of seeds:

* results/summary.csv: per everything-but-seed x layer, the geometric mean
  (log10_mean) with its 95% t-interval and the log10 quantiles q05, q25, q50,
  q75, q95 of the seeds' values;
* results/lines.csv: at most ~50 single-seed profiles per group;
* results/tables.json: the numbers the report prints (headline, states,
  attenuation), so that figure and page show the same.

Two jobs draw them, side by side on two cores:

* `make_profiles`: the gradient profile (mean |grad| per layer, log y) of
  the headline's variant, faceted by depth, one colour per shortcut arm
  (without; with, per lambda and alpha); and every variant's profile as
  numbers (results/figures/profiles.json) that the page's script draws for
  the variant a reader picks: drawing 60 variants here cost ~0.25 s each.
* `make_overview`: the cell states by depth of the headline's variant, the
  effect of each swept axis at the deepest depth, the attenuation with depth
  and the layer x depth heat map.

Every figure is saved as SVG and PNG with fixed metadata, so the same data
give the same bytes.
"""

import sys
from pathlib import Path

import numpy as np

from shortcutbench.analysis.variants import (
    BOOK_BRANCH,
    BOOK_SCALE,
    VARIANT_AXES,
    arm_key,
    arm_label,
    arm_sort_key,
    branch_text,
    headline_variant,
    heatmap_variants,
    overview_variants,
    variant_label,
)
from shortcutbench.core.files import atomic_write, read_json, write_json
from shortcutbench.core.imports import blocked_imports
from shortcutbench.core.partials import LINES
from shortcutbench.core.states import SMALLEST_NORMAL, STATES

# seaborn's colorblind palette: orange without shortcut, blue with the book's
# shortcut (lambda = 1, alpha = 1), the other colours for other arms.
WITHOUT_COLOR = "#de8f05"
WITH_COLOR = "#0173b2"
OTHER_COLORS = ("#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494", "#56b4e9", "#fbafe4",
                "#ece133")
# One colour per cell state (core.states.STATES), colour-blind safe.
STATE_COLORS = {"healthy": "#029e73", "vanished": "#56b4e9", "exploded": "#d55e00",
                "dead": "#3d3d3d", "non-finite": "#cc78bc"}
ARM_COLUMNS = ("shortcut", "shortcut_scale", "branch_scale")
BOOK_ARM = (True, BOOK_SCALE, BOOK_BRANCH)
WITHOUT_ARM = (False, 0.0, BOOK_BRANCH)
# log10 quantiles of the seeds' values in results/summary.csv
QUANTILES = ("q05", "q25", "q50", "q75", "q95")
# Quantile bands are drawn from this many seeds on; below it every seed is a line.
BAND_MIN_SEEDS = 10
SMALLEST_FLOAT32_NORMAL = SMALLEST_NORMAL["float32"]


class Arms:
    """The shortcut arms of a sweep: their order, labels and colours.

    An arm is a triple (shortcut, lambda, alpha label); without shortcut it
    is (False, 0.0, "1").  Labels name lambda and alpha only where the sweep
    has values other than the book's."""

    def __init__(self, arms):
        keys = {_arm(a) for a in arms}
        self.arms = sorted(keys, key=lambda a: arm_sort_key(
            {"shortcut": a[0], "scale": a[1], "branch": a[2]}))
        self.scales = sorted({a[1] for a in keys if a[0]}) or [BOOK_SCALE]
        self.branches = sorted({a[2] for a in keys if a[0]}) or [BOOK_BRANCH]
        self._others = [a for a in self.arms if a[0] and a != BOOK_ARM]

    def __iter__(self):
        return iter(self.arms)

    def __len__(self):
        return len(self.arms)

    def label(self, arm, short=False):
        f, scale, branch = _arm(arm)
        return arm_label(f, scale, self.scales, short=short, branch=branch,
                         branches=self.branches)

    def color(self, arm):
        arm = _arm(arm)
        if not arm[0]:
            return WITHOUT_COLOR
        if arm == BOOK_ARM:
            return WITH_COLOR
        index = self._others.index(arm) if arm in self._others else 0
        return OTHER_COLORS[index % len(OTHER_COLORS)]


def _arm(arm):
    if isinstance(arm, dict):
        return arm_key(arm)
    f, scale, *branch = arm
    if not f:
        return WITHOUT_ARM
    return (True, float(scale), str(branch[0]) if branch else BOOK_BRANCH)


def arms_of(frame):
    """The arms in a frame with columns shortcut, shortcut_scale, branch_scale."""
    return Arms(frame[list(ARM_COLUMNS)].drop_duplicates().itertuples(index=False))


def arm_mask(frame, arm):
    f, scale, branch = _arm(arm)
    mask = frame["shortcut"].to_numpy(dtype=bool) == f
    if f:
        mask &= frame["shortcut_scale"].to_numpy(dtype=float) == scale
        mask &= frame["branch_scale"].astype(str).to_numpy() == branch
    return mask


def select(frame, variant):
    """The rows of one variant."""
    mask = np.ones(len(frame), dtype=bool)
    for axis in VARIANT_AXES:
        mask &= (frame[axis] == variant[axis]).to_numpy()
    return frame[mask]


def read_table(path, partials_path=None):
    """results/summary.csv or results/lines.csv, alpha kept as its label:
    the MLP's rows (the GPT family's figures are analysis/figures_gpt.py's).
    partials_path: the merged partials.json, whose files_sha256 the file
    must match (a row removed or a number edited is refused by name)."""
    import pandas as pd

    if partials_path is not None:
        from shortcutbench.core.store import verify

        recorded = read_json(partials_path).get("files_sha256", {}).get(Path(path).name)
        if recorded is None:
            raise ValueError(f"{partials_path} records no sha256 of {path}: it was made by an "
                             f"older shortcutbench; run snakemake again with --forcerun merge")
        verify(path, recorded)
    table = pd.read_csv(path, dtype={"branch_scale": str})
    if "model" in table:
        table = table[table["model"] == "mlp"].reset_index(drop=True)
    return table


RC = {
    # Same data -> same bytes: a fixed salt for the SVG's ids, no dates.
    "svg.hashsalt": "shortcutbench",
    # Text as text, not as glyph paths: half the size of a figure, and
    # selectable; the font list ends in sans-serif.
    "svg.fonttype": "none",
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 10,
    "figure.titlesize": 12,
    "axes.titleweight": "bold",
    # A fixed title height: matplotlib otherwise measures every tick label
    # to place each title, the slowest part of drawing a many-panel figure.
    "axes.titley": 1.02,
}


def _import_seaborn():
    """Import seaborn without scipy.stats.

    seaborn imports scipy.stats (~0.6 s, a third of this job) only for
    kdeplot's gaussian_kde and falls back to its own copy when scipy.stats is
    missing; nothing here draws a KDE.  If some seaborn version cannot do
    without it, import it the ordinary way.
    """
    if "seaborn" in sys.modules:
        return sys.modules["seaborn"]
    try:
        with blocked_imports("scipy.stats", "scipy.cluster"):
            import seaborn
        return seaborn
    except ImportError:
        for name in [m for m in sys.modules if m == "seaborn" or m.startswith("seaborn.")]:
            del sys.modules[name]
        import seaborn
        return seaborn


_THEMED = []


def setup():
    """matplotlib without a display, seaborn's theme, our fixed rcParams
    (once per process: the theme copies every rcParam)."""
    import matplotlib

    sns = _import_seaborn()
    if not _THEMED:
        matplotlib.use("Agg")
        sns.set_theme(context="paper", style="whitegrid", palette="colorblind", rc=RC)
        _THEMED.append(True)
    return sns


def save(fig, stem):
    """stem.svg and stem.png, atomically, with metadata that does not change."""
    import matplotlib.pyplot as plt

    with atomic_write(f"{stem}.svg", "wb") as f:
        fig.savefig(f, format="svg", metadata={"Date": None})
    with atomic_write(f"{stem}.png", "wb") as f:
        # zlib level 1: a third of the time of the default, files ~1.5x larger.
        fig.savefig(f, format="png", metadata={"Software": None},
                    pil_kwargs={"compress_level": 1})
    plt.close(fig)


def _positive(values):
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(values) & (values > 0), values, np.nan)


def grid(n, ncol, panel=(2.3, 1.7), left=0.85, right=0.2, top=0.95, bottom=0.55,
         wspace=0.6, hspace=0.6, min_width=7.2, legend=0):
    """A figure with n panels in rows of ncol, every size in inches.

    No tight_layout: it measures every tick label of every panel, which costs
    more than drawing them.  Axis labels get fixed positions for the same
    reason.  A figure narrower than min_width (a title and a legend must fit)
    gets wider margins; `legend` entries beyond LEGEND_COLUMNS take more rows.
    Returns the figure and the n axes.
    """
    import matplotlib.pyplot as plt

    n = max(1, n)
    ncol = max(1, min(ncol, n))
    nrow = -(-n // ncol)
    top += 0.3 * max(0, -(-legend // LEGEND_COLUMNS) - 1)
    width = left + right + ncol * panel[0] + (ncol - 1) * wspace
    if width < min_width:
        left, right = left + (min_width - width) / 2, right + (min_width - width) / 2
        width = min_width
    height = top + bottom + nrow * panel[1] + (nrow - 1) * hspace
    fig, axes = plt.subplots(nrow, ncol, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height,
                        bottom=bottom / height, wspace=wspace / panel[0],
                        hspace=hspace / panel[1])
    axes = list(axes.flat)
    for ax in axes[n:]:
        ax.remove()
    for ax in axes[:n]:
        ax.xaxis.set_label_coords(0.5, -0.34 / panel[1])
        ax.yaxis.set_label_coords(-0.62 / panel[0], 0.5)
    return fig, axes[:n]


LEGEND_COLUMNS = 3


def header(fig, title, arms=(), handles=()):
    """The figure's title and, under it, the legend of the shortcut arms
    (an Arms) or of the given handles."""
    from matplotlib.lines import Line2D

    height = fig.get_figheight()
    fig.suptitle(title, y=1 - 0.1 / height, va="top", fontweight="bold")
    handles = list(handles) + [Line2D([], [], color=arms.color(a), lw=2.5, label=arms.label(a))
                               for a in arms]
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.38 / height),
                   ncol=min(LEGEND_COLUMNS, len(handles)), frameon=False, borderaxespad=0,
                   handlelength=2.2, columnspacing=1.6)


def _note(ax, text):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.35")


def _empty(ax, text):
    """A log-scale panel with nothing to draw: say so, with sane limits."""
    from matplotlib.ticker import NullLocator

    ax.set_ylim(0.1, 10)
    ax.yaxis.set_major_locator(NullLocator())
    _note(ax, text)


SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075"
                                           "\u2076\u2077\u2078\u2079")


def power_of_ten(value, _pos=None):
    """Tick label 1e-40 -> '10⁻⁴⁰' as plain text: mathtext would parse every
    label, a fifth of the time it takes to draw a figure."""
    if value <= 0 or not np.isfinite(value):
        return ""
    exponent = np.log10(value)
    if abs(exponent - round(exponent)) > 1e-9:
        return ""
    return "10" + str(int(round(exponent))).translate(SUPERSCRIPT)


def _log_y(ax, numticks=5):
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=numticks))
    ax.yaxis.set_major_formatter(FuncFormatter(power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())


def _sci(x):
    """3.7e+48 -> '3.7×10⁴⁸' in mathtext."""
    if not np.isfinite(x) or x <= 0:
        return "n/a"
    if 1e-2 <= x < 1e3:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return rf"${mantissa}\times10^{{{int(exponent)}}}$"


# ---------------------------------------------------------------- helpers

def _pow10(values):
    with np.errstate(over="ignore", invalid="ignore"):
        return 10.0 ** np.asarray(values, dtype=float)


# ---------------------------------------------------------------- profile

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
        return out.setdefault(tuple(key[:n]), (set(), {}, {})), int(key[n]), _arm(key[n + 1:])

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
        grads = _positive(lines["grad_abs_mean"])
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
            centre = _pow10(line["log10_mean"])
            anything |= bool(np.isfinite(centre).any())
            if not np.isfinite(centre).any():
                continue
            for low, high, shade in bands_of(line):
                lo, hi = _pow10(line[low]), _pow10(line[high])
                if depth > 1:
                    ax.fill_between(x, lo, hi, color=color, alpha=shade, lw=0, zorder=2)
                elif np.isfinite(lo).all() and np.isfinite(hi).all():
                    ax.errorbar(x, centre, yerr=[centre - lo, hi - centre], color=color,
                                capsize=3, lw=1.2, zorder=3, fmt="none")
            ax.plot(x, centre, color=color, lw=2, zorder=3,
                    marker="o" if depth <= 8 else None, ms=3.5)
        _log_y(ax, numticks=4)
        if not anything:
            _empty(ax, "no finite, non-zero\ngradient")
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
    """Rule figures_profile: the profile figure of the headline's variant
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


# ---------------------------------------------------------------- overview

def states_figure(states, variant, swept=()):
    """The cells' states by depth for one variant, one panel per arm: the
    share of seeds healthy, vanished, exploded, dead and non-finite."""
    from matplotlib.patches import Patch

    setup()
    rows = [r for r in states["rows"] if r["variant"] == variant]
    arms = Arms((r["shortcut"], r["scale"], r.get("branch", BOOK_BRANCH)) for r in rows)
    depths = sorted({int(r["depth"]) for r in rows})
    fig, axes = grid(len(arms), min(3, len(arms)) or 1, panel=(max(2.6, 0.32 * len(depths)), 2.0),
                     top=1.15, bottom=0.7, left=0.95, wspace=0.75, hspace=0.9)
    position = {d: i for i, d in enumerate(depths)}
    for ax, arm in zip(axes, arms):
        sel = {int(r["depth"]): r for r in rows if _arm((r["shortcut"], r["scale"],
                                                         r.get("branch", BOOK_BRANCH))) == arm}
        bottom = np.zeros(len(depths))
        for state in STATES:
            share = np.zeros(len(depths))
            for d, r in sel.items():
                share[position[d]] = r["counts"].get(state, 0) / r["n"] if r["n"] else 0.0
            ax.bar(np.arange(len(depths)), share, bottom=bottom, width=0.8,
                   color=STATE_COLORS[state], lw=0)
            bottom += share
        ax.set_xticks(np.arange(len(depths)), [str(d) for d in depths])
        ax.set_ylim(0, 1)
        ax.set_xlim(-0.6, len(depths) - 0.4)
        ax.set_yticks([0, 0.5, 1], ["0", "50%", "100%"])
        ax.grid(axis="x", visible=False)
        ax.set_title(arms.label(arm))
        ax.set_xlabel("depth")
        ax.tick_params(axis="x", labelsize=8 if len(depths) > 8 else 9)
    axes[0].set_ylabel("share of seeds")
    handles = [Patch(color=STATE_COLORS[s], label=s) for s in STATES]
    height = fig.get_figheight()
    fig.suptitle(f"Cell states by depth \u2014 {variant_label(variant, swept)}",
                 y=1 - 0.1 / height, va="top", fontweight="bold")
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.4 / height),
               ncol=len(handles), frameon=False, borderaxespad=0, handlelength=1.2,
               columnspacing=1.2)
    return fig


def axis_effect(summary, states, axis, base):
    """The series behind an axis' figure: at the deepest depth, the first
    layer's geometric mean (95% interval) and the healthy share, per value
    of `axis` with every other variant axis at `base`.

    Returns (x values, {arm: {x: row}}, reference arm or None): for a variant
    axis one series per arm; for shortcut_scale (lambda) the arms with
    alpha 1, for branch_scale (alpha) those with lambda 1, the sweep without
    shortcut as a reference."""
    deepest = int(summary["depth"].max())
    first = summary[(summary["depth"] == deepest) & (summary["layer"] == 0)]
    fixed = [a for a in VARIANT_AXES if a != axis]
    mask = np.ones(len(first), dtype=bool)
    for a in fixed:
        mask &= (first[a] == base[a]).to_numpy()
    first = first[mask]
    healthy = {}
    for r in (states or {}).get("rows", []):
        if int(r["depth"]) != deepest or any(r["variant"][a] != base[a] for a in fixed):
            continue
        arm = _arm((r["shortcut"], r["scale"], r.get("branch", BOOK_BRANCH)))
        healthy[(r["variant"][axis] if axis in VARIANT_AXES else None, arm)] = (
            r["counts"].get("healthy", 0), r["n"])
    series, reference = {}, None
    for row in first.to_dict("records"):
        arm = _arm((row["shortcut"], row["shortcut_scale"], row["branch_scale"]))
        point = {"gmean": _pow10(row["log10_mean"]), "low": _pow10(row["log10_ci95_low"]),
                 "high": _pow10(row["log10_ci95_high"])}
        if axis in VARIANT_AXES:
            x = row[axis]
            point["healthy"] = healthy.get((x, arm))
            series.setdefault(arm, {})[x] = point
            continue
        point["healthy"] = healthy.get((None, arm))
        if not arm[0]:
            reference = point
        elif axis == "shortcut_scale" and arm[2] == BOOK_BRANCH:
            series.setdefault((True, BOOK_SCALE, BOOK_BRANCH), {})[arm[1]] = point
        elif axis == "branch_scale" and arm[1] == BOOK_SCALE:
            series.setdefault((True, BOOK_SCALE, BOOK_BRANCH), {})[arm[2]] = point
    xs = sorted({x for s in series.values() for x in s}, key=_axis_order(axis))
    return deepest, xs, series, reference


def _axis_order(axis):
    def key(x):
        if axis == "branch_scale":
            try:
                return (0, -float(x), str(x))
            except ValueError:
                return (1, 0.0, str(x))
        return (0, x, "") if isinstance(x, (int, float)) else (0, 0, str(x))
    return key


AXIS_NAMES = {"width": "width", "activation": "activation", "init": "initialisation",
              "norm": "normalisation", "dtype": "dtype", "device": "device",
              "shortcut_scale": "\u03bb (skip-path scale)",
              "branch_scale": "\u03b1 (branch scale)"}


def axis_figure(summary, states, axis, base, swept=()):
    """One swept axis' effect at the deepest depth, the other axes at the
    headline's variant: the first layer's geometric-mean gradient with its
    95% interval (left) and the share of healthy seeds (right), per arm."""
    from matplotlib.lines import Line2D

    setup()
    deepest, xs, series, reference = axis_effect(summary, states, axis, base)
    arms = Arms(list(series) + ([WITHOUT_ARM] if reference is not None else []))
    with_states = bool(states) and any(p.get("healthy") for s in series.values()
                                       for p in s.values())
    width = max(2.6, 0.55 * len(xs) + 1.0)
    rotate = len(xs) > 3
    fig, axes = grid(2 if with_states else 1, 2, panel=(width, 2.1), top=1.15,
                     bottom=1.35 if rotate else 0.95, left=0.95, wspace=0.8, legend=len(arms))
    labels = [branch_text(x) if axis == "branch_scale" else
              (f"{x:g}" if isinstance(x, float) else str(x)) for x in xs]
    names = list(series)
    offsets = {arm: (i - (len(names) - 1) / 2) * 0.12 for i, arm in enumerate(names)}
    ax = axes[0]
    lows = []
    for arm in names:
        pts = series[arm]
        x = np.array([xs.index(v) + offsets[arm] for v in xs if v in pts])
        p = [pts[v] for v in xs if v in pts]
        y = np.array([q["gmean"] for q in p], dtype=float)
        lo = np.array([q["low"] for q in p], dtype=float)
        hi = np.array([q["high"] for q in p], dtype=float)
        ok = np.isfinite(y) & (y > 0)
        lows += list(y[ok])
        err = np.where(np.isfinite(lo) & np.isfinite(hi), [y - lo, hi - y], 0.0)
        ax.errorbar(x[ok], y[ok], yerr=err[:, ok], fmt="o", color=arms.color(arm), ms=5,
                    capsize=2.5, lw=1.2, zorder=3)
    if reference is not None and np.isfinite(reference["gmean"]) and reference["gmean"] > 0:
        ax.axhline(reference["gmean"], color=WITHOUT_COLOR, lw=1.5, ls=(0, (4, 2)), zorder=2)
        lows.append(reference["gmean"])
    _log_y(ax, numticks=6)
    if lows and min(lows) < SMALLEST_FLOAT32_NORMAL * 1e3:
        ax.axhline(SMALLEST_FLOAT32_NORMAL, color="0.35", lw=0.9, ls=":", zorder=1)
        ax.text(0.01, SMALLEST_FLOAT32_NORMAL, "float32 smallest normal", color="0.3",
                fontsize=7.5, va="bottom", transform=ax.get_yaxis_transform())
    if not lows:
        _empty(ax, "no finite, non-zero\ngradient")
    ax.set_xticks(np.arange(len(xs)), labels, rotation=30 if rotate else 0,
                  ha="right" if rotate else "center")
    ax.set_xlim(-0.6, len(xs) - 0.4)
    ax.set_ylabel("first-layer mean |grad|")
    ax.set_title("first layer, geometric mean")
    if with_states:
        ax = axes[1]
        bar = 0.8 / max(1, len(names))
        for i, arm in enumerate(names):
            pts = series[arm]
            share = [pts[v]["healthy"][0] / pts[v]["healthy"][1]
                     if v in pts and pts[v].get("healthy") and pts[v]["healthy"][1] else 0.0
                     for v in xs]
            at = np.arange(len(xs)) + (i - (len(names) - 1) / 2) * bar
            ax.bar(at, share, width=bar, color=arms.color(arm), lw=0)
            # a tick on every bar, so that a share of 0 still shows as measured
            ax.plot(at, share, "_", color=arms.color(arm), ms=bar * 28, mew=2.5, zorder=3)
        if reference is not None and reference.get("healthy") and reference["healthy"][1]:
            ax.axhline(reference["healthy"][0] / reference["healthy"][1], color=WITHOUT_COLOR,
                       lw=1.5, ls=(0, (4, 2)))
        ax.set_ylim(0, 1.02)
        ax.set_yticks([0, 0.5, 1], ["0", "50%", "100%"])
        ax.set_xticks(np.arange(len(xs)), labels, rotation=30 if rotate else 0,
                      ha="right" if rotate else "center")
        ax.set_xlim(-0.6, len(xs) - 0.4)
        ax.grid(axis="x", visible=False)
        ax.set_title("share of healthy seeds")
    for a in axes:
        a.set_xlabel(AXIS_NAMES.get(axis, axis))
        if rotate:
            a.xaxis.set_label_coords(0.5, -0.95 / 2.1)
    handles = [Line2D([], [], color=WITHOUT_COLOR, lw=1.5, ls=(0, (4, 2)),
                      label="without shortcut")] if reference is not None else []
    shown = Arms(names) if names else Arms([])
    shown.scales, shown.branches = arms.scales, arms.branches
    header(fig, f"Effect of {AXIS_NAMES.get(axis, axis)} at depth {deepest}", shown,
           handles=handles)
    return fig


def attenuation_figure(attenuation, variants, swept=(), arms=None):
    """First-layer / last-layer gradient against depth, log y, every arm,
    one panel per variant in `variants`."""
    import pandas as pd

    sns = setup()
    rows_all = [r for r in attenuation if r["variant"] in variants]
    arms = arms or Arms((r["shortcut"], r["scale"], r.get("branch", BOOK_BRANCH))
                        for r in rows_all)
    fig, axes = grid(len(variants), 3, panel=(3.3, 2.6), top=1.0, bottom=0.65, left=1.0,
                     wspace=0.9, hspace=0.75, legend=len(arms))
    for ax, variant in zip(axes, variants):
        rows = [dict(r, arm=_arm((r["shortcut"], r["scale"], r.get("branch", BOOK_BRANCH))))
                for r in rows_all if r["variant"] == variant]
        for arm in arms:
            sel = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["depth"])
            if not sel:
                continue
            x = np.array([r["depth"] for r in sel], dtype=float)
            y = np.array([r["ratio"] for r in sel], dtype=float)
            lo = np.array([r["ci_low"] for r in sel], dtype=float)
            hi = np.array([r["ci_high"] for r in sel], dtype=float)
            color = arms.color(arm)
            if len(x) > 1 and (np.isfinite(lo) & np.isfinite(hi)).any():
                ax.fill_between(x, lo, hi, color=color, alpha=0.28, lw=0)
            elif (np.isfinite(lo) & np.isfinite(hi)).any():
                ax.errorbar(x, y, yerr=[y - lo, hi - y], color=color, fmt="none", capsize=3)
        frame = pd.DataFrame([{"depth": r["depth"], "ratio": r["ratio"],
                               "arm": arms.label(r["arm"])}
                              for r in rows if np.isfinite(r["ratio"]) and r["ratio"] > 0])
        if len(frame):
            palette = {arms.label(a): arms.color(a) for a in arms}
            sns.lineplot(frame, x="depth", y="ratio", hue="arm", palette=palette,
                         estimator=None, errorbar=None, marker="o", markersize=5,
                         markeredgewidth=0, linewidth=2, legend=False, ax=ax)
        ax.set_ylabel("")
        ax.axhline(1.0, color="0.3", lw=0.9, ls=(0, (4, 3)), zorder=0)
        _log_y(ax, numticks=6)
        ax.set_xlabel("depth (layers)")
        ax.set_title(variant_label(variant, swept))
        if not len(frame):
            _empty(ax, "no finite, non-zero ratio")
    axes[0].set_ylabel("first / last layer")
    header(fig, "Attenuation: first-layer over last-layer gradient", arms)
    return fig


def heatmap_figure(summary, variants, swept=(), arms=None):
    """log10 of the geometric-mean gradient, layer x depth, per variant in
    `variants` and arm; a white dot where that mean is subnormal (below the
    dtype's smallest normal number)."""
    from matplotlib.patches import Rectangle

    setup()
    arms = arms or arms_of(summary)
    arm_list = list(arms)
    depths = sorted(int(d) for d in summary["depth"].unique())
    layers = np.arange(max(depths))
    values = summary["log10_mean"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (-1.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    panel = (max(2.4, min(4.0, 0.3 * len(depths))), max(1.2, min(3.2, 0.06 * len(layers) + 0.6)))
    fig, axes = grid(len(variants) * len(arm_list), min(len(arm_list), 4), panel=panel,
                     left=0.8, right=1.25, top=1.2, bottom=0.6, wspace=0.3, hspace=0.8)
    ncol = min(len(arm_list), 4)
    for ax in axes:
        ax.yaxis.set_label_coords(-0.4 / panel[0], 0.5)
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    right_edge = max(ax.get_position().x1 for ax in axes)
    cbar_ax = fig.add_axes([right_edge + 0.2 / fig_w, 0.6 / fig_h, 0.16 / fig_w,
                            1 - 1.8 / fig_h])
    step = max(1, int(np.ceil(len(layers) / 8)))
    exists = layers[:, None] < np.asarray(depths)[None, :]
    column = {d: i for i, d in enumerate(depths)}
    marked = False
    for k, ax in enumerate(axes):
        variant, arm = variants[k // len(arm_list)], arm_list[k % len(arm_list)]
        rows = select(summary, variant)
        rows = rows[arm_mask(rows, arm)]
        data = np.full((len(layers), len(depths)), np.nan)
        r_idx = rows["layer"].to_numpy(dtype=int)
        c_idx = np.array([column[int(d)] for d in rows["depth"]], dtype=int)
        data[r_idx, c_idx] = rows["log10_mean"].to_numpy(dtype=float)
        # pcolormesh, not sns.heatmap: that one draws the whole figure once per
        # panel to check its tick labels, which costs more than the figure.
        mesh = ax.pcolormesh(np.ma.masked_invalid(data), cmap="viridis", vmin=vmin, vmax=vmax,
                             rasterized=True)
        ax.set_xlim(0, len(depths))
        ax.set_ylim(len(layers), 0)
        ax.set_xticks(np.arange(len(depths)) + 0.5, [str(d) for d in depths])
        ax.set_yticks(np.arange(0, len(layers), step) + 0.5,
                      [str(v) for v in range(0, len(layers), step)])
        # Layers that exist but hold no finite, non-zero value: hatched grey.
        for r, c in zip(*np.nonzero(exists & ~np.isfinite(data))):
            ax.add_patch(Rectangle((c, r), 1, 1, facecolor="0.88", edgecolor="0.5",
                                   hatch="////", lw=0))
        # Subnormal geometric means: a white dot.
        normal = np.log10(SMALLEST_NORMAL.get(variant["dtype"], SMALLEST_FLOAT32_NORMAL))
        sub = np.isfinite(data) & (data < normal)
        if sub.any():
            r, c = np.nonzero(sub)
            ax.scatter(c + 0.5, r + 0.5, s=3 if len(layers) > 20 else 6, c="white",
                       linewidths=0, zorder=3)
            marked = True
        if k == 0:
            bar = fig.colorbar(mesh, cax=cbar_ax)
            bar.set_label("log10 mean |grad|")
            bar.outline.set_linewidth(0)
            bar.solids.set_rasterized(True)
        ax.grid(False)
        title = arms.label(arm)
        if len(variants) > 1 or swept:
            title += f"\n{variant_label(variant, swept)}"
        ax.set_title(title, fontsize=10, linespacing=1.4)
        ax.set_xlabel("depth" if k >= len(axes) - ncol else "")
        ax.set_ylabel("layer" if k % ncol == 0 else "")
        ax.tick_params(axis="both", labelsize=8, length=0)
        if k % ncol:
            ax.set_yticklabels([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color("0.75")
    if not len(finite):
        cbar_ax.set_visible(False)
    title = "Mean |grad| by layer and depth\n(log10 of the geometric mean over seeds"
    header(fig, title + ("; white dot: subnormal)" if marked else ")"))
    return fig


def make_overview(summary_path, tables_path, stems, axis_stems=None, partials_path=None):
    """The overview figures from results/summary.csv and results/tables.json.
    stems: {"headline"|"attenuation"|"heatmap": path without extension};
    axis_stems: {axis: path without extension} for the axis effects."""
    summary = read_table(summary_path, partials_path)
    data = read_json(tables_path)
    swept = data["sweep"]["swept"]
    variants = data["sweep"]["variants"]
    base = headline_variant(data)
    arms = arms_of(summary)
    states = data.get("states")
    if states and states.get("rows"):
        save(states_figure(states, base, swept), stems["headline"])
    else:
        fig, _ = grid(1, 1)
        _empty(fig.axes[0], "no cell states")
        save(fig, stems["headline"])
    shown = overview_variants(variants, base)
    save(attenuation_figure(data["attenuation"], shown, swept, arms), stems["attenuation"])
    save(heatmap_figure(summary, heatmap_variants(variants, base), swept, arms),
         stems["heatmap"])
    for axis, stem in (axis_stems or {}).items():
        save(axis_figure(summary, states, axis, base, swept), stem)
    return data


def _geometric_mean(frame, by):
    """Per `by` group: the geometric mean of the positive finite `value`s."""
    positive = frame[np.isfinite(frame["value"]) & (frame["value"] > 0)]
    return positive.assign(log=np.log10(positive["value"])).groupby(by)["log"].mean()


TRAINING_ARMS = Arms([WITHOUT_ARM, BOOK_ARM])


def training_figure(training):
    """The training runs: loss per step (top row of each norm) and the
    gradient profile before the first and after the last step (bottom row),
    with and without shortcut; one column per depth.  Geometric means over
    the seeds; the single seeds' loss curves faint behind."""
    import matplotlib.pyplot as plt

    setup()
    depths = sorted(training["depth"].unique())
    norms = sorted(training["norm"].unique())
    fig, axes = plt.subplots(2 * len(norms), len(depths), squeeze=False,
                             figsize=(3.1 * len(depths) + 0.6, 2.3 * 2 * len(norms) + 0.6))
    for i, norm in enumerate(norms):
        for j, depth in enumerate(depths):
            runs = training[(training["norm"] == norm) & (training["depth"] == depth)]
            loss_ax, grad_ax = axes[2 * i, j], axes[2 * i + 1, j]
            for shortcut in (False, True):
                which = (shortcut, BOOK_SCALE, BOOK_BRANCH)
                color = TRAINING_ARMS.color(which)
                arm = runs[runs["shortcut"] == shortcut]
                losses = arm[arm["kind"] == "loss"]
                for _, seed in losses.groupby("seed"):
                    loss_ax.plot(seed["index"], seed["value"], color=color, lw=0.6, alpha=0.3)
                mean = _geometric_mean(losses, "index")
                if len(mean):
                    loss_ax.plot(mean.index, 10 ** mean.to_numpy(), color=color, lw=2,
                                 label=TRAINING_ARMS.label(which))
                for kind, style in (("grad_start", (0, (3, 2))), ("grad_end", "-")):
                    profile = _geometric_mean(arm[arm["kind"] == kind], "index")
                    if len(profile):
                        grad_ax.plot(profile.index, 10 ** profile.to_numpy(), color=color,
                                     ls=style, lw=1.6, marker="o", markersize=2.5)
            loss_ax.set_yscale("log")
            grad_ax.set_yscale("log")
            loss_ax.set_title(f"depth {depth}, norm {norm}", fontsize=9)
            loss_ax.set_xlabel("step")
            grad_ax.set_xlabel("layer")
            if j == 0:
                loss_ax.set_ylabel("training loss")
                grad_ax.set_ylabel("mean |grad|")
    axes[0, 0].legend(loc="best", fontsize=7, frameon=False)
    axes[1, 0].plot([], [], color="0.3", ls=(0, (3, 2)), label="before training")
    axes[1, 0].plot([], [], color="0.3", ls="-", label="after training")
    axes[1, 0].legend(loc="best", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def make_training(training_path, stem):
    import pandas as pd

    save(training_figure(pd.read_csv(training_path)), stem)
