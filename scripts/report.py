"""Snakemake job: every family's numbers and figures, the findings, the
top-level family's own sections (where it ran) and the provenance ->
report/index.html (shortcutbench.analysis.render)."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.analysis import provenance, render

    facts = provenance.gather(snakemake.params.config, snakemake.params.devices,
                              snakemake.params.main_chunks, snakemake.params.logs,
                              snakemake.params.repo, all_chunks=snakemake.params.chunks,
                              training_jobs=snakemake.params.training_jobs,
                              rules=snakemake.params.rules)
    provenance.write(facts, snakemake.output.provenance)
    # The top-level family's own sections, where it ran (the rule's named inputs).
    sections = {name: getattr(snakemake.input, name)
                for name in snakemake.params.section_inputs} or None
    render.write_report(snakemake.output.html, facts, snakemake.input.families,
                        snakemake.params.family_stems, snakemake.input.laws, sections,
                        snakemake.input.training[0] if snakemake.input.training else None,
                        snakemake.params.switches)
