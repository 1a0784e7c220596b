"""Snakemake job: the chunks' partial results of one sweep ->
results/[studies/NAME/]partials.json, summary.csv and lines.csv."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.partials_frame import merge_sweep

    merge_sweep(snakemake.input.partials, snakemake.input.records, snakemake.params.chunks,
                snakemake.params.healthy_band, snakemake.output.partials,
                snakemake.output.summary, snakemake.output.lines, snakemake.params.names)
