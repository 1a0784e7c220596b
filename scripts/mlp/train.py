"""Snakemake job: the training runs of one job (one group, or a pack of them)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]) as log:
    from shortcutbench.measuring.mlp.training import train_job

    train_job(snakemake.params.job, snakemake.output[0], log)
