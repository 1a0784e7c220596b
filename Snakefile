# shortcutbench: how shortcut connections keep gradients alive, and where they
# make them explode.  measure -> merge -> aggregate/tables/laws -> figures ->
# report; see README.md.

import os

from snakemake.utils import min_version

min_version("9.0")


# The default sweep, unless a config file is given on the command line: then
# that file is the whole config (keys it omits take the schema's defaults), so
# that a small sweep is not merged into the default one.  --config K=V alone
# still edits single keys of the default sweep.  workflow.configfiles holds
# the command line's --configfile files until a configfile: directive runs;
# tests/test_workflow.py pins this behaviour for the Snakemake we install.
CONFIG_FILES = list(workflow.configfiles) or [
    os.path.join(workflow.basedir, "config", "config.yaml")
]
if not workflow.configfiles:

    configfile: CONFIG_FILES[0]


# Where --sdm conda's environment (environment.yml) installs the package from.
os.environ.setdefault("SHORTCUTBENCH_HOME", workflow.basedir)


include: "workflow/rules/common.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/merge.smk"
include: "workflow/rules/gradients.smk"


for family_rules in FAMILY_RULES:

    include: family_rules


include: "workflow/rules/laws.smk"
include: "workflow/rules/families.smk"
include: "workflow/rules/report.smk"


rule all:
    """The default target: the HTML report of the whole sweep."""
    default_target: True
    input:
        "report/index.html",
