"""Snakemake job: a sweep's Parquet chunks -> results/[studies/NAME/]gradients.csv."""
from shortcutbench.core.files import job_log

with job_log(snakemake.log[0]):
    from shortcutbench.core.store import recorded_sha256, write_gradients_csv

    write_gradients_csv(snakemake.input.chunks, snakemake.params.chunks, snakemake.output[0],
                        digests=[recorded_sha256(p, c) for p, c in
                                 zip(snakemake.params.partials, snakemake.params.chunks)])
