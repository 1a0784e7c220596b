"""Snakemake job: every sweep's table -> results/laws.json ("What the sweep shows")."""
from shortcutbench.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.collect import check_gradients
    from shortcutbench.laws import write_findings

    for path, chunks in zip(snakemake.input.gradients, snakemake.params.chunks):
        check_gradients(path, chunks)
    tables = dict(zip(snakemake.params.names, snakemake.input.gradients))
    training = snakemake.input.training[0] if snakemake.input.training else None
    write_findings(tables, training, snakemake.output[0], snakemake.config.get("healthy_band", 2))
