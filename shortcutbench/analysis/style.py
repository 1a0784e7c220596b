"""How every figure looks and is saved: seaborn's theme with fixed settings,
the colours of the shortcut arms and the cell states, panel grids, headers
and legends, log axes with plain-text powers of ten, and saving as SVG and
PNG with fixed metadata, so that the same data give the same bytes.  No torch.
"""

import sys

import numpy as np

from shortcutbench.core import arms as arm_forms
from shortcutbench.core.arms import BOOK
from shortcutbench.core.files import atomic_write
from shortcutbench.core.imports import blocked_imports

# seaborn's colorblind palette: orange without shortcut, blue with the book's
# shortcut (lambda = 1, alpha = 1), the other colours for other arms.
WITHOUT_COLOR = "#de8f05"
WITH_COLOR = "#0173b2"
OTHER_COLORS = ("#029e73", "#d55e00", "#cc78bc", "#ca9161", "#949494", "#56b4e9", "#fbafe4",
                "#ece133")
# One colour per cell state (core.states.STATES), colour-blind safe.
STATE_COLORS = {"healthy": "#029e73", "vanished": "#56b4e9", "exploded": "#d55e00",
                "dead": "#3d3d3d", "non-finite": "#cc78bc", "zero-branch": "#ca9161"}
class Arms:
    """The shortcut arms of a sweep (core/arms.py's Arm): their order, labels
    and colours.  Labels name lambda and alpha only where the sweep has
    values other than the book's."""

    def __init__(self, arms):
        self.arms = arm_forms.ordered(arms)
        self.scales, self.branches = arm_forms.knobs(self.arms)
        self._others = [a for a in self.arms if a.shortcut and a != BOOK]

    def __iter__(self):
        return iter(self.arms)

    def __len__(self):
        return len(self.arms)

    def label(self, arm, short=False):
        return arm_forms.label(arm_forms.of(arm), self.scales, self.branches, short=short)

    def color(self, arm):
        arm = arm_forms.of(arm)
        if not arm.shortcut:
            return WITHOUT_COLOR
        if arm == BOOK:
            return WITH_COLOR
        index = self._others.index(arm) if arm in self._others else 0
        return OTHER_COLORS[index % len(OTHER_COLORS)]


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


def import_seaborn():
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

    sns = import_seaborn()
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


def positive(values):
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


def note(ax, text):
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center",
            fontsize=9, color="0.35")


def empty(ax, text):
    """A log-scale panel with nothing to draw: say so, with sane limits."""
    from matplotlib.ticker import NullLocator

    ax.set_ylim(0.1, 10)
    ax.yaxis.set_major_locator(NullLocator())
    note(ax, text)


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


def log_y(ax, numticks=5):
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, numticks=numticks))
    ax.yaxis.set_major_formatter(FuncFormatter(power_of_ten))
    ax.yaxis.set_minor_locator(NullLocator())


def pow10(values):
    with np.errstate(over="ignore", invalid="ignore"):
        return 10.0 ** np.asarray(values, dtype=float)
