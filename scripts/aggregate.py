"""Snakemake job: all chunks -> results/gradients.csv and results/summary.csv."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.aggregate import aggregate

    aggregate(snakemake.input.records, snakemake.params.chunks,
              snakemake.output.gradients, snakemake.output.summary)
