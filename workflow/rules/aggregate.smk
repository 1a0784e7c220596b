# {prefix} is '' for the main sweep and 'studies/NAME/' for a study.


rule collect:
    input:
        chunks=lambda wildcards: [f"results/{c.name}.csv" for c in chunks_of(wildcards.prefix)],
    output:
        "results/{prefix}gradients.csv",
    params:
        # what each chunk must hold: checked before anything is merged
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
    log:
        "logs/{prefix}collect.log",
    benchmark:
        "logs/benchmark/collect/{prefix}collect.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/collect.py"


rule aggregate:
    input:
        "results/{prefix}gradients.csv",
    output:
        "results/{prefix}summary.csv",
    params:
        # gradients.csv is checked against these before it is summarised
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
    log:
        "logs/{prefix}aggregate.log",
    benchmark:
        "logs/benchmark/aggregate/{prefix}aggregate.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/aggregate.py"
