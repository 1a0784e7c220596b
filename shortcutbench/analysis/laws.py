"""What the sweep shows: every law's finding, for results/laws.json.

A family's findings come from its spec: `findings`, the laws of its own
(the top-level family's, in its own analysis), and `laws`, the laws of
analysis/family_laws.py it is a case of.  The report shows them in this
order: the families' own laws, in the order of their specs, then the others.
"""

from shortcutbench.analysis.family_laws import family_findings
from shortcutbench.analysis.findings import Finding
from shortcutbench.core import states
from shortcutbench.core.families import SPECS, resolve
from shortcutbench.core.files import write_json


def check_laws(partials, training=None, band=states.DEFAULT_BAND,
               declared=None) -> list[Finding]:
    """Every law's finding, in the report's order.
    partials: {'main': the main sweep's partial results, study name: its},
    each {'cells': frame, 'layers': frame, ...} as read_partials gives them.
    training: results/training.csv as a frame, or None.  band: the config's
    healthy_band.  declared: {family: {law: what it needs}}, the families'
    cases of analysis/family_laws.py's laws (core/families/'s declared_laws;
    default: the shipped families')."""
    findings = []
    for family in SPECS.values():
        if family.findings:
            findings += resolve(family.findings)(partials, training, band)
    return findings + family_findings(partials["main"], declared)


def write_laws(partials_paths, training_path, out_path, band=states.DEFAULT_BAND, read=None,
               declared=None):
    """partials_paths: {'main': path, study: path} of the merged
    results/{prefix}partials.json; training_path may be None; band: the
    config's healthy_band; read: path -> {table: frame} (default
    analysis.partials_frame.read_partials); declared: the families' laws
    (check_laws)."""
    import pandas as pd

    if read is None:
        from shortcutbench.analysis.partials_frame import read_partials as read
    partials = {name: read(path) for name, path in partials_paths.items()}
    training = pd.read_csv(training_path) if training_path else None
    result = [finding.to_json() for finding in check_laws(partials, training, band, declared)]
    write_json(result, out_path)
    return result
