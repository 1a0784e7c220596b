"""Snakemake job: the training runs' figure (see shortcutbench.figures)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import figures

    figures.make_training(snakemake.input[0], snakemake.params.stem)
