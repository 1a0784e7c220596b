rule train:
    output:
        "results/training/{job}.csv",
    params:
        job=lambda wildcards: TRAINING_JOBS[wildcards.job],
    log:
        "logs/train/{job}.log",
    benchmark:
        "logs/benchmark/train/{job}.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/train.py"


rule training_table:
    input:
        [f"results/training/{job}.csv" for job in sorted(TRAINING_JOBS)],
    output:
        "results/training.csv",
    log:
        "logs/training_table.log",
    benchmark:
        "logs/benchmark/training_table.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/training_table.py"
