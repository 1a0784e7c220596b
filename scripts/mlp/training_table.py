"""Snakemake job: every training run -> results/training.csv."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.aggregate import concatenate_tables

    concatenate_tables(snakemake.input, snakemake.output[0])
