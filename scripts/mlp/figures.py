"""Snakemake job: the MLP's figures: the headline variant's gradient profile
and every variant's as numbers (analysis/mlp/profile_figure.py), and the
overview (analysis/mlp/overview_figures.py)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.mlp.overview_figures import make_overview
    from shortcutbench.analysis.mlp.profile_figure import make_profiles

    make_profiles(snakemake.input.summary, snakemake.input.lines, snakemake.input.tables,
                  snakemake.params.profile_stem, snakemake.output.numbers,
                  snakemake.input.partials)
    make_overview(snakemake.input.summary, snakemake.input.tables, snakemake.params.stems,
                  snakemake.params.axis_stems, snakemake.input.partials)
