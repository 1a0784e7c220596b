rule laws:
    """The findings of "What the sweep shows": each law's claim, source,
    measured value with its 95% CI, prediction and verdict, from every
    sweep's merged partial results (never its records)."""
    input:
        partials=expand("results/{prefix}partials.json", prefix=PREFIXES),
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
        # the healthy band (decades around the last hidden layer's gradient)
        healthy_band=SWEEP["healthy_band"],
        # which families are cases of which law, and what each law needs
        family_laws=declared_laws(SWEEP),
    script:
        "../../scripts/laws.py"
