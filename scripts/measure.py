"""Snakemake job: measure one chunk of cells (shortcutbench.measuring.measure.run_chunk)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log.run) as log:
    from shortcutbench.measuring.measure import run_chunk

    run_chunk(snakemake.params.chunk, snakemake.output.records, snakemake.log.machine, log,
              partial_path=snakemake.output.partial, band=snakemake.params.healthy_band)
