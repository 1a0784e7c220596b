"""What a family adds to the numbers and figures every family gets: one
hook per family, hook(frames, numbers) -> (its numbers, {figure name:
figure}), called by rule `families` (analysis/family_figures.py).  The
figures a hook draws are declared in its spec (core/families.py's
FamilySpec.extra_figures), so that the workflow knows them before any job
runs.  No torch.
"""

from shortcutbench.analysis.gpt_section import gpt_extra

HOOKS = {"gpt": gpt_extra}
