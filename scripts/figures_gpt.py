"""Snakemake job: the GPT section's figures and numbers (shortcutbench.analysis.figures_gpt)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import figures_gpt

    figures_gpt.make_gpt(snakemake.input.partials, snakemake.params.stems,
                         snakemake.output.numbers, snakemake.params.gpt)
