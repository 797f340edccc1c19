"""The pages in a real browser: Debian's chromium driven by Playwright against a live
server, as a visitor goes (home → a set → a record), with axe-core's accessibility
check on every page, a phone-width screen, and screenshots kept in tests/artifacts/.

No browser is downloaded: Playwright drives the chromium that `.ci/run` installs
(apt-get install chromium), and axe-core comes bundled in axe-playwright-python. Without
chromium these tests are skipped with the reason shown, except where TEST_REQUIRE_BROWSER=1
(as in CI), where its absence is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from oaipmh_server.crosswalk import PRIVATE_FIELDS
from oaipmh_server.store import SqlStore

from .conftest import ROOT, LiveServer, load_into

# A slow tier (-m "not browser" leaves it out of a quick run; .ci/run runs it).
pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "tests" / "artifacts"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1200, "height": 900}
OAI = "http://www.openarchives.org/OAI/2.0/"


def find_chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = find_chromium()
    if chromium is None:
        if os.environ.get("TEST_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is required (TEST_REQUIRE_BROWSER=1) but not installed")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def artifacts(backend: str) -> Path:
    folder = ARTIFACTS / backend
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots in {folder}")
    return folder


def accessible(page: Any, name: str) -> None:
    """axe-core (bundled in axe-playwright-python) in the page: no violation at all."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    assert results.violations_count == 0, f"{name}:\n{results.generate_report()}"


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url}: {width}px wide"


def test_a_visitor_goes_from_home_to_a_set_to_a_record(
    browser: Any, reading_live_server: LiveServer, artifacts: Path
) -> None:
    live_server = reading_live_server
    site = live_server.url.removesuffix("/oai")
    # The CSP forbids scripts in the pages; axe is put in by the test, so it bypasses it.
    context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
    page = context.new_page()

    response = page.goto(site + "/")
    assert response.status == 200
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Sample DSpace Repository"
    accessible(page, "home")
    page.screenshot(path=artifacts / "home.png", full_page=True)

    page.get_by_role("link", name="Faculty of Medicine", exact=True).click()
    assert page.url == site + "/sets/com_10722_1"
    assert page.locator("h1").inner_text() == "Faculty of Medicine"
    accessible(page, "set")
    page.screenshot(path=artifacts / "set.png", full_page=True)

    page.get_by_role("link", name="Faculty of Medicine: Journal/Magazine Articles").click()
    first = page.locator("ol.records li a").first
    title = first.inner_text()
    with page.expect_navigation() as navigation:
        first.click()
    response = navigation.value
    assert response.status == 200
    local_id = page.url.split("/records/", 1)[1]
    assert page.locator("h1").inner_text() == title
    accessible(page, "record")
    page.screenshot(path=artifacts / "record.png", full_page=True)

    store = SqlStore(live_server.database_url)
    try:
        fields = store.get_fields(local_id)
    finally:
        store.close()
    assert fields is not None

    def stored(name: str) -> list[str]:
        return [f.value for f in fields if f.name == name]

    tags = page.eval_on_selector_all(
        "meta[name^='citation_']", "els => els.map(e => [e.name, e.content])"
    )
    assert [c for n, c in tags if n == "citation_title"] == stored("dc.title")
    assert [c for n, c in tags if n == "citation_author"] == stored("dc.contributor.author")
    assert [c for n, c in tags if n == "citation_issn"] == stored("dc.identifier.issn")
    assert [c for n, c in tags if n == "citation_publication_date"] == [
        d.replace("-", "/") for d in stored("dc.date.issued")
    ]
    data = json.loads(page.locator("script[type='application/ld+json']").inner_text())
    assert data["name"] == stored("dc.title")[0]
    assert [a["name"] for a in data["author"]] == stored("dc.contributor.author")
    text = page.content() + json.dumps(data) + response.headers["link"]
    for f in fields:
        if f.name in PRIVATE_FIELDS:
            assert f.value not in text

    links = re.split(r", (?=<)", response.headers["link"])
    assert any(link.endswith('rel="cite-as"') for link in links)
    described = [link for link in links if 'rel="describedby"' in link]
    assert described and all('profile="' in link for link in described)
    elements = page.eval_on_selector_all("head link[rel='describedby']", "els => els.length")
    assert elements == len(described)
    # Follow a format link: the record in that format, as XML.
    first_format = page.locator("ul.formats a").first
    xml = context.request.get(first_format.get_attribute("href"))
    assert xml.status == 200 and xml.headers["content-type"].startswith("text/xml")
    assert f"<identifier>oai:repository.example.org:{local_id}</identifier>" in xml.text()
    # The sample records carry no files: no Files section (a file link is followed in
    # test_a_visitor_follows_a_file_link).
    assert page.locator("#files-heading").count() == 0

    context.close()


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A small static web server for bitstreams (the server links files, DSpace or any
    web server serves them): its URL and the folder it serves. It listens before the
    fixture returns (the socket is bound and listening when the server object is made)."""
    served = tmp_path / "bitstreams"
    served.mkdir()
    handler = partial(QuietHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_visitor_follows_a_file_link(
    browser: Any,
    empty_database_url: str,
    tmp_path: Path,
    file_server: tuple[str, Path],
    artifacts: Path,
) -> None:
    from .test_files import CHAPTER, HANDLE, item_with_files

    files_url, served = file_server
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export")
    # The bitstreams where the pattern below leads: by handle and name.
    shutil.copytree(tmp_path / "export" / "item_000" / "chapters", served / HANDLE / "chapters")
    config = tmp_path / "oaipmh.toml"
    config.write_text(f'[files]\nurl = "{files_url}/{{handle}}/{{name}}"\n', "utf-8")
    server = LiveServer(empty_database_url, tmp_path, workers=1, OAIPMH_CONFIG=str(config))
    try:
        site = server.url.removesuffix("/oai")
        context = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        page = context.new_page()
        assert page.goto(f"{site}/records/{HANDLE}").status == 200
        accessible(page, "record with files")
        page.screenshot(path=artifacts / "record-files.png", full_page=True)
        links = page.locator("ul.files a")
        assert links.count() == 1  # the restricted file is not shown
        assert links.first.inner_text() == "chapters/chapter one.pdf"
        href = links.first.get_attribute("href")
        assert href == f"{files_url}/{HANDLE}/chapters/chapter%20one.pdf"
        pdf_url = page.locator("meta[name='citation_pdf_url']").get_attribute("content")
        assert pdf_url == href
        followed = context.request.get(href)
        assert followed.status == 200
        assert followed.headers["content-type"] == "application/pdf"
        assert followed.body() == CHAPTER
        context.close()
    finally:
        server.stop()


def test_the_institutions_pages_pass_their_own_content_security_policy(
    browser: Any, database_url: str, tmp_path: Path, file_server: tuple[str, Path], artifacts: Path
) -> None:
    """[pages] name, logo (on another host), footer, accent colour and lang, in a browser
    that enforces the pages' Content-Security-Policy: the accent's <style> element is
    applied (allowed by its hash) and the logo shown (its host allowed); axe finds no
    violation with an accent an operator would choose (dark green, 7:1 on white)."""
    files_url, served = file_server
    (served / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="80" height="40">'
        '<rect width="80" height="40" fill="#063"/></svg>',
        "utf-8",
    )
    config = tmp_path / "oaipmh.toml"
    config.write_text(
        f'[pages]\nname = "Scholars Hub"\nlogo_url = "{files_url}/logo.svg"\n'
        'footer = "Main Library, Pokfulam Road"\naccent_color = "#006633"\nlang = "en-GB"\n',
        "utf-8",
    )
    server = LiveServer(database_url, tmp_path, workers=1, OAIPMH_CONFIG=str(config))
    try:
        site = server.url.removesuffix("/oai")
        enforced = browser.new_context(viewport=DESKTOP)
        page = enforced.new_page()
        violations: list[str] = []
        page.on("console", lambda message: violations.append(message.text))
        assert page.goto(f"{site}/records/10722/212116").status == 200
        link = page.locator("main a").first
        assert link.evaluate("a => getComputedStyle(a).color") == "rgb(0, 102, 51)"
        logo = page.locator("header .site-name img")
        assert logo.evaluate("img => img.complete && img.naturalWidth") == 80
        assert page.locator("html").get_attribute("lang") == "en-GB"
        assert page.locator(".site-name").inner_text() == "Scholars Hub"
        assert page.locator("footer .footer-text").inner_text() == "Main Library, Pokfulam Road"
        assert not [v for v in violations if "Content Security Policy" in v], violations
        enforced.close()
        checked = browser.new_context(viewport=DESKTOP, bypass_csp=True)
        page = checked.new_page()
        for name, path in (("themed-home", "/"), ("themed-record", "/records/10722/212116")):
            assert page.goto(site + path).status == 200
            accessible(page, name)
            page.screenshot(path=artifacts / f"{name}.png", full_page=True)
        checked.close()
        phone = browser.new_context(viewport=PHONE, is_mobile=True, bypass_csp=True)
        page = phone.new_page()
        assert page.goto(f"{site}/records/10722/212116").status == 200
        no_sideways_scroll(page)  # the logo and the name fit a phone's width
        accessible(page, "themed-phone")
        page.screenshot(path=artifacts / "themed-phone.png", full_page=True)
        phone.close()
    finally:
        server.stop()


def test_pages_read_on_a_phone(
    browser: Any, reading_live_server: LiveServer, artifacts: Path
) -> None:
    site = reading_live_server.url.removesuffix("/oai")
    context = browser.new_context(viewport=PHONE, is_mobile=True, bypass_csp=True)
    page = context.new_page()
    for name, path, status in [
        ("phone-home", "/", 200),
        ("phone-record", "/records/10722/212116", 200),
        ("phone-gone", "/records/10722/212125", 410),
        ("phone-oai-view", "/oai/view?verb=GetRecord&metadataPrefix=oai_dc"
         "&identifier=oai:repository.example.org:10722/310002", 200),
        ("phone-not-found", "/records/no/such", 404),
    ]:  # fmt: skip
        response = page.goto(site + path)
        assert response.status == status, path
        no_sideways_scroll(page)
        accessible(page, name)
        page.screenshot(path=artifacts / f"{name}.png", full_page=True)
    context.close()


def test_a_browser_asking_oai_gets_xml(browser: Any, reading_live_server: LiveServer) -> None:
    """A browser's own Accept header (text/html first) still gets the OAI-PMH XML."""
    page = browser.new_page()
    response = page.goto(reading_live_server.url + "?verb=Identify")
    assert response.request.all_headers()["accept"].startswith("text/html")
    assert response.status == 200
    assert response.headers["content-type"] == "text/xml; charset=utf-8"
    from lxml import etree

    assert etree.fromstring(response.body()).tag == f"{{{OAI}}}OAI-PMH"
    page.close()
