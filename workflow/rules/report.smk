# The report a person reads: one self-contained HTML file, report/index.html.
# Provenance (machines, times, git state, per-job wall time and memory) is read
# at report time from logs/ -- logs, not declared inputs -- and, being
# different on every run, kept out of results/.


report: "../report/workflow.rst"


rule report:
    """The self-contained HTML report, report/index.html, and how it was
    made (report/provenance.json)."""
    input:
        # the top-level family's own sections, where it runs
        **SECTION_INPUTS,
        laws="results/laws.json",
        training=["results/figures/training.svg"] if TRAINING_JOBS else [],
        # every family's numbers and figures
        families="results/families.json",
        family_figures=[
            f"{stem}.svg" for stems in FAMILY_STEMS.values() for stem in stems.values()
        ],
    output:
        html=report(
            "report/index.html",
            caption="../report/index.rst",
            category="Report",
            labels={"file": "report/index.html"},
        ),
        provenance="report/provenance.json",
    log:
        "logs/report.log",
    benchmark:
        "logs/benchmark/report.tsv"
    conda:
        "../../environment.yml"
    params:
        section_inputs=list(SECTION_INPUTS),
        family_stems=FAMILY_STEMS,
        # how each user family's shortcut was removed, as its check found
        # (core/family_check.py); the shipped families' are in their specs
        switches={
            name: check["switch"]
            for name, check in CHECKS.items()
            if "switch" in check
        },
        config=config,
        devices=SWEEP["devices"],
        # the measuring jobs behind the report's numbers (the main sweep), and all of them
        main_chunks=[chunk.name for chunk in chunks_of("")],
        chunks=sorted(CHUNKS),
        # the training jobs of this config and the workflow's rules, in the
        # order they are defined: other benchmark files are stale
        training_jobs=sorted(TRAINING_JOBS),
        rules=[rule.name for rule in workflow.rules],
        logs="logs",
        repo=workflow.basedir,
    script:
        "../../scripts/report.py"
