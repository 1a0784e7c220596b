"""The report a person reads: one self-contained HTML page (Jinja2).

`render(provenance, families, family_figures, laws, sections)` fills the
templates in templates/: every family's numbers (results/families.json) and
figures (analysis/family_sections.py), the findings (results/laws.json), the
sections of its own of the family whose section is the config's top level
where it ran (its spec's `sections`, with its template's `lede` and
`sections`), and the provenance; figures are inlined as data: URIs
(analysis/svg.py).  It needs neither pandas nor matplotlib, so the report
job starts in a fraction of a second.

The page's words are made from the data (analysis/families.py's for every
family, its own module's for the top-level family's sections): what the
cells at the deepest depth are (healthy, vanished, exploded, dead,
non-finite), never a fixed sentence.  Two small inline scripts make it
easier to read at many axes: a variant picker, which draws the picked
variant's gradient profile from its numbers (results/figures/profiles.json,
embedded; without script the headline's variant's figure shows), and
sortable tables.  Nothing is fetched from anywhere.
"""

import importlib
from pathlib import Path

from shortcutbench.analysis.family_sections import family_context, overview_rows, shortcut_words
from shortcutbench.analysis.formats import (
    finite,
    fmt_decades,
    fmt_full,
    fmt_key,
    fmt_num,
    fmt_times,
)
from shortcutbench.analysis.svg import figure
from shortcutbench.analysis.variants import describe_seeds, variant_label
from shortcutbench.core.families import SPECS, shipped_sections, spec, top_level_family
from shortcutbench.core.files import atomic_write, read_json

TEMPLATES = Path(__file__).with_name("templates")


def environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(num=fmt_num, full=fmt_full, key=fmt_key, times=fmt_times,
                       decades=fmt_decades, seeds=describe_seeds)
    env.globals.update(variant_label=variant_label, finite=finite)
    return env


def software_rows(prov):
    """The software table: every package of provenance's `versions` (the
    core ones, then each library a measuring job imported), its version
    where the report was built and the versions the measuring jobs found,
    with the families whose jobs imported it where not every family's did."""
    from shortcutbench.analysis.provenance import canonical

    jobs = {canonical(p["name"]): p for p in prov.get("job_packages", [])}
    everyone = {model for p in jobs.values() for model in p["families"]}
    pythons = sorted({m["python"] for m in prov.get("machines", []) if m.get("python")})
    rows = []
    for name, version in prov["versions"].items():
        job = jobs.get(canonical(name), {})
        families = job.get("families", [])
        rows.append({"name": name, "here": version,
                     "jobs": pythons if name == "python" else job.get("versions", []),
                     "families": families if set(families) != everyone else []})
    return rows


# The top-level keys that sweep the top-level family alone (the other
# families take their devices, dtypes and seeds_per_job from the top level
# where their sections name none).
TOP_LEVEL_KEYS = ("depths", "widths", "seeds", "shortcut", "shortcut_scales", "branch_scales",
                  "activations", "inits", "norms", "studies")


def config_as_run(config):
    """The validated config without the sections of families that did not
    run: their defaults say nothing about this run."""
    top = top_level_family()
    models = config.get("models", [top])
    shown = {}
    for key, value in config.items():
        if key in shipped_sections() and key not in models:
            continue
        if key in TOP_LEVEL_KEYS and top not in models:
            continue
        if key == "families":
            value = {name: family for name, family in value.items() if name in models}
            if not value:
                continue
        shown[key] = value
    return shown


def contents(families, own):
    """The page's sections, in order, as (id, title): numbered by position.
    own: the top-level family's own sections, where it ran."""
    toc = [("headline", "Headline"), *own]
    toc += [(f"family-{f['name']}", f["title"]) for f in families if not f["own_sections"]]
    toc += [("laws", "What the sweep shows"), ("provenance", "Config & provenance")]
    return toc


def laws_words():
    """Which families have findings, for a page where none applies."""
    titles = [found.title for found in SPECS.values() if found.findings or found.laws]
    if len(titles) > 1:
        titles[-1] = "and " + titles[-1]
    return (", " if len(titles) > 2 else " ").join(titles)


def render(provenance, families, family_figures, laws=None, sections=None, training=None,
           switches=None):
    """The report as one HTML string.

    provenance: what provenance.gather() returned.
    families: results/families.json (read_json()), every family's numbers.
    family_figures: {family: {figure: (svg bytes, svg path)}}.
    laws: the findings of results/laws.json (analysis/laws.py), or None.
    sections: the top-level family's own sections as its report module's
              `read` gives them (its spec's `sections`), where it ran, or None.
    training: the training figure's svg bytes, or None.
    switches: {family: its check's `switch`}, how a user family's shortcut
              was removed (core/family_check.py), where its check said.
    """
    top = spec(top_level_family())
    fams = [family_context(f, family_figures.get(f["name"], {}),
                           (switches or {}).get(f["name"]))
            for f in families["families"]]
    own = {"top": None}
    if sections is not None:
        own = importlib.import_module(top.sections).context(sections)
        own["top"] = {"name": top.name, "template": top.template}
    for f in fams:  # shown by its own sections, where it has them, never the generic one
        f["own_sections"] = spec(f["name"]).sections is not None
    toc = contents(fams, own.pop("toc", []))
    import yaml

    config_yaml = yaml.safe_dump(config_as_run(provenance.get("config", {})), sort_keys=False,
                                 default_flow_style=None, width=88)
    template = environment().get_template("report.html.j2")
    return template.render(
        **own, families=fams, overview=overview_rows(fams),
        shortcut_words=shortcut_words(fams),
        n_cells=sum(f["n_cells"] for f in fams), band=families.get("band", 2),
        toc=toc, num={key: i for i, (key, _) in enumerate(toc, 1)},
        prov=provenance, config_yaml=config_yaml, laws=laws, laws_words=laws_words(),
        family_titles={f["name"]: f["title"] for f in fams}, software=software_rows(provenance),
        fig={"training": figure(training)})


def write_report(html_path, provenance, families_path, family_stems, laws_path=None,
                 section_paths=None, training_path=None, switches=None):
    """The report job: every family's numbers and figures, the findings,
    the top-level family's own sections (where it ran) and the provenance ->
    report/index.html.
    family_stems: {family: {figure: path without extension}};
    section_paths: the files of the top-level family's own sections, as the
                   report rule's `section_inputs` name them, or None;
    switches: {family: its check's `switch`} (render)."""
    def read(path):
        return Path(path).read_bytes() if path else None

    family_figures = {name: {figure: (read(f"{stem}.svg"), f"{stem}.svg")
                             for figure, stem in stems.items()}
                      for name, stems in family_stems.items()}
    sections = None
    if section_paths:
        sections = importlib.import_module(spec(top_level_family()).sections).read(section_paths)
    html = render(provenance, read_json(families_path), family_figures,
                  read_json(laws_path) if laws_path else None, sections, read(training_path),
                  switches)
    with atomic_write(html_path, encoding="utf-8") as f:
        f.write(html)
    return html
