"""Snakemake job: the training runs' figure (analysis/mlp/training_figure.py)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.mlp.training_figure import make_training

    make_training(snakemake.input[0], snakemake.params.stem)
