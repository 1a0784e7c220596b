"""Snakemake job: the training runs of one (activation, width, norm, depth)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]) as log:
    from shortcutbench.measuring.training import train_group

    train_group(snakemake.params.job, snakemake.output[0], log)
