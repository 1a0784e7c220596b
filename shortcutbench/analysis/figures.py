"""The report's figures, drawn with seaborn (matplotlib).  No torch.

Two jobs draw them, side by side on two cores:

* `make_profiles`: the gradient profile (mean |grad| per layer, log y) of
  every variant (width, activation, init, norm, dtype, device), faceted by
  depth, one colour per shortcut arm (without; with, per scale lambda).
* `make_overview`: the headline pairs, the attenuation with depth and the
  layer x depth heat map, drawn from results/tables.json (rule tables), the
  numbers the report prints, so both show the same.

Centres and intervals come from results/summary.csv (geometric mean and 95%
t-interval of log10 over seeds) or are computed the same way here: no
bootstrap.  Every figure is saved as SVG and PNG with fixed metadata, so the
same data give the same bytes.
"""

import sys

import numpy as np

from shortcutbench.analysis.intervals import usable
from shortcutbench.analysis.tables import headline_points, read_records, read_tables, select
from shortcutbench.analysis.variants import (
    ARM_AXES,
    BOOK_SCALE,
    VARIANT_AXES,
    arm_label,
    arm_sort_key,
    variant_label,
    variant_sort_key,
)
from shortcutbench.core.files import atomic_write

# seaborn's colorblind palette: orange without shortcut, blue with the book's
# shortcut (lambda = 1), the other colours for other shortcut scales.
WITHOUT_COLOR = "#de8f05"
WITH_COLOR = "#0173b2"
OTHER_COLORS = ("#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494", "#56b4e9", "#fbafe4",
                "#ece133")


def arm_color(shortcut, scale, scales=(BOOK_SCALE,)):
    if not shortcut:
        return WITHOUT_COLOR
    if scale == BOOK_SCALE:
        return WITH_COLOR
    others = [x for x in sorted(scales) if x != BOOK_SCALE]
    return OTHER_COLORS[others.index(scale) % len(OTHER_COLORS)] if scale in others \
        else OTHER_COLORS[0]


def arms_of(frame):
    """The (shortcut, scale) pairs in a frame, without first."""
    pairs = {(bool(f), float(x)) for f, x in frame[list(ARM_AXES)].drop_duplicates()
             .itertuples(index=False)}
    return sorted(pairs, key=lambda a: arm_sort_key({"shortcut": a[0], "scale": a[1]}))


def arm_mask(frame, arm):
    return ((frame["shortcut"].to_numpy(dtype=bool) == arm[0])
            & (frame["shortcut_scale"].to_numpy(dtype=float) == arm[1]))


RC = {
    # Same data -> same bytes: a fixed salt for the SVG's ids, no dates.
    "svg.hashsalt": "shortcutbench",
    "svg.fonttype": "path",  # text as paths: no font needed where it is shown
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
    blocked = [name for name in ("scipy.stats", "scipy.cluster") if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        import seaborn
    except ImportError:
        seaborn = None
    finally:
        for name in blocked:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    if seaborn is None:
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


def read_table(path):
    """A results table (gradients or summary) with every cell column: the
    MLP's rows (the GPT family's figures are analysis/figures_gpt.py's)."""
    table = read_records(path)
    return table[table["model"] == "mlp"].reset_index(drop=True)


def _positive(values):
    values = np.asarray(values, dtype=float)
    return np.where(usable(values), values, np.nan)


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


def header(fig, title, arms=(), scales=(BOOK_SCALE,)):
    """The figure's title and, under it, the legend of the shortcut arms."""
    from matplotlib.lines import Line2D

    height = fig.get_figheight()
    fig.suptitle(title, y=1 - 0.1 / height, va="top", fontweight="bold")
    if arms:
        handles = [Line2D([], [], color=arm_color(f, x, scales), lw=2.5,
                          label=arm_label(f, x, scales)) for f, x in arms]
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


# ---------------------------------------------------------------- profile

def profile_figure(gradients, summary, variant, swept=(), scales=(BOOK_SCALE,)):
    """Mean |grad| per layer, one panel per depth: geometric mean over seeds
    (line) with its 95% band, every single seed faint behind."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    setup()
    grads = select(gradients, variant)
    summ = select(summary, variant)
    depths = sorted(int(d) for d in grads["depth"].unique())
    arms = arms_of(grads)
    # Plain arrays, grouped once: slicing DataFrames per panel costs more
    # than drawing the panel.
    seeds_of = {key: _positive(g.sort_values(["seed", "layer"])["grad_abs_mean"])
                for key, g in grads.groupby(["depth", "shortcut", "shortcut_scale"])}
    lines_of = {key: {c: g.sort_values("layer")[c].to_numpy(dtype=float)
                      for c in ("layer", "log10_mean", "log10_ci95_low", "log10_ci95_high")}
                for key, g in summ.groupby(["depth", "shortcut", "shortcut_scale"])}
    ncol = 4
    fig, axes = grid(len(depths), ncol, panel=(2.05, 1.45), top=0.95, bottom=0.6,
                     left=0.95, wspace=0.72, hspace=0.62, legend=len(arms))
    for depth, ax in zip(depths, axes):
        anything = False
        for arm in arms:
            color = arm_color(*arm, scales)
            values = seeds_of.get((depth, *arm), np.empty(0)).reshape(-1, depth)
            anything |= bool(np.isfinite(values).any())
            layers = np.arange(depth)
            if depth > 1:
                segments = [np.column_stack([layers, v]) for v in values]
                ax.add_collection(LineCollection(segments, colors=color, alpha=0.16,
                                                 linewidths=0.6, zorder=1))
            else:
                ax.plot(np.zeros(len(values)), values[:, 0], "o", color=color, alpha=0.25,
                        ms=2.5, zorder=1)
            line = lines_of.get((depth, *arm))
            if line is None:
                continue
            x = line["layer"]
            centre = 10.0 ** line["log10_mean"]
            low, high = 10.0 ** line["log10_ci95_low"], 10.0 ** line["log10_ci95_high"]
            if np.isfinite(centre).any():
                if depth > 1:
                    ax.fill_between(x, low, high, color=color, alpha=0.3, lw=0, zorder=2)
                elif np.isfinite(low).all():
                    ax.errorbar(x, centre, yerr=[centre - low, high - centre], color=color,
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
    header(fig, f"Gradient per layer \u2014 {variant_label(variant, swept)}", arms, scales)
    return fig


def make_profiles(gradients_path, summary_path, variants, stems):
    gradients = read_table(gradients_path)
    summary = read_table(summary_path)
    swept = [axis for axis in VARIANT_AXES if gradients[axis].nunique() > 1]
    scales = sorted({float(x) for x in gradients.loc[gradients["shortcut"].astype(bool),
                                                     "shortcut_scale"]}) or [BOOK_SCALE]
    for variant, stem in zip(variants, stems):
        save(profile_figure(gradients, summary, variant, swept, scales), stem)


# ---------------------------------------------------------------- overview

def headline_figure(gradients, headline, swept=(), scales=(BOOK_SCALE,)):
    """At the deepest depth: each seed's first-layer gradient without and with
    shortcut, joined by a line; the geometric mean as a bar."""
    sns = setup()
    points = headline_points(gradients)
    rows = headline["rows"]
    fig, axes = grid(len(rows), 3, panel=(2.9, 2.9), top=0.85, bottom=0.95, left=1.0,
                     wspace=0.95, hspace=1.55)
    for ax, row in zip(axes, rows):
        pts = select(points, row["variant"])
        arms = [(False, 0.0)] + ([(True, row["scale"])] if row["scale"] is not None else [])
        values = {}
        for x, arm in enumerate(arms):
            sel = pts[arm_mask(pts, arm)].set_index("seed")["grad_abs_mean"]
            if len(sel):
                values[x] = sel
        if len(values) == 2:
            paired = sorted(set(values[0].index) & set(values[1].index))
            a = _positive(values[0].loc[paired])
            b = _positive(values[1].loc[paired])
            ok = ~np.isnan(a) & ~np.isnan(b)
            ax.plot(np.tile([[0.0], [1.0]], (1, int(ok.sum()))), np.vstack([a[ok], b[ok]]),
                    color="0.55", lw=0.6, alpha=0.45, zorder=1)
        drawn = False
        for x, series in values.items():
            v = _positive(series)
            v = v[~np.isnan(v)]
            drawn |= len(v) > 0
            jitter = x + (np.linspace(-0.07, 0.07, len(v)) if len(v) > 1 else np.zeros(len(v)))
            if len(v):
                sns.scatterplot(x=jitter, y=v, color=arm_color(*arms[x], scales), s=18,
                                alpha=0.8, edgecolor="none", legend=False, ax=ax, zorder=2)
            centre = row["with_gmean" if x else "without_gmean"]
            if np.isfinite(centre):
                ax.plot([x - 0.25, x + 0.25], [centre, centre], color="0.1", lw=2.2, zorder=3)
        _log_y(ax, numticks=6)
        with_scale = row["scale"] if row["scale"] is not None else BOOK_SCALE
        with_label = arm_label(True, with_scale, scales).replace(" shortcut", "\nshortcut")
        ax.set_xticks([0, 1], ["without\nshortcut", with_label])
        ax.set_xlim(-0.5, 1.5)
        ax.grid(axis="x", visible=False)
        ratio = (f"ratio {_sci(row['ratio'])}, n={row['n']}" if np.isfinite(row["ratio"])
                 else "no ratio")
        ax.set_title(f"{variant_label(row['variant'], swept)}\n{ratio}", fontsize=10,
                     linespacing=1.5)
        if row.get("excluded"):
            ax.text(0.5, -0.4 / 2.9, f"{row['excluded']} of {row['pairs']} seeds not drawn:\n"
                    "a gradient is 0 or non-finite", transform=ax.transAxes, ha="center",
                    va="top", fontsize=8.5, color="0.35")
        if not drawn:
            _empty(ax, "no finite, non-zero\ngradient")
    axes[0].set_ylabel("first-layer mean |grad|")
    header(fig, f"First layer at depth {headline['depth']}: each seed, and the geometric mean")
    return fig


def attenuation_figure(attenuation, swept=(), scales=(BOOK_SCALE,)):
    """First-layer / last-layer gradient against depth, log y, every arm."""
    import pandas as pd

    sns = setup()
    keys = {tuple(sorted(r["variant"].items())) for r in attenuation}
    variants = sorted((dict(k) for k in keys), key=variant_sort_key)
    all_arms = {(r["shortcut"], r["scale"]) for r in attenuation}
    fig, axes = grid(len(variants), 3, panel=(3.3, 2.6), top=1.0, bottom=0.65, left=1.0,
                     wspace=0.9, hspace=0.75, legend=len(all_arms))
    arms_seen = set()
    for ax, variant in zip(axes, variants):
        rows = [r for r in attenuation if r["variant"] == variant]
        arms = sorted({(r["shortcut"], r["scale"]) for r in rows},
                      key=lambda a: arm_sort_key({"shortcut": a[0], "scale": a[1]}))
        arms_seen.update(arms)
        for arm in arms:
            sel = sorted((r for r in rows if (r["shortcut"], r["scale"]) == arm),
                         key=lambda r: r["depth"])
            x = np.array([r["depth"] for r in sel], dtype=float)
            y = np.array([r["ratio"] for r in sel], dtype=float)
            lo = np.array([r["ci_low"] for r in sel], dtype=float)
            hi = np.array([r["ci_high"] for r in sel], dtype=float)
            color = arm_color(*arm, scales)
            if len(x) > 1 and (np.isfinite(lo) & np.isfinite(hi)).any():
                ax.fill_between(x, lo, hi, color=color, alpha=0.28, lw=0)
            elif (np.isfinite(lo) & np.isfinite(hi)).any():
                ax.errorbar(x, y, yerr=[y - lo, hi - y], color=color, fmt="none", capsize=3)
        frame = pd.DataFrame([{"depth": r["depth"], "ratio": r["ratio"],
                               "arm": arm_label(r["shortcut"], r["scale"], scales)}
                              for r in rows if np.isfinite(r["ratio"]) and r["ratio"] > 0])
        if len(frame):
            # One row per depth and arm: the centre is computed already, no estimator.
            palette = {arm_label(f, x, scales): arm_color(f, x, scales) for f, x in arms}
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
    arms = sorted(arms_seen, key=lambda a: arm_sort_key({"shortcut": a[0], "scale": a[1]}))
    header(fig, "Attenuation: first-layer over last-layer gradient", arms, scales)
    return fig


def heatmap_figure(summary, swept=(), scales=(BOOK_SCALE,)):
    """log10 of the geometric-mean gradient, layer x depth, per arm."""
    from matplotlib.patches import Rectangle

    setup()
    variants = sorted(({axis: (int(k[i]) if axis == "width" else k[i])
                        for i, axis in enumerate(VARIANT_AXES)}
                       for k, _ in summary.groupby(list(VARIANT_AXES))), key=variant_sort_key)
    arms = arms_of(summary)
    depths = sorted(int(d) for d in summary["depth"].unique())
    layers = np.arange(max(depths))
    values = summary["log10_mean"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (-1.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 1, vmax + 1
    panel = (max(2.4, min(4.0, 0.3 * len(depths))), max(1.2, min(3.2, 0.06 * len(layers) + 0.6)))
    fig, axes = grid(len(variants) * len(arms), len(arms), panel=panel, left=0.8,
                     right=1.25, top=1.2, bottom=0.6, wspace=0.3, hspace=0.8)
    for ax in axes:
        ax.yaxis.set_label_coords(-0.4 / panel[0], 0.5)
    fig_w, fig_h = fig.get_figwidth(), fig.get_figheight()
    right_edge = max(ax.get_position().x1 for ax in axes)
    cbar_ax = fig.add_axes([right_edge + 0.2 / fig_w, 0.6 / fig_h, 0.16 / fig_w,
                            1 - 1.8 / fig_h])
    step = max(1, int(np.ceil(len(layers) / 8)))
    exists = layers[:, None] < np.asarray(depths)[None, :]
    for k, ax in enumerate(axes):
        variant, arm = variants[k // len(arms)], arms[k % len(arms)]
        rows = select(summary, variant)
        rows = rows[arm_mask(rows, arm)]
        data = np.full((len(layers), len(depths)), np.nan)
        column = {d: i for i, d in enumerate(depths)}
        data[rows["layer"].to_numpy(dtype=int),
             [column[int(d)] for d in rows["depth"]]] = rows["log10_mean"].to_numpy(dtype=float)
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
        if k == 0:
            bar = fig.colorbar(mesh, cax=cbar_ax)
            bar.set_label("log10 mean |grad|")
            bar.outline.set_linewidth(0)
            bar.solids.set_rasterized(True)
        ax.grid(False)
        ax.set_title(f"{arm_label(*arm, scales)}\n{variant_label(variant, swept)}",
                     fontsize=10, linespacing=1.4)
        ax.set_xlabel("depth" if k >= len(axes) - len(arms) else "")
        ax.set_ylabel("layer" if k % len(arms) == 0 else "")
        ax.tick_params(axis="both", labelsize=8, length=0)
        if k % len(arms):
            ax.set_yticklabels([])
        for spine in ax.spines.values():
            spine.set_visible(True)
            spine.set_color("0.75")
    if not len(finite):
        cbar_ax.set_visible(False)
    header(fig, "Mean |grad| by layer and depth\n(log10 of the geometric mean over seeds)")
    return fig


def make_overview(gradients_path, summary_path, tables_path, stems):
    """The overview figures from the tables and results/tables.json (rule
    tables).  stems: {"headline"|"attenuation"|"heatmap": path without extension}."""
    gradients = read_table(gradients_path)
    summary = read_table(summary_path)
    data = read_tables(tables_path)
    swept = data["sweep"]["swept"]
    scales = data["sweep"]["scales"] or [BOOK_SCALE]
    save(headline_figure(gradients, data["headline"], swept, scales), stems["headline"])
    save(attenuation_figure(data["attenuation"], swept, scales), stems["attenuation"])
    save(heatmap_figure(summary, swept, scales), stems["heatmap"])
    return data


def _geometric_mean(frame, by):
    """Per `by` group: the geometric mean of the positive finite `value`s."""
    positive = frame[np.isfinite(frame["value"]) & (frame["value"] > 0)]
    return positive.assign(log=np.log10(positive["value"])).groupby(by)["log"].mean()


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
                color = arm_color(shortcut, BOOK_SCALE)
                arm = runs[runs["shortcut"] == shortcut]
                losses = arm[arm["kind"] == "loss"]
                for _, seed in losses.groupby("seed"):
                    loss_ax.plot(seed["index"], seed["value"], color=color, lw=0.6, alpha=0.3)
                mean = _geometric_mean(losses, "index")
                if len(mean):
                    loss_ax.plot(mean.index, 10 ** mean.to_numpy(), color=color, lw=2,
                                 label=arm_label(shortcut, BOOK_SCALE))
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
