rule measure:
    """Measure one chunk: every cell of a block of seeds of one variant of
    one family at one device and dtype (its variant: its options, e.g. one
    activation and width), or a pack of such chunks (core/sweep.py's Pack);
    one row per cell x layer or per parameter, and the partial
    results of each chunk (counts, moments, histograms per group)."""
    output:
        records="results/{chunk}.parquet",
        # small partial results of the chunk, read by rule merge; beside,
        # not among, the Parquet files, so that results/cells/ reads as one dataset
        partial="results/partials/{chunk}.json",
    log:
        run="logs/measure/{chunk}.log",
        # where and with what the chunk was measured; read by the report
        machine="logs/measure/{chunk}.machine.json",
    benchmark:
        "logs/benchmark/measure/{chunk}.tsv"
    # When the cores are busy, the main sweep's chunks start first: the
    # report's longest chain (merge, tables, figures) waits on them, while the
    # studies' short chunks fill the cores meanwhile.
    priority: lambda wildcards: 0 if measuring_job(wildcards).study else 1
    # On a cluster, chunks for one kind of device go out together (see
    # workflow/profiles/slurm); cpu chunks never hold a GPU node.  Inert locally.
    group:
        lambda wildcards: (
            "measure-gpu" if is_gpu(measuring_job(wildcards).device) else "measure-cpu"
        )
    conda:
        "../../environment.yml"
    resources:
        gpu=lambda wildcards: int(is_gpu(measuring_job(wildcards).device)),
        # the chunk's peak memory, estimated from its biggest cell
        # (core/resources.py), so that a cluster asks for what it needs
        mem_mb=lambda wildcards: chunk_mem_mb(measuring_job(wildcards)),
    params:
        chunk=lambda wildcards: measuring_job(wildcards).params(),
        # the healthy band of the cell states in the partial results
        healthy_band=SWEEP["healthy_band"],
        # their format: a newer one re-makes them
        partials_format=PARTIALS_FORMAT,
    script:
        "../../scripts/measure.py"
