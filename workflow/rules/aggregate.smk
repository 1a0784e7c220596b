rule collect:
    input:
        chunks=chunk_files(),
    output:
        "results/gradients.csv",
    params:
        # what each chunk must hold: checked before anything is merged
        chunks=[CHUNKS[name].params() for name in sorted(CHUNKS)],
    log:
        "logs/collect.log",
    benchmark:
        "logs/benchmark/collect.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/collect.py"


rule aggregate:
    input:
        "results/gradients.csv",
    output:
        "results/summary.csv",
    log:
        "logs/aggregate.log",
    benchmark:
        "logs/benchmark/aggregate.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/aggregate.py"
