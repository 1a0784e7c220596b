"""Snakemake job: results/gradients.csv -> results/summary.csv (pandas)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.aggregate import summarize
    from shortcutbench.analysis.merge import check_gradients

    # A table truncated or edited after the merge wrote it is named and refused.
    check_gradients(snakemake.input[0], snakemake.params.chunks)
    summarize(snakemake.input[0], snakemake.output[0])
