"""Snakemake job: all chunks -> results/gradients.csv."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.collect import collect

    collect(snakemake.input.chunks, snakemake.params.chunks, snakemake.output[0])
