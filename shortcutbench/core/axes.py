"""The axes every family's cells share, and how a chunk's path spells them.

Torch-free, pandas-free and free of the families' registry, so that a
family's own module (core/families/) can import it while it registers.
"""

import itertools
from collections.abc import Iterable


def seed_runs(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """[0, 1, 2, 3, 7, 9, 10] -> [(0, 3), (7, 7), (9, 10)]: runs of consecutive seeds."""
    seeds = sorted(int(s) for s in seeds)
    runs = []
    for _, run in itertools.groupby(enumerate(seeds), key=lambda p: p[1] - p[0]):
        run = [seed for _, seed in run]
        runs.append((run[0], run[-1]))
    return runs


def seeds_slug(seeds: Iterable[int]) -> str:
    """[0, 1, 2, 3, 7, 9, 10] -> '0-3_7_9-10' (a chunk's file name)."""
    return "_".join(str(a) if a == b else f"{a}-{b}" for a, b in seed_runs(seeds))


def parse_seeds_slug(text: str) -> tuple[int, ...]:
    """'0-3_7' -> (0, 1, 2, 3, 7); the inverse of seeds_slug."""
    seeds = []
    for part in text.split("_"):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return tuple(seeds)


def device_slug(device: str) -> str:
    """'cuda:1' -> 'cuda-1': no colons in paths."""
    return device.replace(":", "-")


def study_prefix(study: str) -> str:
    """Where a study's files live under results/ (and logs/): '' for the main sweep."""
    return f"studies/{study}/" if study else ""


def shortcut_variants(shortcuts, scales):
    """(shortcut, lambda) pairs: lambda only means something with a shortcut;
    cells without one record 0.0."""
    variants = [(False, 0.0)] if False in shortcuts else []
    if True in shortcuts:
        variants += [(True, float(scale)) for scale in sorted(scales)]
    return variants


def shortcut_arms(shortcuts, scales, branch_scales):
    """(shortcut, lambda, alpha label) of every arm a cell may take: the
    branch scale alpha, like lambda, only means something with a shortcut;
    cells without one record alpha "1"."""
    alphas = branch_labels(branch_scales)
    return [(shortcut, scale, alpha) for shortcut, scale in shortcut_variants(shortcuts, scales)
            for alpha in (alphas if shortcut else ("1",))]


def branch_labels(values):
    """The config's branch scales -> their labels (records.branch_label), in a
    fixed order: numbers by value, then the rule "1/sqrt(depth)"."""
    # Here, not at the top: records asks the families' registry when it is
    # imported, and a family's module imports this while it registers.
    from shortcutbench.core.records import BRANCH_RULE, branch_label

    labels = {branch_label(v) for v in values}
    return tuple(sorted(labels, key=lambda label: (label == BRANCH_RULE,
                                                   0.0 if label == BRANCH_RULE else float(label))))
