"""Snakemake job: the MLP's figures: the headline variant's gradient profile
and every variant's as numbers (analysis/profile_figure.py), or the overview
(analysis/overview_figures.py)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    if snakemake.rule == "figures_profile":
        from shortcutbench.analysis.mlp.profile_figure import make_profiles

        make_profiles(snakemake.input.summary, snakemake.input.lines, snakemake.input.tables,
                      snakemake.params.stem, snakemake.output.numbers, snakemake.input.partials)
    else:
        from shortcutbench.analysis.mlp.overview_figures import make_overview

        make_overview(snakemake.input.summary, snakemake.input.tables, snakemake.params.stems,
                      snakemake.params.axis_stems, snakemake.input.partials)
