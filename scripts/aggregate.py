"""Snakemake job: results/gradients.csv -> results/summary.csv (pandas)."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.aggregate import summarize

    summarize(snakemake.input[0], snakemake.output[0])
