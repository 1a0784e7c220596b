"""Snakemake job: results/gradients.csv -> results/summary.csv (pandas)."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.aggregate import summarize
    from shortcutbench.collect import check_gradients

    # A table truncated or edited after collect wrote it is named and refused.
    check_gradients(snakemake.input[0], snakemake.params.chunks)
    summarize(snakemake.input[0], snakemake.output[0])
