"""End to end: the real workflow builds the report of a small sweep, and
headless Chromium opens it offline.

Chromium is Debian's (/usr/bin/chromium, installed by tests/setup_browser.sh),
driven by Playwright from PyPI; `playwright install` is never run.  Every
request the page makes is intercepted: only the file itself may load.
Screenshots (desktop and 375 px wide) go to the test's tmp dir and to
tests/output/.
"""

import re
import shutil
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

# Holds the book's case; small enough for seconds.  Without studies or
# training: the target below is the report alone.
CONFIG = {
    "depths": [1, 2, 5, 12],
    "widths": [3],
    "seeds": [121, 122, 123, 124],
    "shortcut": [False, True],
    "devices": ["cpu"],
    "activations": ["gelu_tanh"],
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("report")
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

        images = page.eval_on_selector_all(
            "img", "els => els.map(e => [e.complete, e.naturalWidth, e.naturalHeight])")
        assert len(images) == 4  # headline, profile (one variant), attenuation, heat map
        assert all(done and w > 0 and h > 0 for done, w, h in images), images

        text = page.inner_text("body")
        assert "0.2216979" in text
        assert "reproduced: 10 of 10 layers" in text
        for heading in ("Headline", "The book, reproduced", "Gradient profile", "Attenuation",
                        "Heat map", "Devices", "Non-finite cells", "Config as run"):
            assert heading in text

        # readable on a phone: nothing wider than the screen but the boxes that scroll
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        widest = page.evaluate("Math.max(...[...document.images].map(i => i.clientWidth))")
        assert widest <= width
        screenshot(page, tmp_path, f"report-{width}px.png")
    finally:
        page.close()


def test_report_file_is_self_contained(built):
    page = (built / "report" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//|ftp:|file:)""", page, re.I)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert "@import" not in page and "url(" not in page and "@font-face" not in page
    assert page.count('src="data:image/svg+xml;base64,') == 4


def test_figures_are_saved_as_svg_and_png(built):
    figures = built / "results" / "figures"
    for name in ("headline", "attenuation", "heatmap"):
        assert (figures / f"{name}.svg").stat().st_size > 1000
        assert (figures / f"{name}.png").stat().st_size > 1000
    assert len(list((figures / "profile").rglob("*.svg"))) == 1
    assert len(list((figures / "profile").rglob("*.png"))) == 1


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
    assert sum(n.endswith(".svg") for n in names) == 4
