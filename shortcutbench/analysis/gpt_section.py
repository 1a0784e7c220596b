"""The GPT family's hook (its spec's analysis_hook): token collapse.

Every family gets the same numbers and figures (analysis/families.py,
analysis/family_figures.py); the book's GPT adds its own statistic, the
token collapse: the mean pairwise cosine between the last block's token
outputs (1: every token leaves the model as the same vector), measured per
cell by its watch hook (measuring/gpt.py) and averaged over seeds from the
merged partial results' cells table (plain mean, 95% t-interval).  Where
the sweep has several dtypes or devices, the table, the figure and the
finding are of the reference setting (family_laws.reference_setting: float32
on the CPU where the sweep has it, as the family's findings), and say so.
No torch.
"""

import numpy as np

from shortcutbench.analysis import intervals
from shortcutbench.analysis.family_laws import reference_setting
from shortcutbench.analysis.partials_frame import only_model
from shortcutbench.analysis.style import Arms, grid, header, setup
from shortcutbench.core import arms as arm_forms
from shortcutbench.core.families.gpt import NORMS as NORM_ORDER

NORM_LABELS = {"pre_layernorm": "pre-LN (the book\u2019s)", "post_layernorm": "post-LN",
               "none": "no LayerNorm"}


def _cosine(row):
    """The mean cosine over seeds and its 95% t-interval, clipped to the
    range a cosine has (the t-interval of a mean near 1 reaches past it)."""
    n, mean, _, low, high = intervals.moments_interval(
        row["token_cosine_n"], row["token_cosine_mean"], row["token_cosine_m2"])
    return {"n": n, "mean": _number(mean), "low": _number(max(low, -1.0)),
            "high": _number(min(high, 1.0))}


def _number(x):
    x = float(x)
    return x if np.isfinite(x) else None


def collapse_rows(cells):
    """Per dtype, device, norm placement, arm and number of blocks: the mean
    cosine between tokens."""
    rows = [{"dtype": r["dtype"], "device": r["device"], "norm": r["norm"],
             "arm": arm_forms.of(r).as_dict(), "depth": int(r["depth"]), **_cosine(r)}
            for r in cells.to_dict("records")]
    return sorted(rows, key=lambda r: (r["dtype"], r["device"], NORM_ORDER.index(r["norm"]),
                                       arm_forms.of(r["arm"]).sort_key(), r["depth"]))


def setting_text(setting):
    """('float32', 'cpu') -> 'float32 on cpu'."""
    return f"{setting[0]} on {setting[1]}"


def collapse_figure(rows, title):
    """The mean cosine between tokens against blocks, one panel per norm
    placement, one line per arm."""
    setup()
    norms = [n for n in NORM_ORDER if any(r["norm"] == n for r in rows)]
    arms = Arms(r["arm"] for r in rows)
    fig, axes = grid(len(norms), 3, panel=(2.9, 2.1), top=1.0, bottom=0.65, left=1.0,
                     wspace=0.8, hspace=0.75, legend=len(arms))
    for ax, norm in zip(axes, norms):
        for arm in arms:
            sel = [r for r in rows if r["norm"] == norm and arm_forms.of(r["arm"]) == arm]
            x = np.array([r["depth"] for r in sel], dtype=float)
            y, lo, hi = (np.array([np.nan if r[k] is None else r[k] for r in sel], dtype=float)
                         for k in ("mean", "low", "high"))
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.sum() > 1:
                ax.fill_between(x[ok], lo[ok], hi[ok], color=arms.color(arm), alpha=0.22, lw=0)
            ax.plot(x, y, color=arms.color(arm), lw=1.8, marker="o", markersize=3.5)
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(NORM_LABELS[norm])
        ax.set_xlabel("blocks")
    axes[0].set_ylabel("mean cosine between tokens")
    header(fig, f"{title}: token collapse against blocks", arms)
    return fig


def gpt_extra(frames, numbers):
    """The hook: the collapse table and, at the deepest block count of the
    book's norm placement, the finding in numbers; and the collapse figure;
    all three of the reference setting (dtype, device), which the labels
    name where the sweep has several."""
    cells = only_model(frames, "gpt")["cells"]
    rows = collapse_rows(cells)
    settings = sorted({(r["dtype"], r["device"]) for r in rows})
    setting = reference_setting(rows) if rows else None
    rows = [r for r in rows if (r["dtype"], r["device"]) == setting]
    labels, title = dict(NORM_LABELS), numbers["title"]
    if len(settings) > 1:
        labels = {norm: f"{label}, {setting_text(setting)}" for norm, label in labels.items()}
        title = f"{title} ({setting_text(setting)})"
    deepest = numbers["deepest"]
    at = {(r["norm"], r["arm"]["shortcut"]): r for r in rows if r["depth"] == deepest
          and arm_forms.of(r["arm"]) in (arm_forms.BOOK, arm_forms.WITHOUT)}  # no scales
    norm = next((n for n in NORM_ORDER if (n, False) in at and (n, True) in at), None)
    finding = None
    if norm is not None:
        without, with_ = at[(norm, False)]["mean"], at[(norm, True)]["mean"]
        if without is not None and with_ is not None:
            finding = {"norm": norm, "label": labels[norm], "blocks": deepest,
                       "without": without, "with": with_,
                       "collapse": without > 0.99 and with_ < 0.9}
    shown = {"dtype": setting[0], "device": setting[1]} if setting else None
    return ({"collapse": rows, "finding": finding, "norm_labels": labels, "setting": shown,
             "settings": [{"dtype": d, "device": v} for d, v in settings]},
            {"collapse": collapse_figure(rows, title)})
