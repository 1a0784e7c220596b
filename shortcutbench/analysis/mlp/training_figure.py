"""The training runs' figure: loss per step and the gradient profile before
and after, with and without shortcut (results/training.csv).  No torch.
"""

import numpy as np

from shortcutbench.analysis.style import Arms, save, setup
from shortcutbench.core.arms import BOOK, WITHOUT


def _geometric_mean(frame, by):
    """Per `by` group: the geometric mean of the positive finite `value`s."""
    positive = frame[np.isfinite(frame["value"]) & (frame["value"] > 0)]
    return positive.assign(log=np.log10(positive["value"])).groupby(by)["log"].mean()


TRAINING_ARMS = Arms([WITHOUT, BOOK])


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
                which = BOOK if shortcut else WITHOUT
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
