"""The report never references anything outside itself, runs no code but its
own inline script (the package's templates/report.js: a variant picker and
sortable tables), and escapes every string it did not write itself.

Which strings from outside can reach report/index.html?  From the config:
none can carry markup -- every string the schema allows is an enum value or
matches a pattern without '<' (checked below for every string position the
schema has).  But the report also prints what it finds on the machine and in
logs/: host and CPU names, the OS, versions, the git commit's subject, and
the config as YAML.  So the escaping is tested twice: through the workflow,
with `<script>` written into the measuring jobs' machine files in logs/ and
the report job re-run; and on shortcutbench.report.render itself, with
`<script>` in every string of the provenance, the config included.
"""

import base64
import copy
import html.parser
import json
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest

from shortcutbench.analysis import render
from shortcutbench.core.config import ConfigError, validate_config

from .helpers import SCHEMA_PATH, run, schema, workflow_config

PAYLOAD = "<script>alert('pwned')</script>"
ESCAPED = ("&lt;script&gt;", "&#60;script&#62;", "&lt;script>")

# Attributes that load or point at something; in HTML and in SVG.
REFERENCE_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "data", "poster",
                        "background", "xlink:href", "manifest", "ping", "cite", "longdesc",
                        "usemap", "codebase", "archive", "lowsrc", "dynsrc"}
CSS_REFERENCE = re.compile(r"""url\(\s*['"]?([^'")]*)|@import\s+['"]?([^'";\s]+)""", re.I)
# What in inline code (a <script> or an on... attribute) loads, sends or
# points at something, or makes code or markup from strings: network calls,
# navigation, markup and attributes that load, a string that starts with a
# scheme or '//' (but SVG's namespace name, which is never fetched), elements
# other than plain ones created.  The page draws SVG through one helper,
# node(name, attrs): an element is made only there (createElementNS(SVG_NS,
# name), once in report.js), SVG_NS is defined once, as SVG's namespace name
# (never fetched), and used only there, node is only ever called directly
# with the name of a plain shape, names of elements that load or run are
# found wherever they appear, and no attribute is an event handler (on...).
# A pattern cannot follow obfuscated code, so the report test also pins the
# page's one script to the package's own report.js.
SVG_SHAPES = "svg|g|text|rect|line|path|circle"
CODE_REFERENCE = re.compile(
    r"""\b(fetch|XMLHttpRequest|WebSocket|EventSource|sendBeacon|importScripts|import|"""
    r"""Worker|SharedWorker|serviceWorker|RTCPeerConnection|location|open|write|writeln|"""
    r"""eval|Function|innerHTML|outerHTML|insertAdjacentHTML|createContextualFragment|"""
    r"""srcdoc|src|href|srcset|action|formAction|poster|background|cookie|setTimeout|"""
    r"""setInterval|constructor|setAttributeNS|DOMParser|parseFromString)\b"""
    r"""|\bcreateElement(?:NS)?\s*\(\s*(?!['"](?:button|span|div|option)['"])"""
    r"""(?!SVG_NS, name\))[^)]*"""
    r"""|\bSVG_NS\b(?<!var SVG_NS)(?<!createElementNS\(SVG_NS)"""
    r"""|\bvar SVG_NS\b(?!\s*=\s*"http://www\.w3\.org/2000/svg";)"""
    r"""|\bnode\b(?<!var node)(?!\(['"](?:""" + SVG_SHAPES + r""")['"],)"""
    r"""|['"](?:script|iframe|frame|object|embed|foreignObject|image|use)['"]"""
    r"""|['"]on[a-z]+['"]|\.on[a-z]+\s*=|[{,]\s*on[a-z]+\s*:"""
    r"""|['"`]\s*(?!http://www\.w3\.org/2000/svg['"`])(?:[a-z][a-z0-9+.-]*:|//)[^'"`]*"""
    r"""|url\(""")
# A <script> of these types is data, which no browser runs (the page's
# profile numbers): its text is kept apart from the code, and checked as data.
DATA_SCRIPT_TYPES = ("application/json",)
REPORT_JS = (Path(render.__file__).with_name("templates") / "report.js").read_text()


class References(html.parser.HTMLParser):
    """Every reference an HTML (or SVG) document makes: attributes, style
    sheets and style attributes, meta refresh."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []  # (where, value)
        self.code = []  # (where, inline code): <script> bodies, on... attributes
        self.data = []  # the text of <script>s that hold data (DATA_SCRIPT_TYPES)
        self._in_style = self._in_script = self._in_data = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name.startswith("on"):
                self.code.append((f"<{tag} {name}>", value))
            elif name in REFERENCE_ATTRIBUTES:
                values = [v.strip().split(" ")[0] for v in value.split(",")] \
                    if name == "srcset" else [value]
                self.found += [(f"<{tag} {name}>", v) for v in values]
            elif name == "style":
                self._css(f"<{tag} style>", value)
            elif tag == "meta" and name == "content" and "url=" in value.lower():
                self.found.append(("<meta refresh>", value.lower().split("url=", 1)[1]))
        self._in_style = tag == "style"
        # the first of repeated attributes counts, as in a browser
        kind = next((v for n, v in attrs if n == "type"), None)
        kind = (kind or "").strip().lower()
        self._in_script = tag == "script" and kind not in DATA_SCRIPT_TYPES
        if self._in_script:
            self.code.append(("<script>", ""))
        self._in_data = tag == "script" and not self._in_script

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        self._in_style = self._in_script = self._in_data = False

    def handle_endtag(self, tag):
        self._in_style = self._in_script = self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data.append(data)
        elif self._in_style:
            self._css("<style>", data)
        elif self._in_script:
            where, code = self.code[-1]
            self.code[-1] = (where, code + data)

    def _css(self, where, text):
        for match in CSS_REFERENCE.finditer(text):
            self.found.append((where, (match.group(1) or match.group(2) or "").strip()))


def scan(document, depth=0):
    """(references that leave `document`, how many were checked, its inline
    code), data: URIs holding SVG or HTML searched too.  A reference leaves
    unless it is a fragment (#id) or a data: URI; in inline code, whatever
    CODE_REFERENCE finds does."""
    parser = References()
    parser.feed(document)
    parser.close()
    outside, checked, code = [], 0, list(parser.code)
    for where, value in parser.found:
        checked += 1
        if value.startswith("#") or value == "":
            continue
        if value.lower().startswith("data:"):
            header, _, body = value.partition(",")
            if ("svg" in header or "html" in header) and depth < 3:
                inner = (base64.b64decode(body).decode("utf-8", "replace")
                         if header.endswith(";base64") else urllib.parse.unquote(body))
                found, n, inner_code = scan(inner, depth + 1)
                outside += [(f"{where} -> {w}", v) for w, v in found]
                checked += n
                code += [(f"{where} -> {w}", c) for w, c in inner_code]
            continue
        outside.append((where, value))
    for where, text in parser.code:
        checked += 1
        outside += [(where, match.group(0)) for match in CODE_REFERENCE.finditer(text)]
    return outside, checked, code


def external_references(document):
    """The references of `document` that leave it, and how many were checked."""
    outside, checked, _ = scan(document)
    return outside, checked


def inline_code(document):
    """(where, code) of every script and on... attribute in `document` and
    the documents its data: URIs hold."""
    return scan(document)[2]


def assert_only_its_own_script(page):
    """The page runs one piece of code: the package's report.js, inline; a
    second <script>, if any, is the profile numbers, JSON data."""
    code = inline_code(page)
    assert [where for where, _ in code] == ["<script>"], [where for where, _ in code]
    assert code[0][1].strip() == REPORT_JS.strip(), "the page's script is not report.js"
    assert REPORT_JS.count("createElementNS") == 1 and REPORT_JS.count("var SVG_NS") == 1
    scripts = sorted(re.findall(r"<script[^>]*>", page, re.I))
    assert scripts in (["<script>"],
                       ['<script type="application/json" id="profile-data">', "<script>"]), scripts
    parser = References()
    parser.feed(page)
    for data in parser.data:
        assert_plain_data(json.loads(data))


def assert_plain_data(value):
    """The profile numbers hold numbers and plain text: a colour is #rrggbb
    (it becomes an SVG stroke), no string names a URL or a scheme."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "color":
                assert re.fullmatch(r"#[0-9a-f]{6}", item), item
            assert_plain_data(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_data(item)
    elif isinstance(value, str):
        assert not re.search(r"url\(|[a-z][a-z0-9+.-]*:|//", value, re.I), value


def test_the_scanner_finds_what_it_must():
    """The scanner itself can fail: every kind of outside reference is found."""
    svg = base64.b64encode(b'<svg><image xlink:href="http://x/y.png"/></svg>').decode()
    page = f"""<html><head><link rel="stylesheet" href="https://cdn/x.css">
      <style>body {{ background: url('//evil/a.png') }} @import "x.css";</style>
      <meta http-equiv="refresh" content="0; url=http://x"></head>
      <body><script src="app.js"></script><img src="file:///etc/passwd">
      <a href="report2.html">x</a><img srcset="a.png 1x, data:image/png;base64,AA 2x">
      <div style="background-image:url(http://x)"></div>
      <img src="data:image/svg+xml;base64,{svg}"><a href="#ok">ok</a>
      <script>var u = "https://evil/c"; navigator.sendBeacon(u, 1);</script>
      <script>new Image().src = "x";</script>
      <script>document.body.appendChild(document.createElement("iframe"));</script>
      <script>import("./m.js");</script><img alt="" onerror="location = u">
      <script>document.getElementById("t").innerHTML = "<img>";</script>
      <script>var e = document.createElementNS(SVG_NS, ["scr", "ipt"].join(""));</script>
      <script>var n = "http://www.w3.org/2000/svgx"; SVG_NS = n; node("image", {{}});
        node(kind, {{x: 1}}); node("g", {{onload: go}}); e.setAttribute("onclick", go);</script>
      <script>node ("script", {{}}, document.body, "alert(1)"); at["onload"] = go;
        setTimeout("alert(1)", 0); var mk = node; node.call(null, "g", {{}});
        node("g" && kind, {{}}); [SVG_NS] = [x]; e.onclick = go;</script>
      <script type="application/json" type="module">{{"src": "not code"}}</script>
      <script type="module" type="application/json">fetch("x")</script>
      </body></html>"""
    found, _ = external_references(page)
    values = [v for _, v in found]
    for expected in ("https://cdn/x.css", "//evil/a.png", "x.css", "http://x", "app.js",
                     "file:///etc/passwd", "report2.html", "a.png", "http://x/y.png",
                     '"https://evil/c', "sendBeacon", "src", 'createElement("iframe"',
                     "import", "location", "innerHTML",
                     'createElementNS(SVG_NS, ["scr", "ipt"].join(""',
                     '"http://www.w3.org/2000/svgx', '"image"',
                     "{onload:", '"onclick"', "fetch", '"script"', '"onload"',
                     "setTimeout", "node", "SVG_NS", ".onclick ="):
        assert expected in values, expected
    assert "#ok" not in values
    # the page's own script is plain DOM work: nothing in it is found
    assert external_references(f"<script>\n{REPORT_JS}</script>")[0] == []
    assert [w for w, _ in inline_code(page)] == (["<script>"] * 5 + ["<img onerror>"]
                                                 + ["<script>"] * 5)


@pytest.mark.slow
def test_the_report_references_nothing_outside_itself(reference, counts):
    page = (reference.workdir / "report" / "index.html").read_text(encoding="utf-8")
    outside, checked = external_references(page)
    assert outside == [], outside
    assert checked > 0
    assert_only_its_own_script(page)  # and runs no code but report.js
    counts.add("report", references_checked=checked, external_references=len(outside))


# ------------------------------------------------------------ escaping

def string_places(node, path=()):
    """(path, kind) of every place in the schema where a string goes."""
    if node.get("type") == "string":
        yield path, "value"
    if node.get("type") == "array":
        yield from string_places(node["items"], path + (0,))
    for key, child in node.get("properties", {}).items():
        yield from string_places(child, path + (key,))
    if isinstance(node.get("additionalProperties"), dict):
        yield path, "name"
        yield from string_places(node["additionalProperties"], path + ("x",))


def put(config, path, value, kind):
    """`config` with `value` at `path` (kind 'value'), or as a new entry's
    name in the mapping at `path` (kind 'name'); lists and mappings on the
    way are made as needed."""
    config = copy.deepcopy(config)
    parent = config
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if last and kind == "value":
            if isinstance(parent, list):
                parent[:] = parent[:part] + [value]
            else:
                parent[part] = value
            return config
        container = list if not last and isinstance(path[i + 1], int) else dict
        if isinstance(parent, list):
            while len(parent) <= part:
                parent.append(container())
        if not isinstance(parent[part] if isinstance(parent, list) else parent.get(part),
                          container):
            parent[part] = container()
        parent = parent[part]
    parent[value] = {}
    return config


def test_no_config_string_can_carry_markup(counts):
    """Every string position the schema has refuses a `<script>` value, so
    nothing from the config can bring markup into the report."""
    places = list(string_places(schema()))
    assert places
    # A complete family of the user's own named "x", so that a value put
    # into one of its keys is the config's one mistake.
    base = workflow_config(families={"x": {"factory": "my_models:build", "depths": [1],
                                           "seeds": [0], "blocks": r"blocks\.(\d+)\.",
                                           "laws": {"xiong": {"param": r"w\.\d+",
                                                              "placement": "pre_layernorm"}}}})
    for path, kind in places:
        config = put(base, path, PAYLOAD, kind)
        with pytest.raises(ConfigError) as error:
            validate_config(config, str(SCHEMA_PATH))
        # Refused for the markup, not for a config this test built wrong.
        assert "<script>alert" in str(error.value), (path, kind, str(error.value))
        assert str(error.value).count("\n  ") == 1, (path, kind, str(error.value))
    counts.add("report", config_string_places_refusing_markup=len(places))


def inject(value):
    """`value` with PAYLOAD appended to every string in it (keys kept)."""
    if isinstance(value, str):
        return value + PAYLOAD
    if isinstance(value, list):
        return [inject(v) for v in value]
    if isinstance(value, dict):
        return {k: inject(v) for k, v in value.items()}
    return value


def assert_escaped(page, least):
    assert PAYLOAD not in page
    assert_only_its_own_script(page)  # no other <script>, raw
    escaped = sum(page.count(form) for form in ESCAPED)
    assert escaped >= least, f"only {escaped} escaped payloads in the page"
    return escaped


@pytest.mark.slow
def test_markup_in_the_machine_files_renders_as_text(reference, tmp_path, counts):
    """Through the workflow: what the measuring jobs recorded about their
    machine (logs/measure/**/*.machine.json) gets `<script>` in every
    string; the report job runs again and prints it as text."""
    workdir = tmp_path / "work"
    shutil.copytree(reference.workdir, workdir, symlinks=True)
    machine_files = sorted((workdir / "logs").rglob("*.machine.json"))
    assert machine_files
    for path in machine_files:
        facts = json.loads(path.read_text())
        for key in ("host", "os", "cpu", "python", "torch"):
            if isinstance(facts.get(key), str):
                facts[key] += PAYLOAD
        path.write_text(json.dumps(facts))
    run(workdir, reference.config, "--forcerun", "report")
    page = (workdir / "report" / "index.html").read_text(encoding="utf-8")
    escaped = assert_escaped(page, least=1)
    assert external_references(page)[0] == []
    counts.add("report", workflow_injected_strings_escaped=escaped)


@pytest.mark.slow
def render_page(workdir, tables, figures, provenance):
    """The page of a finished run, the MLP's tables and figures as given."""
    families = json.loads((workdir / "results" / "families.json").read_text())
    return render.render(provenance, families, {}, None, {"tables": tables, "figures": figures})


def test_markup_in_every_provenance_string_renders_as_text(reference, counts):
    """On the renderer: every string of the provenance -- config, git
    subject, hosts, versions -- carries `<script>`."""
    results = reference.workdir / "results"
    tables = json.loads((results / "tables.json").read_text())
    provenance = inject(json.loads((reference.workdir / "report" / "provenance.json").read_text()))
    figures = {name: (results / "figures" / f"{name}.svg").read_bytes()
               for name in ("headline", "attenuation", "heatmap")}
    figures["profiles"] = []
    page = render_page(reference.workdir, tables, figures, provenance)
    escaped = assert_escaped(page, least=3)
    counts.add("report", renderer_injected_strings_escaped=escaped)


@pytest.mark.slow
def test_a_page_with_many_variants_runs_only_report_js(reference, counts):
    """Two variants or more: the page also holds every variant's profile
    numbers, as JSON data, which must be plain data and never end its
    <script> (a label carries markup here)."""
    results = reference.workdir / "results"
    tables = json.loads((results / "tables.json").read_text())
    figures = {name: (results / "figures" / f"{name}.svg").read_bytes()
               for name in ("headline", "attenuation", "heatmap")}
    numbers = json.loads((results / "figures" / "profiles.json").read_text())
    other = json.loads(json.dumps(numbers["variants"][0]))
    other["variant"]["activation"] = "relu"
    other["label"] = "</script><script>alert(1)</script>"
    numbers["variants"].append(other)
    figures["profiles"] = numbers
    provenance = json.loads((reference.workdir / "report" / "provenance.json").read_text())
    page = render_page(reference.workdir, tables, figures, provenance)
    assert 'id="profile-data"' in page and 'id="picker"' in page
    assert_only_its_own_script(page)
    assert external_references(page)[0] == []
    counts.add("report", many_variant_pages_checked=1)
