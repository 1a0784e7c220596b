# shortcutbench: how shortcut connections keep gradients alive.
# measure -> aggregate -> figures -> report; see README.md.

import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The shortcutbench package sits beside this file; make it importable here
# and in every job, wherever snakemake is run from (-s CHECKOUT/Snakefile -d DIR).
sys.path.insert(0, workflow.basedir)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [workflow.basedir] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
)


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/aggregate.smk"


rule all:
    input:
        "results/gradients.csv",
        "results/summary.csv",
    default_target: True
