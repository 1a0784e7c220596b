"""Snakemake job: results/partials.json -> results/tables.json (every number the report prints)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.mlp.tables import make_tables

    make_tables(snakemake.input.partials, snakemake.output[0])
