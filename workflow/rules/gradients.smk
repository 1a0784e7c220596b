# results/[studies/NAME/]gradients.csv: every record of one sweep in one CSV
# table, today's columns and bytes, made from the Parquet chunks on request
# (`snakemake results/gradients.csv`); the report does not need it.


rule gradients_csv:
    """Check every Parquet chunk of one sweep (its recorded sha256, its cells)
    and write its records as one CSV table sorted by records.SORT_COLUMNS,
    results/[studies/NAME/]gradients.csv, in bounded memory."""
    input:
        chunks=lambda wildcards: [
            f"results/{c.name}.parquet" for c in chunks_of(wildcards.prefix)
        ],
    output:
        "results/{prefix}gradients.csv",
    log:
        "logs/{prefix}gradients_csv.log",
    benchmark:
        "logs/benchmark/gradients_csv/{prefix}gradients_csv.tsv"
    conda:
        "../../environment.yml"
    params:
        # what each chunk must hold: checked before anything is written
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
        # each chunk's partial.json, where the measuring job recorded its
        # sha256 (written by the same job as the chunk, so there with it)
        partials=lambda wildcards: expand(
            rules.measure.output.partial,
            chunk=[c.name for c in chunks_of(wildcards.prefix)],
        ),
    script:
        "../../scripts/gradients_csv.py"
