"""Snakemake job: the report's figures (see shortcutbench.analysis.figures)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import figures

    if snakemake.rule == "figures_profile":
        figures.make_profiles(snakemake.input.summary, snakemake.input.lines,
                              snakemake.input.tables, snakemake.params.stem,
                              snakemake.output.numbers, snakemake.input.partials)
    else:
        figures.make_overview(snakemake.input.summary, snakemake.input.tables,
                              snakemake.params.stems, snakemake.params.axis_stems,
                              snakemake.input.partials)
