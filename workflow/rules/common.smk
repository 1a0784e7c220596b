# The sweep as Snakemake sees it: the validated config and its chunks.
import sys

from shortcutbench.core.config import ConfigError, read_config_files, validate_config
from shortcutbench.core.families import (
    NUMBERS_FORMAT,
    SPECS,
    declared_laws,
    section_of,
    spec,
    top_level_family,
)
from shortcutbench.core.family_check import check_user_families
from shortcutbench.core.sweep import (
    CHUNK_PATTERN,
    PREFIX_PATTERN,
    TRAINING_JOB_PATTERN,
    job_named,
    memory_problem,
    plan_chunks,
    study_prefix,
    training_jobs,
    write_pack_lists,
)
from shortcutbench.core.devices import is_gpu
from shortcutbench.core.partials import VERSION as PARTIALS_FORMAT
from shortcutbench.core.resources import chunk_mem_mb

SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
try:
    SWEEP = validate_config(config, SCHEMA, file_config=read_config_files(CONFIG_FILES))
    if workflow.is_main_process:
        for note in SWEEP["notes"]:
            print(f"Note: {note}.", file=sys.stderr)
    # A family of the user's own is built and run once, in a process of its
    # own, before any job: each problem named with its config key.  Only by
    # the snakemake the user runs: a cluster job parses this file again.
    try:
        CHECKS = (
            check_user_families(SWEEP, os.getcwd()) if workflow.is_main_process else {}
        )
    except ValueError as error:
        raise ConfigError(
            f"Invalid config; nothing was run.\n  config key {error}"
        ) from None
    # Memory known before a job runs: a cell that cannot fit is refused here.
    CHUNKS = {chunk.name: chunk for chunk in plan_chunks(SWEEP, "results", CHECKS)}
    MEMORY_PROBLEM = memory_problem(list(CHUNKS.values()), SWEEP.get("max_mem_mb"))
    if MEMORY_PROBLEM:
        raise ConfigError(MEMORY_PROBLEM)
except ConfigError as error:
    # The message alone: it names the key and the fix; a traceback would not help.
    sys.exit(f"ConfigError: {error}")


# Before the first job (neither a dry run nor a job's own Snakemake runs
# this): a local run measures where it plans, so a device this machine lacks,
# for a chunk it is about to measure, is refused now, not by a job midway (a
# cluster's nodes may have it); and what a cluster job's Snakemake, which
# plans again while the sweep runs, needs to find this plan's packs by name
# (measuring_job).
onstart:
    ACCELERATORS = sorted(
        {
            measuring_job(job.wildcards).device
            for job in workflow.dag.needrun_jobs()
            if job.rule.name == "measure"
        }
        - {"cpu"}
    )
    if workflow.local_exec and ACCELERATORS:
        # torch, which this imports, only where a device is not the CPU
        from shortcutbench.measuring.devices import unavailable_here

        DEVICE_PROBLEM = unavailable_here(ACCELERATORS)
        if DEVICE_PROBLEM:
            sys.exit(f"ConfigError: {DEVICE_PROBLEM}")
    write_pack_lists(CHUNKS.values(), "results")


TRAINING_JOBS = (
    training_jobs(SWEEP["training"], SWEEP["engine"], "results")
    if "training" in SWEEP
    else {}
)
# '' for the main sweep (results/), 'studies/NAME/' for each study.
PREFIXES = [study_prefix(name) for name in ["", *sorted(SWEEP["studies"])]]
# The model families to measure; the top-level family's own tables, figures
# and studies only where it is one of them.
MODELS = SWEEP["models"]
HAS_TOP_LEVEL = top_level_family() in MODELS
# The shipped families' own rules (the Snakefile includes them), and the
# files the top-level family's own report sections are made from, which its
# rules name where it runs.
FAMILY_RULES = [found.rules for found in SPECS.values() if found.rules]
SECTION_INPUTS = {}
# Every family's figures (analysis/family_figures.py and its hook's).
FAMILY_STEMS = {
    name: {
        figure: f"results/figures/family/{name}/{figure}"
        for figure in spec(name).figures
    }
    for name in MODELS
}


wildcard_constraints:
    chunk=CHUNK_PATTERN,
    prefix=PREFIX_PATTERN,
    job=TRAINING_JOB_PATTERN,


def measuring_job(wildcards):
    """The measuring job (chunk or pack) a measure job's wildcards name."""
    return job_named(wildcards.chunk, CHUNKS, "results")


def chunks_of(prefix):
    """The chunks of one sweep, by name, in a fixed order."""
    return [
        CHUNKS[name] for name in sorted(CHUNKS) if CHUNKS[name].study_prefix == prefix
    ]


# Seconds of work each: on a cluster they run where snakemake runs, not as
# jobs that would wait in the queue longer than they take.
localrules:
    all,
    merge,
    gradients_csv,
    laws,
    families,
    report,
