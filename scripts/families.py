"""Snakemake job: every family's numbers (results/families.json) and figures
(analysis/family_figures.py), from the main sweep's merged partial results."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.family_figures import make_families

    make_families(snakemake.input.partials, snakemake.params.names, snakemake.params.sections,
                  snakemake.output.numbers, snakemake.params.stems)
