"""The GPT family's figures and numbers for the report's GPT section.  No torch.

Everything comes from the merged partial results (results/partials.json,
the GPT family's rows): per-block profiles from the `layers` table, token
collapse, cell states and first-block gradients from the `cells` table.
Centres and intervals are as in the MLP's figures (analysis/figures.py):
geometric means with 95% t-intervals of log10 over seeds, plain means with
95% t-intervals for the token cosine, seaborn's theme, the same colours
(orange without shortcut, blue with).

`make_gpt(partials_path, stems, json_path, gpt_config)` is rule
figures_gpt: four figures (profile, collapse, healthy, norms) and
results/gpt.json, the numbers the section prints.
"""

import math

import numpy as np

from shortcutbench.analysis.figures import OTHER_COLORS, WITH_COLOR, WITHOUT_COLOR, save, setup
from shortcutbench.analysis.partials_frame import interval_columns, only_model, read_partials
from shortcutbench.core.files import write_json

# The per-block parameters the profile shows: the attention's query and
# output projections and the feed-forward's first layer.
PROFILE_PARAMS = ("att.W_query.weight", "att.out_proj.weight", "ff.layers.0.weight")
NORM_ORDER = ("pre_layernorm", "post_layernorm", "none")
NORM_LABELS = {"pre_layernorm": "pre-LN (the book's)", "post_layernorm": "post-LN",
               "none": "no LayerNorm"}
FIGURES = ("profile", "collapse", "healthy", "norms")


def arm_name(shortcut):
    return "with shortcut" if shortcut else "without shortcut"


def arm_colour(shortcut):
    return WITH_COLOR if shortcut else WITHOUT_COLOR


def norms_of(frame):
    present = set(frame["norm"])
    return [n for n in NORM_ORDER if n in present]


def _geometric(n, mean, m2):
    """log10 moments -> (centre, low, high) as values (not logs)."""
    _, low, high = interval_columns(n, mean, m2)
    return 10.0 ** np.asarray(mean, dtype=float), 10.0 ** low, 10.0 ** high


def _plain(n, mean, m2):
    _, low, high = interval_columns(n, mean, m2)
    return np.asarray(mean, dtype=float), low, high


def _line(ax, x, centre, low, high, colour, label, marker="o"):
    ax.plot(x, centre, color=colour, lw=1.8, marker=marker, markersize=3.5, label=label)
    ok = np.isfinite(low) & np.isfinite(high)
    if ok.any():
        ax.fill_between(np.asarray(x)[ok], np.asarray(low)[ok], np.asarray(high)[ok],
                        color=colour, alpha=0.2, lw=0)


def _panels(n_rows, n_cols, width=3.3, height=2.6):
    import matplotlib.pyplot as plt

    setup()
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, sharex=True,
                             figsize=(width * n_cols + 0.6, height * n_rows + 0.6))
    return fig, axes


def profile_frame(layers, blocks):
    """The per-block rows of PROFILE_PARAMS at `blocks` blocks, with the
    block index and the geometric mean and interval of mean |grad|."""
    rows = layers[(layers["depth"] == blocks) & (layers["layer"] >= 0)
                  & (layers["layer"] < blocks)].copy()
    rows["part"] = rows["param"].str.split(".", n=2).str[2]
    rows = rows[rows["part"].isin(PROFILE_PARAMS)]
    centre, low, high = _geometric(rows["grad_abs_mean_n_pos"], rows["grad_abs_mean_log10_mean"],
                                   rows["grad_abs_mean_log10_m2"])
    return rows.assign(centre=centre, low=low, high=high).sort_values(
        ["norm", "part", "shortcut", "layer"], kind="stable")


def profile_figure(layers):
    """Mean |grad| per block of W_query, out_proj and ff.layers.0 at the
    deepest block count: one row per norm placement, one column per
    parameter, with and without shortcut."""
    blocks = int(layers["depth"].max())
    rows = profile_frame(layers, blocks)
    norms = norms_of(rows)
    fig, axes = _panels(len(norms), len(PROFILE_PARAMS))
    for i, norm in enumerate(norms):
        for j, part in enumerate(PROFILE_PARAMS):
            ax = axes[i, j]
            for shortcut in (False, True):
                r = rows[(rows["norm"] == norm) & (rows["part"] == part)
                         & (rows["shortcut"] == shortcut)]
                if len(r):
                    _line(ax, r["layer"], r["centre"], r["low"], r["high"],
                          arm_colour(shortcut), arm_name(shortcut))
            ax.set_yscale("log")
            ax.set_title(f"{part.removesuffix('.weight')}, {NORM_LABELS[norm]}", fontsize=9)
            if i == len(norms) - 1:
                ax.set_xlabel("block")
            if j == 0:
                ax.set_ylabel("mean |grad|")
    axes[0, 0].legend(loc="best", fontsize=7, frameon=False)
    fig.suptitle(f"Per-block gradients at {blocks} blocks (geometric mean, 95% CI over seeds)")
    fig.tight_layout()
    return fig


def _by_blocks(cells, norm, shortcut):
    r = cells[(cells["norm"] == norm) & (cells["shortcut"] == shortcut)]
    return r.sort_values("depth")


def _against_blocks(cells, draw, ylabel):
    """One panel per norm placement, with and without shortcut against the
    number of blocks: draw(ax, rows, shortcut) draws one arm's line."""
    norms = norms_of(cells)
    fig, axes = _panels(1, len(norms))
    for j, norm in enumerate(norms):
        ax = axes[0, j]
        for shortcut in (False, True):
            r = _by_blocks(cells, norm, shortcut)
            if len(r):
                draw(ax, r, shortcut)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(NORM_LABELS[norm])
        ax.set_xlabel("blocks")
    axes[0, 0].set_ylabel(ylabel)
    axes[0, 0].legend(loc="best", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def collapse_figure(cells):
    """Mean pairwise cosine of the last block's token outputs against the
    number of blocks: 1 is token collapse."""
    def draw(ax, r, shortcut):
        _line(ax, r["depth"], *_plain(r["token_cosine_n"], r["token_cosine_mean"],
                                      r["token_cosine_m2"]),
              arm_colour(shortcut), arm_name(shortcut))

    return _against_blocks(cells, draw, "mean cosine between tokens")


def healthy_figure(cells):
    """The share of healthy cells (core/cell_stats.py: the healthy band over
    the blocks' W_query gradients) against the number of blocks."""
    def draw(ax, r, shortcut):
        ax.plot(r["depth"], r["state_healthy"] / r["n_cells"], color=arm_colour(shortcut),
                lw=1.8, marker="o", markersize=3.5, label=arm_name(shortcut))

    return _against_blocks(cells, draw, "healthy share of seeds")


def norms_figure(cells):
    """Norm placement compared: block 0's W_query mean |grad| against the
    number of blocks, one line per placement, one panel per shortcut arm."""
    norms = norms_of(cells)
    arms = [s for s in (False, True) if s in set(cells["shortcut"])]
    fig, axes = _panels(1, len(arms))
    for j, shortcut in enumerate(arms):
        ax = axes[0, j]
        for k, norm in enumerate(norms):
            r = _by_blocks(cells, norm, shortcut)
            if len(r):
                _line(ax, r["depth"], *_geometric(r["log10_first_grad_n"],
                                                  r["log10_first_grad_mean"],
                                                  r["log10_first_grad_m2"]),
                      OTHER_COLORS[k], NORM_LABELS[norm])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(arm_name(shortcut))
        ax.set_xlabel("blocks")
    axes[0, 0].set_ylabel("block 0 W_query mean |grad|")
    axes[0, 0].legend(loc="best", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def _number(x):
    x = float(x)
    return None if not math.isfinite(x) else x


def section_numbers(cells, merged_attrs, gpt_config):
    """What the GPT section prints: the model config, the sweep, and per
    norm placement the token collapse and healthy share at the deepest block
    count, without and with shortcut."""
    deepest = int(cells["depth"].max())
    rows = []
    for norm in norms_of(cells):
        row = {"norm": norm, "label": NORM_LABELS[norm], "blocks": deepest}
        for shortcut in (False, True):
            r = cells[(cells["norm"] == norm) & (cells["shortcut"] == shortcut)
                      & (cells["depth"] == deepest)]
            key = "with" if shortcut else "without"
            if not len(r):
                row[key] = None
                continue
            r = r.iloc[0]
            mean, low, high = (v[0] for v in _plain([r["token_cosine_n"]],
                                                    [r["token_cosine_mean"]],
                                                    [r["token_cosine_m2"]]))
            first = _geometric([r["log10_first_grad_n"]], [r["log10_first_grad_mean"]],
                               [r["log10_first_grad_m2"]])[0][0]
            row[key] = {"cosine": _number(mean), "cosine_low": _number(low),
                        "cosine_high": _number(high), "n": int(r["n_cells"]),
                        "healthy": int(r["state_healthy"]),
                        "first_grad": _number(first)}
        rows.append(row)
    book = next((r for r in rows if r["norm"] == "pre_layernorm"), rows[0] if rows else None)
    finding = None
    if book and book["with"] and book["without"]:
        w, wo = book["with"]["cosine"], book["without"]["cosine"]
        if w is not None and wo is not None:
            finding = {"norm": book["norm"], "blocks": deepest, "without": wo, "with": w,
                       "collapse": wo > 0.99 and w < 0.9}
    return {"config": gpt_config, "seeds": merged_attrs.get("gpt_seeds", []),
            "blocks": sorted(int(b) for b in cells["depth"].unique()),
            "norms": norms_of(cells), "n_cells": int(cells["n_cells"].sum()),
            "deepest": deepest, "collapse": rows, "finding": finding}


def make_gpt(partials_path, stems, json_path, gpt_config):
    """Rule figures_gpt: results/partials.json -> the GPT section's figures
    (stems: {name: path without extension} for FIGURES) and numbers."""
    frames = only_model(read_partials(partials_path), "gpt")
    cells, layers = frames["cells"], frames["layers"]
    if cells.empty:
        raise ValueError(f"{partials_path}: no GPT cells; is gpt in the config's models?")
    save(profile_figure(layers), stems["profile"])
    save(collapse_figure(cells), stems["collapse"])
    save(healthy_figure(cells), stems["healthy"])
    save(norms_figure(cells), stems["norms"])
    numbers = section_numbers(cells, frames["cells"].attrs, gpt_config)
    write_json(numbers, json_path)
    return numbers
