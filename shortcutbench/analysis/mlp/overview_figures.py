"""The overview figures: the cell states by depth of the headline's variant,
the effect of each swept axis at the deepest depth, the attenuation with
depth and the layer x depth heat map, from results/summary.csv and
results/tables.json (the numbers the page prints).  No torch.
"""

import numpy as np

from shortcutbench.analysis.mlp.merged_tables import arm_mask, arms_of, read_table, select
from shortcutbench.analysis.style import (
    STATE_COLORS,
    WITHOUT_COLOR,
    Arms,
    empty,
    grid,
    header,
    log_y,
    pow10,
    save,
    setup,
)
from shortcutbench.analysis.variants import (
    VARIANT_AXES,
    headline_variant,
    heatmap_variants,
    overview_variants,
    variant_label,
)
from shortcutbench.core import arms as arm_forms
from shortcutbench.core.arms import BOOK, BOOK_BRANCH, BOOK_SCALE, WITHOUT, branch_text
from shortcutbench.core.families import layout
from shortcutbench.core.families.mlp import NAME
from shortcutbench.core.files import read_json
from shortcutbench.core.states import SMALLEST_NORMAL

STATES = layout(NAME).states  # never zero-branch

SMALLEST_FLOAT32_NORMAL = SMALLEST_NORMAL["float32"]

def states_figure(states, variant, swept=()):
    """The cells' states by depth for one variant, one panel per arm: the
    share of seeds healthy, vanished, exploded, dead and non-finite."""
    from matplotlib.patches import Patch

    setup()
    rows = [r for r in states["rows"] if r["variant"] == variant]
    arms = Arms(rows)
    depths = sorted({int(r["depth"]) for r in rows})
    fig, axes = grid(len(arms), min(3, len(arms)) or 1, panel=(max(2.6, 0.32 * len(depths)), 2.0),
                     top=1.15, bottom=0.7, left=0.95, wspace=0.75, hspace=0.9)
    position = {d: i for i, d in enumerate(depths)}
    for ax, arm in zip(axes, arms):
        sel = {int(r["depth"]): r for r in rows if arm_forms.of(r) == arm}
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
        arm = arm_forms.of(r)
        healthy[(r["variant"][axis] if axis in VARIANT_AXES else None, arm)] = (
            r["counts"].get("healthy", 0), r["n"])
    series, reference = {}, None
    for row in first.to_dict("records"):
        arm = arm_forms.of(row)
        point = {"gmean": pow10(row["log10_mean"]), "low": pow10(row["log10_ci95_low"]),
                 "high": pow10(row["log10_ci95_high"])}
        if axis in VARIANT_AXES:
            x = row[axis]
            point["healthy"] = healthy.get((x, arm))
            series.setdefault(arm, {})[x] = point
            continue
        point["healthy"] = healthy.get((None, arm))
        if not arm[0]:
            reference = point
        elif axis == "shortcut_scale" and arm[2] == BOOK_BRANCH:
            series.setdefault(BOOK, {})[arm[1]] = point
        elif axis == "branch_scale" and arm[1] == BOOK_SCALE:
            series.setdefault(BOOK, {})[arm[2]] = point
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
    arms = Arms(list(series) + ([WITHOUT] if reference is not None else []))
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
    log_y(ax, numticks=6)
    if lows and min(lows) < SMALLEST_FLOAT32_NORMAL * 1e3:
        ax.axhline(SMALLEST_FLOAT32_NORMAL, color="0.35", lw=0.9, ls=":", zorder=1)
        ax.text(0.01, SMALLEST_FLOAT32_NORMAL, "float32 smallest normal", color="0.3",
                fontsize=7.5, va="bottom", transform=ax.get_yaxis_transform())
    if not lows:
        empty(ax, "no finite, non-zero\ngradient")
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
    arms = arms or Arms(rows_all)
    fig, axes = grid(len(variants), 3, panel=(3.3, 2.6), top=1.0, bottom=0.65, left=1.0,
                     wspace=0.9, hspace=0.75, legend=len(arms))
    for ax, variant in zip(axes, variants):
        rows = [dict(r, arm=arm_forms.of(r)) for r in rows_all if r["variant"] == variant]
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
        log_y(ax, numticks=6)
        ax.set_xlabel("depth (layers)")
        ax.set_title(variant_label(variant, swept))
        if not len(frame):
            empty(ax, "no finite, non-zero ratio")
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
        empty(fig.axes[0], "no cell states")
        save(fig, stems["headline"])
    shown = overview_variants(variants, base)
    save(attenuation_figure(data["attenuation"], shown, swept, arms), stems["attenuation"])
    save(heatmap_figure(summary, heatmap_variants(variants, base), swept, arms),
         stems["heatmap"])
    for axis, stem in (axis_stems or {}).items():
        save(axis_figure(summary, states, axis, base, swept), stem)
    return data
