# The book's MLP's own rules (its spec's `rules`): every number its own
# sections of the report print (results/tables.json), their figures and its
# training runs.
from shortcutbench.core.families.mlp import training_job_mem_mb, training_memory_problem


# Seconds of work each, as the shared ones (workflow/rules/common.smk).
localrules:
    tables,
    figures,
    figures_training,
    training_table,


rule tables:
    """Every number the report prints (headline, the book's case,
    attenuation, cell states, devices, special cells), from the merged
    partial results: results/tables.json."""
    input:
        partials="results/partials.json",
    output:
        "results/tables.json",
    log:
        "logs/tables.log",
    benchmark:
        "logs/benchmark/tables.tsv"
    conda:
        "../../environment.yml"
    script:
        "../../scripts/mlp/tables.py"


# The report's figures, drawn from the merged results in one job (seaborn
# costs a process ~2 s to import): the gradient profile (results/summary.csv,
# results/lines.csv), and the overview (cell states, axis effects,
# attenuation, heat map) from results/summary.csv and results/tables.json, the
# numbers the report prints.  Neither reads the tidy records: no figure grows
# with the number of seeds.
OVERVIEW_FIGURES = ("headline", "attenuation", "heatmap")
# The axes beyond depth, seed and the shortcut flag that the main sweep varies:
# one "axis effects" figure each.
AXIS_KEYS = {
    "width": "widths",
    "activation": "activations",
    "init": "inits",
    "norm": "norms",
    "dtype": "dtypes",
    "device": "devices",
    "shortcut_scale": "shortcut_scales",
    "branch_scale": "branch_scales",
}
SWEPT_AXES = [
    axis
    for axis, key in AXIS_KEYS.items()
    if HAS_TOP_LEVEL
    and len(SWEEP[key]) > 1
    and (axis not in ("shortcut_scale", "branch_scale") or True in SWEEP["shortcut"])
]
AXIS_STEMS = {axis: f"results/figures/axis/{axis}" for axis in SWEPT_AXES}


rule figures:
    """The gradient profile of the headline's variant (mean |grad| per layer,
    one panel per depth, one colour per shortcut arm) and every variant's
    profile as numbers, which the report's variant picker draws; the cell
    states by depth of the headline's variant, the effect of each swept axis
    at the deepest depth, the attenuation with depth and the layer x depth
    heat map."""
    input:
        summary="results/summary.csv",
        lines="results/lines.csv",
        # the headline's variant, the sweep's variants and the numbers the report prints
        tables="results/tables.json",
        # the sha256 of summary.csv and lines.csv, recorded by the merge,
        # checked before drawing
        partials="results/partials.json",
    output:
        profile=report(
            "results/figures/profile.svg",
            caption="../report/profile.rst",
            category="Figures",
            subcategory="Gradient profile",
            labels={"figure": "gradient profile"},
        ),
        numbers="results/figures/profiles.json",
        headline=report(
            "results/figures/headline.svg",
            caption="../report/headline.rst",
            category="Figures",
            subcategory="Overview",
            labels={"figure": "headline"},
        ),
        attenuation=report(
            "results/figures/attenuation.svg",
            caption="../report/attenuation.rst",
            category="Figures",
            subcategory="Overview",
            labels={"figure": "attenuation"},
        ),
        heatmap=report(
            "results/figures/heatmap.svg",
            caption="../report/heatmap.rst",
            category="Figures",
            subcategory="Overview",
            labels={"figure": "heat map"},
        ),
        axes=[
            report(
                f"{stem}.svg",
                caption="../report/axis.rst",
                category="Figures",
                subcategory="Axis effects",
                labels={"figure": "axis effect", "axis": axis},
            )
            for axis, stem in AXIS_STEMS.items()
        ],
        png=[f"results/figures/{name}.png" for name in ("profile", *OVERVIEW_FIGURES)]
        + [f"{stem}.png" for stem in AXIS_STEMS.values()],
    log:
        "logs/figures.log",
    benchmark:
        "logs/benchmark/figures.tsv"
    conda:
        "../../environment.yml"
    params:
        profile_stem=lambda wildcards, output: os.path.splitext(output.profile)[0],
        stems={name: f"results/figures/{name}" for name in OVERVIEW_FIGURES},
        axis_stems=AXIS_STEMS,
    script:
        "../../scripts/mlp/figures.py"


rule figures_training:
    """The training runs: loss per step and gradient profiles before and
    after."""
    input:
        "results/training.csv",
    output:
        svg=report(
            "results/figures/training.svg",
            caption="../report/training.rst",
            category="Figures",
            subcategory="Training",
            labels={"figure": "training"},
        ),
        png="results/figures/training.png",
    log:
        "logs/figures_training.log",
    benchmark:
        "logs/benchmark/figures_training.tsv"
    conda:
        "../../environment.yml"
    params:
        stem=lambda wildcards, output: os.path.splitext(output.svg)[0],
    script:
        "../../scripts/mlp/figures_training.py"


# What its own sections of the report are made from, where it runs
# (analysis/mlp/report.py's `read`): the report rule's inputs.
SECTION_INPUTS.update(
    {
        "tables": "results/tables.json",
        "headline": "results/figures/headline.svg",
        "attenuation": "results/figures/attenuation.svg",
        "heatmap": "results/figures/heatmap.svg",
        # the headline's variant's profile, and every variant's as numbers
        "profile": "results/figures/profile.svg",
        "profiles": "results/figures/profiles.json",
        # each swept axis' effect, named by its file
        "axes": [f"{stem}.svg" for stem in AXIS_STEMS.values()],
    }
    if HAS_TOP_LEVEL
    else {}
)


# Its training runs (the config's `training`; core/sweep.py's training_jobs).
# Memory known before a job runs, as for the measuring: a training group that
# cannot fit is refused here.
TRAINING_MEMORY_PROBLEM = training_memory_problem(
    TRAINING_JOBS.values(), SWEEP.get("max_mem_mb")
)
if TRAINING_MEMORY_PROBLEM:
    sys.exit(f"ConfigError: {TRAINING_MEMORY_PROBLEM}")


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
    # the longest jobs: they start with the main sweep's chunks (rule measure)
    priority: 1
    conda:
        "../../environment.yml"
    resources:
        # its biggest group's estimated peak, so that a cluster asks for it
        mem_mb=lambda wildcards: training_job_mem_mb(TRAINING_JOBS[wildcards.job]),
    params:
        job=lambda wildcards: TRAINING_JOBS[wildcards.job],
    script:
        "../../scripts/mlp/train.py"


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
        "../../scripts/mlp/training_table.py"
