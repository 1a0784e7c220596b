# shortcutbench: how shortcut connections keep gradients alive.
# measure -> aggregate -> figures -> report; see README.md.

import os

from snakemake.utils import min_version

min_version("9.0")


# The default sweep, unless a config file is given on the command line: then
# that file is the whole config (keys it omits take the schema's defaults),
# so that a small sweep is not merged into the default one.  --config K=V
# alone still changes single keys of the default sweep.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/training.smk"
include: "workflow/rules/laws.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "report/index.html",
    default_target: True
