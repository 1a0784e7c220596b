"""Snakemake job: tables, figures and provenance -> report/index.html."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import provenance, render

    facts = provenance.gather(snakemake.params.config, snakemake.params.devices,
                              snakemake.params.main_chunks, snakemake.params.logs,
                              snakemake.params.repo, all_chunks=snakemake.params.chunks)
    provenance.write(facts, snakemake.output.provenance)
    figures = {name: snakemake.input[name] for name in ("headline", "attenuation", "heatmap")}
    figures["training"] = snakemake.input.training[0] if snakemake.input.training else None
    figures["profile"] = snakemake.input.profile
    render.write_report(snakemake.input.tables, figures, snakemake.input.profiles,
                        facts, snakemake.output.html,
                        snakemake.input.laws,
                        dict(zip(snakemake.params.axes, snakemake.input.axes)),
                        gpt_path=snakemake.input.gpt[0] if snakemake.input.gpt else None,
                        gpt_figures=dict(zip(("profile", "collapse", "healthy", "norms"),
                                             snakemake.input.gpt[1:])))
