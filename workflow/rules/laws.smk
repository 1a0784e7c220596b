rule laws:
    """The findings of "What the sweep shows": each law's claim, source,
    measured value with its 95% CI, prediction and verdict."""
    input:
        gradients=expand("results/{prefix}gradients.csv", prefix=PREFIXES),
        training=["results/training.csv"] if TRAINING_JOBS else [],
    output:
        "results/laws.json",
    log:
        "logs/laws.log",
    benchmark:
        "logs/benchmark/laws.tsv"
    conda:
        "../../environment.yml"
    params:
        names=["main", *sorted(SWEEP["studies"])],
        # each table is checked against its chunks before it is read
        chunks=[[c.params() for c in chunks_of(prefix)] for prefix in PREFIXES],
        # the healthy band (decades around the last layer's gradient)
        healthy_band=SWEEP["healthy_band"],
    script:
        "../../scripts/laws.py"
