# {prefix} is '' for the main sweep and 'studies/NAME/' for a study.


rule merge:
    """Check every chunk of one sweep against the cells it was asked for and
    merge them into one tidy table, results/[studies/NAME/]gradients.csv."""
    input:
        chunks=lambda wildcards: [
            f"results/{c.name}.csv" for c in chunks_of(wildcards.prefix)
        ],
    output:
        "results/{prefix}gradients.csv",
    log:
        "logs/{prefix}merge.log",
    benchmark:
        "logs/benchmark/merge/{prefix}merge.tsv"
    conda:
        "../../environment.yml"
    params:
        # what each chunk must hold: checked before anything is merged
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
    script:
        "../../scripts/merge.py"


rule aggregate:
    """Per everything-but-seed x layer: n, mean and 95% CIs over seeds
    (plain and log10), results/[studies/NAME/]summary.csv."""
    input:
        "results/{prefix}gradients.csv",
    output:
        "results/{prefix}summary.csv",
    log:
        "logs/{prefix}aggregate.log",
    benchmark:
        "logs/benchmark/aggregate/{prefix}aggregate.tsv"
    conda:
        "../../environment.yml"
    params:
        # gradients.csv is checked against these before it is summarised
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
    script:
        "../../scripts/aggregate.py"


rule tables:
    """Every number the report prints (headline, the book's case,
    attenuation, devices, special cells): results/tables.json."""
    input:
        gradients="results/gradients.csv",
    output:
        "results/tables.json",
    log:
        "logs/tables.log",
    benchmark:
        "logs/benchmark/tables.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/tables.py"
