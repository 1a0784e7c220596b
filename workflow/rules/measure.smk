rule measure:
    """Measure one chunk: every cell of a block of seeds at one (device,
    dtype, activation, width); one row per cell x layer, and the chunk's
    partial results (counts, moments, histograms per group)."""
    output:
        records="results/{chunk}.csv",
        # small partial results of the chunk, read by rule merge
        partial="results/{chunk}.partial.json",
    log:
        run="logs/measure/{chunk}.log",
        # where and with what the chunk was measured; read by the report
        machine="logs/measure/{chunk}.machine.json",
    benchmark:
        "logs/benchmark/measure/{chunk}.tsv"
    # On a cluster, chunks for one kind of device go out together (see
    # workflow/profiles/slurm); cpu chunks never hold a GPU node.  Inert locally.
    group:
        lambda wildcards: (
            "measure-gpu" if is_gpu(CHUNKS[wildcards.chunk].device) else "measure-cpu"
        )
    conda:
        "../../environment.yml"
    resources:
        gpu=lambda wildcards: int(is_gpu(CHUNKS[wildcards.chunk].device)),
    params:
        chunk=lambda wildcards: CHUNKS[wildcards.chunk].params(),
        # the healthy band of the cell states in the partial results
        healthy_band=SWEEP["healthy_band"],
    script:
        "../../scripts/measure.py"
