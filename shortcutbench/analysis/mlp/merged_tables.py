"""The merge's small tables as the figures read them: results/summary.csv and
results/lines.csv (checked against the sha256 the merge recorded), one
variant's rows, one arm's rows, and the arms they hold.  No torch.
"""

from functools import cache
from pathlib import Path

import numpy as np

from shortcutbench.analysis.style import Arms
from shortcutbench.analysis.variants import VARIANT_AXES
from shortcutbench.core import arms as arm_forms
from shortcutbench.core.arms import ARM_COLUMNS
from shortcutbench.core.families.mlp import NAME
from shortcutbench.core.files import read_json


def arms_of(frame):
    """The arms in a frame with columns shortcut, shortcut_scale, branch_scale."""
    return Arms(frame[list(ARM_COLUMNS)].drop_duplicates().itertuples(index=False))


def arm_mask(frame, arm):
    f, scale, branch = arm_forms.of(arm)
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


@cache
def files_sha256(partials_path) -> dict:
    """{file name: sha256} the merge recorded in partials.json, read once
    per job (the file is megabytes; a job may read two tables)."""
    return read_json(partials_path).get("files_sha256", {})


def read_table(path, partials_path=None):
    """results/summary.csv or results/lines.csv, alpha kept as its label:
    the MLP's rows (every family's figures are analysis/family_figures.py's).
    partials_path: the merged partials.json, whose files_sha256 the file
    must match (a row removed or a number edited is refused by name)."""
    import pandas as pd

    if partials_path is not None:
        from shortcutbench.core.store import verify

        recorded = files_sha256(partials_path).get(Path(path).name)
        if recorded is None:
            raise ValueError(f"{partials_path} records no sha256 of {path}: it was made by an "
                             f"older shortcutbench; run snakemake again with --forcerun merge")
        verify(path, recorded)
    table = pd.read_csv(path, dtype={"branch_scale": str})
    if "model" in table:
        table = table[table["model"] == NAME].reset_index(drop=True)
    return table
