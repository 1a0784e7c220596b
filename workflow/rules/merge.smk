# {prefix} is '' for the main sweep and 'studies/NAME/' for a study.


rule merge:
    """Fold the partial results of every chunk of one sweep, one file at a
    time, each checked against its chunk and its records file's sha256:
    results/[studies/NAME/]partials.json, summary.csv (per group and layer,
    over seeds) and lines.csv (single-seed profiles, 50 seeds per group)."""
    input:
        partials=lambda wildcards: expand(
            rules.measure.output.partial,
            chunk=[c.name for c in chunks_of(wildcards.prefix)],
        ),
        # only hashed, never read: each must be the file its partials came from
        records=lambda wildcards: expand(
            rules.measure.output.records,
            chunk=[c.name for c in chunks_of(wildcards.prefix)],
        ),
    output:
        partials="results/{prefix}partials.json",
        summary="results/{prefix}summary.csv",
        lines="results/{prefix}lines.csv",
    log:
        "logs/{prefix}merge.log",
    benchmark:
        "logs/benchmark/merge/{prefix}merge.tsv"
    conda:
        "../../environment.yml"
    params:
        # what each chunk's partial results must have been made for
        chunks=lambda wildcards: [c.params() for c in chunks_of(wildcards.prefix)],
        # the chunks' names: their partial results are folded in this order
        names=lambda wildcards: [c.name for c in chunks_of(wildcards.prefix)],
        healthy_band=SWEEP["healthy_band"],
        # the partial results' format: a newer one re-makes the merge
        partials_format=PARTIALS_FORMAT,
    script:
        "../../scripts/merge.py"
