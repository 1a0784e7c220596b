"""Snakemake job: every family's numbers and figures, the findings, the
MLP's tables and figures (where it ran) and the provenance ->
report/index.html (shortcutbench.analysis.render)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import provenance, render

    facts = provenance.gather(snakemake.params.config, snakemake.params.devices,
                              snakemake.params.main_chunks, snakemake.params.logs,
                              snakemake.params.repo, all_chunks=snakemake.params.chunks)
    provenance.write(facts, snakemake.output.provenance)
    # The MLP's sections, where models lists mlp (the rule's named inputs).
    names = ("tables", "headline", "attenuation", "heatmap", "profile", "profiles")
    mlp = ({name: getattr(snakemake.input, name) for name in names}
           if hasattr(snakemake.input, "tables") else None)
    render.write_report(snakemake.output.html, facts, snakemake.input.families,
                        snakemake.params.family_stems, snakemake.input.laws, mlp,
                        dict(zip(snakemake.params.axes, snakemake.input.axes)),
                        snakemake.input.training[0] if snakemake.input.training else None,
                        snakemake.params.switches)
