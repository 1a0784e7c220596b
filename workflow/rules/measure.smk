rule measure:
    """Measure one chunk: every cell of a block of seeds at one (device,
    dtype, activation, width); one row per cell x layer."""
    output:
        "results/{chunk}.csv",
    params:
        chunk=lambda wildcards: CHUNKS[wildcards.chunk].params(),
    resources:
        gpu=lambda wildcards: int(is_gpu(CHUNKS[wildcards.chunk].device)),
    # On a cluster, chunks for one kind of device go out together (see
    # workflow/profiles/slurm); cpu chunks never hold a GPU node.  Inert locally.
    group:
        lambda wildcards: "measure-gpu" if is_gpu(CHUNKS[wildcards.chunk].device) else "measure-cpu"
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
