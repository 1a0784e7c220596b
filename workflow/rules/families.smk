# Every family's numbers and figures, alike, plus what a family's hook adds
# (its spec's analysis_hook).


rule families:
    """Every family's section: its cell states, the healthy share and the
    first layer's gradient against depth, the gradient per layer at the
    deepest depth, with against without shortcut (results/families.json),
    and its figures (results/figures/family/NAME/)."""
    input:
        partials="results/partials.json",
    output:
        numbers="results/families.json",
        svg=[
            report(
                f"{stem}.svg",
                caption="../report/family.rst",
                category="Families",
                subcategory=name,
                labels={"family": name, "figure": figure},
            )
            for name, stems in FAMILY_STEMS.items()
            for figure, stem in stems.items()
        ],
        png=[
            f"{stem}.png" for stems in FAMILY_STEMS.values() for stem in stems.values()
        ],
    log:
        "logs/families.log",
    benchmark:
        "logs/benchmark/families.tsv"
    conda:
        "../../environment.yml"
    params:
        names=MODELS,
        stems=FAMILY_STEMS,
        # each family's config section, shown in the report as it ran
        sections={
            name: section_of(SWEEP, name)
            for name in MODELS
            if name != top_level_family()
        },
        # results/families.json's format: a newer one re-makes it
        numbers_format=NUMBERS_FORMAT,
    script:
        "../../scripts/families.py"
