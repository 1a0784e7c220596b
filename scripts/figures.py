"""Snakemake job: the report's figures (see shortcutbench.figures)."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench import figures

    if snakemake.rule == "figures_profile":
        figures.make_profiles(snakemake.input.gradients, snakemake.input.summary,
                              snakemake.params.variants, snakemake.params.stems)
    else:
        figures.make_overview(snakemake.input.gradients, snakemake.input.summary,
                              snakemake.output.tables, snakemake.params.stems)
