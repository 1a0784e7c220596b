rule train:
    """Train every seed and shortcut flag of one (activation, width, norm,
    depth), or of several such groups up to training.runs_per_job runs, on
    the fixed regression task; loss per step, gradient profiles."""
    output:
        "results/training/{job}.csv",
    log:
        "logs/train/{job}.log",
    benchmark:
        "logs/benchmark/train/{job}.tsv"
    conda:
        "../../environment.yml"
    params:
        job=lambda wildcards: TRAINING_JOBS[wildcards.job],
    script:
        "../../scripts/train.py"


rule training_table:
    """Every training run in one table, results/training.csv."""
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
