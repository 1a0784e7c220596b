rule measure:
    output:
        "results/{chunk}.csv",
    params:
        chunk=lambda wildcards: CHUNKS[wildcards.chunk].params(),
    resources:
        gpu=lambda wildcards: int(is_gpu(CHUNKS[wildcards.chunk].device)),
    log:
        run="logs/measure/{chunk}.log",
        # where and with what the chunk was measured; read by the report
        machine="logs/measure/{chunk}.machine.json",
    benchmark:
        "logs/benchmark/measure/{chunk}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/measure.py"
