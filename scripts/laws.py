"""Snakemake job: every sweep's merged partial results -> results/laws.json
("What the sweep shows")."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.laws import write_laws

    partials = dict(zip(snakemake.params.names, snakemake.input.partials))
    training = snakemake.input.training[0] if snakemake.input.training else None
    write_laws(partials, training, snakemake.output[0], snakemake.params.healthy_band,
               declared=snakemake.params.family_laws)
