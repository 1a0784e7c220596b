rule aggregate:
    input:
        records=chunk_files(),
    output:
        gradients="results/gradients.csv",
        summary="results/summary.csv",
    params:
        chunks=[CHUNKS[name].params() for name in sorted(CHUNKS)],
    log:
        "logs/aggregate.log",
    benchmark:
        "logs/benchmark/aggregate.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/aggregate.py"
