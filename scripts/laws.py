"""Snakemake job: every sweep's table -> results/laws.json ("What the sweep shows")."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis.laws import write_laws
    from shortcutbench.analysis.merge import check_gradients

    for path, chunks in zip(snakemake.input.gradients, snakemake.params.chunks):
        check_gradients(path, chunks)
    tables = dict(zip(snakemake.params.names, snakemake.input.gradients))
    training = snakemake.input.training[0] if snakemake.input.training else None
    write_laws(tables, training, snakemake.output[0], snakemake.params.healthy_band)
