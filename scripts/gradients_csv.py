"""Snakemake job (rule gradients_csv): every chunk of one sweep ->
results/[studies/NAME/]gradients.csv."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.merge import merge_chunks

    merge_chunks(snakemake.input.chunks, snakemake.params.chunks, snakemake.output[0])
