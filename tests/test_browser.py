"""End to end: the real workflow builds the report of a small sweep, and
headless Chromium opens it offline.

Chromium is Debian's (/usr/bin/chromium, installed by tests/setup_browser.sh),
driven by Playwright from PyPI; `playwright install` is never run.  Every
request the page makes is intercepted: only the file itself may load.
Screenshots (desktop and 375 px wide) go to the test's tmp dir and to
tests/output/.

The page is judged by tools nobody here wrote, pinned in tests/package.json
(installed by setup_browser.sh with `npm ci`): the Nu HTML Checker (vnu-jar,
run with java) must find 0 errors, and axe-core, injected into the page in
Chromium, 0 violations.
"""

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, snakemake

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--headless", "--disable-gpu", "--disable-quic",
                 "--disable-sync"]
OUTPUT = REPO / "tests" / "output"
NODE_MODULES = REPO / "tests" / "node_modules"
VNU_JAR = NODE_MODULES / "vnu-jar" / "build" / "dist" / "vnu.jar"
AXE = NODE_MODULES / "axe-core" / "axe.min.js"

# Holds the book's case; small enough for seconds.  Two widths and two
# activations: four variants behind the picker, two axis-effect figures.
# Every other family too, tiny: the GPT, the ResNet and the example family
# of one's own (examples/highway).  Without studies or training: the
# target below is the report alone.
CONFIG = {
    "depths": [1, 2, 5, 12],
    "widths": [3, 8],
    "seeds": [121, 122, 123, 124],
    "shortcut": [False, True],
    "devices": ["cpu"],
    "activations": ["gelu_tanh", "relu"],
    "models": ["mlp", "gpt", "resnet", "highway"],
    "gpt": {"blocks": [1, 2], "emb_dim": 16, "n_heads": 2, "vocab_size": 32,
            "context_length": 16, "n_tokens": 8, "seeds": [0, 1]},
    "resnet": {"depths": [8], "seeds": [0, 1], "batch_size": 4},
    "families": {"highway": {"factory": "highway:build", "depths": [2, 4], "seeds": [0, 1],
                             "options": {"width": 8, "batch": 4},
                             "blocks": r"blocks\.(\d+)\."}},
}
# The MLP's: headline (states), 2 axis effects, the headline's profile,
# attenuation, heat map (the picker draws the other three variants' profiles
# in the page); the other three families' three each, and the GPT's token
# collapse.
N_IMAGES = 6 + 3 * 3 + 1


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
    shutil.copy(REPO / "examples" / "highway" / "highway.py", workdir / "highway.py")
    snakemake(workdir, CONFIG, "report/index.html")
    return workdir


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `bash tests/setup_browser.sh` (make test-env)")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with playwright_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        try:
            yield context
        finally:
            context.close()


def open_report(context, path, width):
    """Open the report at a viewport width; every request other than the
    file itself is recorded and aborted."""
    url = path.resolve().as_uri()
    page = context.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    seen = {"requests": [], "blocked": [], "console": [], "errors": []}

    def route(route):
        request_url = route.request.url
        seen["requests"].append(request_url)
        if request_url == url:
            route.continue_()
        else:
            seen["blocked"].append(request_url)
            route.abort()

    page.route("**/*", route)
    page.on("request", lambda r: None if r.url.startswith("data:") or r.url == url
            else seen["blocked"].append(r.url))
    page.on("console", lambda m: seen["console"].append(m) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    return page, seen


def screenshot(page, tmp_path, name):
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    OUTPUT.mkdir(exist_ok=True)
    shutil.copy(path, OUTPUT / name)
    assert path.stat().st_size > 10_000
    return path


@pytest.mark.parametrize("width", [1280, 375])
def test_report_opens_offline_in_chromium(built, browser_context, tmp_path, width):
    index = built / "report" / "index.html"
    page, seen = open_report(browser_context, index, width)
    try:
        assert seen["blocked"] == [], f"requests left the file: {seen['blocked']}"
        assert seen["requests"] == [index.resolve().as_uri()]
        assert [m.text for m in seen["console"]] == [] and seen["errors"] == []

        # the images are drawn
        images = page.eval_on_selector_all(
            "img", "els => els.filter(e => e.offsetParent !== null)"
                   ".map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
        assert len(images) == N_IMAGES
        assert all(done and w > 0 and h > 0 for done, w, h in images), images

        text = page.inner_text("body")
        assert "0.2216979" in text
        assert "reproduced: 10 of 10 layers" in text
        for heading in ("Headline", "The book, reproduced", "Axis effects", "Gradient profile",
                        "Attenuation", "Heat map", "Devices", "Non-finite cells",
                        "Config as run"):
            assert heading in text

        # readable on a phone: nothing wider than the screen but the boxes that scroll
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        widest = page.evaluate("Math.max(...[...document.images].map(i => i.clientWidth))")
        assert widest <= width
        screenshot(page, tmp_path, f"report-{width}px.png")
    finally:
        page.close()


def test_the_picker_shows_the_chosen_variant(built, browser_context):
    index = built / "report" / "index.html"
    page, seen = open_report(browser_context, index, 1280)
    try:
        visible = ("() => [...document.querySelectorAll('.variant')]"
                   ".filter(e => !e.hidden).map(e => e.dataset.variant)")
        assert page.is_visible("#picker")
        assert page.evaluate(visible) == ["3|gelu_tanh"]  # the book's variant's figure
        page.select_option("select[data-axis=width]", "8")
        page.select_option("select[data-axis=activation]", "relu")
        # the picked variant is drawn from its numbers: one panel per depth
        assert page.evaluate(visible) == ["8|relu"]
        drawn = page.locator("#profile-drawn svg")
        assert drawn.is_visible()
        assert drawn.get_attribute("aria-label") == "Gradient per layer — width 8 · relu"
        assert page.eval_on_selector_all(
            "#profile-drawn g.panel text[font-weight=bold]",
            "els => els.map(e => e.textContent)") == [f"depth {d}" for d in CONFIG["depths"]]
        box = drawn.bounding_box()
        assert box["width"] > 600 and box["height"] > 200
        # lines and bands are drawn where the numbers are finite
        assert page.eval_on_selector_all("#profile-drawn path", "els => els.length") >= 8
        assert "width 8 · relu" in page.inner_text("#profile-drawn figcaption")
        drawn.scroll_into_view_if_needed()
        screenshot(page, Path(str(index.parent)), "report-picker.png")
        # back to the book's variant: its figure again
        page.select_option("select[data-axis=width]", "3")
        page.select_option("select[data-axis=activation]", "gelu_tanh")
        assert page.evaluate(visible) == ["3|gelu_tanh"]
        # a sortable table sorts: the headline's states by seeds, then back
        page.click("#mlp table.sortable thead th:nth-child(1) button")
        assert page.get_attribute("#mlp table.sortable thead th:nth-child(1)",
                                  "aria-sort") == "ascending"
        assert seen["blocked"] == [], f"requests left the file: {seen['blocked']}"
        assert [m.text for m in seen["console"]] == [] and seen["errors"] == []
    finally:
        page.close()


def test_without_script_the_page_shows_the_books_variant(built, browser_context, tmp_path):
    # the same page with its script removed (one browser per module: a second,
    # script-less one cannot start beside it)
    page_html = (built / "report" / "index.html").read_text(encoding="utf-8")
    bare = tmp_path / "index.html"
    bare.write_text(re.sub(r"<script>.*?</script>", "", page_html, flags=re.S), encoding="utf-8")
    page, seen = open_report(browser_context, bare, 1280)
    try:
        shown = page.eval_on_selector_all(
            ".variant", "els => els.filter(e => e.offsetParent !== null)"
                        ".map(e => e.dataset.variant)")
        assert shown == ["3|gelu_tanh"]
        assert not page.is_visible("#picker")
        assert seen["errors"] == []
    finally:
        page.close()


def test_nu_html_checker_finds_no_errors(built):
    if not VNU_JAR.exists():
        pytest.fail(f"{VNU_JAR} is missing: run `bash tests/setup_browser.sh`")
    if not shutil.which("java"):
        pytest.fail("java is missing: run `bash tests/setup_browser.sh`")
    result = subprocess.run(["java", "-jar", str(VNU_JAR), "--format", "json", "--exit-zero-always",
                             str(built / "report" / "index.html")],
                            capture_output=True, text=True, timeout=300)
    messages = json.loads(result.stderr or result.stdout)["messages"]
    errors = [m for m in messages if m["type"] in ("error", "non-document-error")]
    assert errors == [], "\n".join(f"{m.get('lastLine')}: {m['message']}" for m in errors)


@pytest.mark.parametrize("width", [1280, 375])
def test_axe_finds_no_violations(built, browser_context, width):
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `bash tests/setup_browser.sh`")
    page, seen = open_report(browser_context, built / "report" / "index.html", width)
    try:
        # open every <details>, so that what it holds is checked too
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
        result = page.evaluate("async () => await axe.run(document)")
        violations = [(v["id"], v["impact"], len(v["nodes"]),
                       [n["target"] for n in v["nodes"][:3]]) for v in result["violations"]]
        assert violations == [], json.dumps(violations)
        assert result["passes"]  # it did check
    finally:
        page.close()


def test_report_file_is_self_contained(built):
    page = (built / "report" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|ftp:|file:)""", page, re.I)
    # inline script only: none with a src
    assert not re.search(r"<script[^>]*\ssrc", page, re.I) and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page and "@font-face" not in page
    assert "fetch(" not in page and "XMLHttpRequest" not in page
    assert page.count('src="data:image/svg+xml;base64,') == N_IMAGES


def test_figures_are_saved_as_svg_and_png(built):
    figures = built / "results" / "figures"
    for name in ("headline", "attenuation", "heatmap", "axis/width", "axis/activation",
                 "profile"):
        assert (figures / f"{name}.svg").stat().st_size > 1000
        assert (figures / f"{name}.png").stat().st_size > 1000
    numbers = json.loads((figures / "profiles.json").read_text())
    assert len(numbers["variants"]) == 4


def test_provenance_is_outside_results(built):
    assert (built / "report" / "provenance.json").exists()
    assert not list((built / "results").rglob("provenance*"))
    tables = (built / "results" / "tables.json").read_text()
    assert "started" not in tables and "host" not in tables


def test_snakemake_report_zip(built):
    snakemake(built, CONFIG, "--report", "report.zip", "report/index.html")
    with zipfile.ZipFile(built / "report.zip") as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert any(n.endswith("report.html") for n in names)
    assert any(n.endswith("index.html") for n in names)
    # every figure the page shows, and no other (the MLP draws no generic
    # family figures: its own sections show what they would)
    assert sum(n.endswith(".svg") for n in names) == N_IMAGES
