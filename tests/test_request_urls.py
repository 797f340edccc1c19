"""The URLs made of the request when no base_url is configured: the OAI-PMH baseURL (the
URL the request came to) and the site's root (robots.txt's Sitemap, the sitemaps, page
links), from the Host header and the script root (a proxy's X-Forwarded-Prefix, or
SCRIPT_NAME). The client chooses the Host: one that would not make a valid URL is never
echoed, localhost stands in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import html
from rfc3986_validator import validate_rfc3986
from werkzeug.test import EnvironBuilder, run_wsgi_app

from oaipmh_server.web.app import create_app

from .conftest import SECRET, Databases
from .test_pages import DELETED, SEED
from .xsd import validate, validate_sitemap


@pytest.fixture(scope="module")
def apps(databases: Databases, request: pytest.FixtureRequest) -> Iterator[dict[str, Flask]]:
    """The sample store served directly, and behind a proxy at 127.0.0.1 (trusted)."""
    url = databases.samples("sqlite", request)
    made = {
        "direct": create_app({"database_url": url, "token_secret": SECRET}),
        "proxied": create_app(
            {"database_url": url, "token_secret": SECRET, "trusted_proxies": ["127.0.0.1"]}
        ),
    }
    yield made
    for app in made.values():
        app.extensions["oaipmh"].store.close()


def get(app: Flask, path: str, host: str, root: str = "", **headers: str) -> bytes:
    """The body of GET `path` with this Host header and script root, sent as a WSGI server
    passes them on (the test client itself refuses a Host whose port no URL can have)."""
    environ = EnvironBuilder(path=path, headers=headers).get_environ()
    # WSGI's strings are bytes as Latin-1: a UTF-8 script root arrives so.
    environ.update(HTTP_HOST=host, SCRIPT_NAME=root.encode().decode("latin-1"))
    environ["REMOTE_ADDR"] = "127.0.0.1"
    body, status, _ = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    assert status.startswith("200"), status
    return b"".join(body)


def urls(app: Flask, host: str, root: str = "", **headers: str) -> tuple[str, str]:
    """The baseURL an Identify at /oai/request names, and the site's root robots.txt names."""
    identify = validate(get(app, "/oai/request?verb=Identify", host, root, **headers))
    base = identify.findtext("{http://www.openarchives.org/OAI/2.0/}request")
    robots = get(app, "/robots.txt", host, root, **headers).decode()
    (sitemap,) = re.findall(r"^Sitemap: (.*)$", robots, re.MULTILINE)
    return str(base), sitemap.removesuffix("/sitemap.xml")


@pytest.mark.parametrize(
    ("host", "root", "base", "site"),
    [
        pytest.param("oai.example.org", "", "http://oai.example.org/oai/request",
                     "http://oai.example.org", id="host"),
        pytest.param("oai.example.org:8080", "", "http://oai.example.org:8080/oai/request",
                     "http://oai.example.org:8080", id="host-and-port"),
        pytest.param("x:65535", "", "http://x:65535/oai/request", "http://x:65535",
                     id="highest-port"),
        pytest.param("Oai.Example.ORG", "", "http://oai.example.org/oai/request",
                     "http://oai.example.org", id="host-in-capitals"),
        pytest.param("oai.example.org", "/prefix", "http://oai.example.org/prefix/oai/request",
                     "http://oai.example.org/prefix", id="script-root"),
        pytest.param("oai.example.org", "/a/b/", "http://oai.example.org/a/b/oai/request",
                     "http://oai.example.org/a/b", id="script-root-with-a-slash"),
        pytest.param("oai.example.org", "/a%20b", "http://oai.example.org/a%20b/oai/request",
                     "http://oai.example.org/a%20b", id="script-root-quoted"),
    ],
)  # fmt: skip
def test_urls_made_of_the_request(
    apps: dict[str, Flask], host: str, root: str, base: str, site: str
) -> None:
    assert urls(apps["direct"], host, root) == (base, site)


@pytest.mark.parametrize(
    "host",
    ["[::1]", "[::1]:8080", "x:99999", "[::1]:65536", "x:", "a_b.example", 'evil"x',
     "localhost:-1"],
)  # fmt: skip
def test_a_host_that_makes_no_valid_url_is_not_echoed(apps: dict[str, Flask], host: str) -> None:
    """An IPv6 address too: the pattern a Host must match has no brackets."""
    assert urls(apps["direct"], host) == ("http://localhost/oai/request", "http://localhost")
    assert urls(apps["direct"], host, "/prefix") == (
        "http://localhost/prefix/oai/request",
        "http://localhost/prefix",
    )


# Until the two builders were one (web/provider.request_url), the site's root kept these
# roots as they came (a space, '?', 'ü', '<' in a URL), and a baseURL with a non-ASCII or
# '<' character in its root fell back to localhost, the good host lost and the root left
# unencoded; a lone '%' made a baseURL the schema refuses. Now each is percent-encoded.
@pytest.mark.parametrize(
    ("host", "root", "base", "site"),
    [
        pytest.param("oai.example.org", "/my app", "http://oai.example.org/my%20app/oai/request",
                     "http://oai.example.org/my%20app", id="space"),
        pytest.param("oai.example.org", "/50%", "http://oai.example.org/50%25/oai/request",
                     "http://oai.example.org/50%25", id="lone-percent"),
        pytest.param("oai.example.org", "/a?b", "http://oai.example.org/a%3Fb/oai/request",
                     "http://oai.example.org/a%3Fb", id="question-mark"),
        pytest.param("oai.example.org", "/a#b", "http://oai.example.org/a%23b/oai/request",
                     "http://oai.example.org/a%23b", id="hash"),
        pytest.param("oai.example.org", "/ü", "http://oai.example.org/%C3%BC/oai/request",
                     "http://oai.example.org/%C3%BC", id="unicode"),
        pytest.param("oai.example.org", "/<x>", "http://oai.example.org/%3Cx%3E/oai/request",
                     "http://oai.example.org/%3Cx%3E", id="angle-brackets"),
        pytest.param("x:99999", "/my app", "http://localhost/my%20app/oai/request",
                     "http://localhost/my%20app", id="bad-port-and-space"),
        pytest.param("x:99999", "/ü", "http://localhost/%C3%BC/oai/request",
                     "http://localhost/%C3%BC", id="bad-port-and-unicode"),
    ],
)  # fmt: skip
def test_odd_script_roots_are_percent_encoded(
    apps: dict[str, Flask], host: str, root: str, base: str, site: str
) -> None:
    assert urls(apps["direct"], host, root) == (base, site)


# A header's UTF-8 bytes, as a WSGI server hands them on (a Latin-1 string).
AS_SENT = "/ü".encode().decode("latin-1")


@pytest.mark.parametrize(
    ("headers", "base", "site"),
    [
        pytest.param({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "oai.example.org"},
                     "https://oai.example.org/oai/request", "https://oai.example.org",
                     id="proto-and-host"),
        pytest.param({"X-Forwarded-Proto": "https", "X-Forwarded-Host": "oai.example.org",
                      "X-Forwarded-Port": "8443", "X-Forwarded-Prefix": "/repo"},
                     "https://oai.example.org:8443/repo/oai/request",
                     "https://oai.example.org:8443/repo", id="port-and-prefix"),
        pytest.param({"X-Forwarded-Proto": "javascript", "X-Forwarded-Host": "oai.example.org"},
                     "http://localhost/oai/request", "http://localhost", id="not-a-web-scheme"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": "/my repo"},
                     "http://oai.example.org/my%20repo/oai/request",
                     "http://oai.example.org/my%20repo", id="prefix-with-a-space"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": AS_SENT},
                     "http://oai.example.org/%C3%BC/oai/request",
                     "http://oai.example.org/%C3%BC", id="prefix-in-unicode"),
        pytest.param({"X-Forwarded-Host": "oai.example.org:99999"},
                     "http://localhost/oai/request", "http://localhost", id="bad-port"),
        pytest.param({"X-Forwarded-Host": "[2001:db8::1]", "X-Forwarded-Port": "8080"},
                     "http://localhost/oai/request", "http://localhost", id="ipv6"),
        pytest.param({"X-Forwarded-Host": "evil example"},
                     "http://localhost/oai/request", "http://localhost", id="space-in-host"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": "repo"},
                     "http://oai.example.org/repo/oai/request", "http://oai.example.org/repo",
                     id="prefix-without-a-slash"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Port": "0"},
                     "http://localhost/oai/request", "http://localhost", id="port-zero"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Port": "8080",
                      "X-Forwarded-Prefix": "p"},
                     "http://oai.example.org:8080/p/oai/request",
                     "http://oai.example.org:8080/p", id="port-then-prefix-without-a-slash"),
        pytest.param({"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": "//evil.example"},
                     "http://oai.example.org/evil.example/oai/request",
                     "http://oai.example.org/evil.example", id="prefix-of-two-slashes"),
    ],
)  # fmt: skip
def test_behind_a_trusted_proxy(
    apps: dict[str, Flask], headers: dict[str, str], base: str, site: str
) -> None:
    assert urls(apps["proxied"], "127.0.0.1:5000", **headers) == (base, site)


SITEMAPS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


@pytest.mark.parametrize(
    ("app", "root", "headers", "site"),
    [
        pytest.param("direct", "/prefix", {}, "http://oai.example.org/prefix", id="script-root"),
        pytest.param("proxied", "", {"X-Forwarded-Host": "oai.example.org",
                                     "X-Forwarded-Prefix": "/prefix"},
                     "http://oai.example.org/prefix", id="forwarded-prefix"),
        pytest.param("direct", "/my repo", {}, "http://oai.example.org/my%20repo",
                     id="script-root-with-a-space"),
        pytest.param("proxied", "", {"X-Forwarded-Host": "oai.example.org",
                                     "X-Forwarded-Prefix": AS_SENT},
                     "http://oai.example.org/%C3%BC", id="forwarded-prefix-in-unicode"),
    ],
)  # fmt: skip
def test_links_to_the_sites_own_documents_name_the_script_root_once(
    apps: dict[str, Flask], app: str, root: str, headers: dict[str, str], site: str
) -> None:
    """The sitemap index's sitemaps and ResourceSync's documents: the site's root (which
    holds the script root) and the document's path, not the script root a second time."""
    index = get(apps[app], "/sitemap.xml", "oai.example.org", root, **headers)
    pages, *locations = [str(e.text) for e in validate_sitemap(index).iter(f"{SITEMAPS}loc")]
    assert pages == f"{site}/sitemaps/pages.xml"
    assert locations and all(
        loc.startswith(f"{site}/sitemaps/records.xml?start=") for loc in locations
    ), locations
    listed = get(apps[app], "/sitemaps/pages.xml", "oai.example.org", root, **headers)
    assert [e.text for e in validate_sitemap(listed).iter(f"{SITEMAPS}loc")][:2] == [
        f"{site}/",
        f"{site}/sets/col_10722_20",
    ]
    description = get(apps[app], "/.well-known/resourcesync", "oai.example.org", root, **headers)
    assert [e.text for e in validate_sitemap(description).iter(f"{SITEMAPS}loc")] == [
        f"{site}/resources/capabilitylist.xml"
    ]


# The pages under each odd script root: every link and form they write. Until page links
# were built as the absolute ones are (web/app.py quotes the root url_for puts before a
# path), they kept the root as it came: a raw space, '#', '?', '%', 'ü' or '<' in an href.
PAGE_ROOTS = [
    pytest.param("", "", id="no-root"),
    pytest.param("/prefix", "/prefix", id="plain"),
    pytest.param("/my repo", "/my%20repo", id="space"),
    pytest.param("/50%", "/50%25", id="lone-percent"),
    pytest.param("/a?b", "/a%3Fb", id="question-mark"),
    pytest.param("/a#b", "/a%23b", id="hash"),
    pytest.param("/ü", "/%C3%BC", id="unicode"),
    pytest.param("/<x>", "/%3Cx%3E", id="angle-brackets"),
    pytest.param("/a%20b", "/a%20b", id="quoted"),
]


@pytest.fixture(scope="module")
def statuses() -> dict[tuple[str, str], str]:
    """The status `apps["direct"]` answered a link with, by (link, script root): the pages
    link to many of the same places, and a store nothing writes to answers a place the
    same way each time it is followed, so each is followed once per module."""
    return {}


PAGES = {
    "/": 200,
    f"/records/{SEED}": 200,
    f"/records/{DELETED}": 410,
    "/records/no/such/record": 404,
    "/sets/col_10722_20": 200,
    "/sets/col_10722_20?after=2000-01-01T00:00:00Z&id=10722/1": 200,
    "/oai/view?verb=ListRecords&metadataPrefix=oai_dc&set=col_10722_5": 200,
}


def answer(app: Flask, link: str, root: str) -> tuple[str, bytes]:
    """The status and body of a request to `link` (a path and query as a browser sends
    them, percent-encoded) at the script root `root`."""
    environ = EnvironBuilder(path=link).get_environ()
    environ.update(HTTP_HOST="oai.example.org", SCRIPT_NAME=root.encode().decode("latin-1"))
    body, status, _ = run_wsgi_app(app.wsgi_app, environ, buffered=True)
    return status, b"".join(body)


def page_links(app: Flask, path: str, root: str, status: int) -> list[str]:
    """Every link and form action of the page at `path`: href, src and action."""
    got, body = answer(app, path, root)
    assert got.startswith(str(status)), got
    return [link for _, _, link, _ in html.document_fromstring(body).iterlinks()]


@pytest.mark.parametrize(("root", "encoded"), PAGE_ROOTS)
@pytest.mark.parametrize(("path", "status"), PAGES.items(), ids=list(PAGES))
def test_every_link_a_page_writes_is_a_valid_url_to_where_it_should_go(
    apps: dict[str, Flask],
    statuses: dict[tuple[str, str], str],
    root: str,
    encoded: str,
    path: str,
    status: int,
) -> None:
    """Each link is a URI reference (RFC 3986, so every character a URL cannot carry is
    percent-encoded), and one to the site names the root once, encoded, and then a page
    this app answers: followed as a browser follows it, it is found (a deleted record is
    gone, 410), never 404."""
    site = f"http://oai.example.org{encoded}"
    links = page_links(apps["direct"], path, root, status)
    assert links
    for link in dict.fromkeys(links):
        assert validate_rfc3986(link, rule="URI_reference"), link
        if link.startswith("#"):
            continue  # a place in the page itself
        target = urlsplit(urljoin(f"{site}{path}", link))
        if target.netloc != "oai.example.org" or target.scheme == "":
            continue  # a file's or a logo's own host
        assert target.path.startswith(f"{encoded}/"), link
        if target.path.startswith(f"{encoded}/oai/request") or target.path == f"{encoded}/oai":
            continue  # the OAI-PMH endpoint, whose links test_urls_made_of_the_request pins
        followed = target.path.removeprefix(encoded) + (f"?{target.query}" if target.query else "")
        if (followed, root) not in statuses:
            statuses[followed, root] = answer(apps["direct"], followed, root)[0]
        got = statuses[followed, root]
        assert got[:3] in ("200", "410"), (link, got)


@pytest.mark.parametrize(("root", "encoded"), PAGE_ROOTS)
def test_the_pages_link_their_stylesheet_home_sets_and_records_under_the_root(
    apps: dict[str, Flask], root: str, encoded: str
) -> None:
    home = page_links(apps["direct"], "/", root, 200)
    assert {
        f"{encoded}/static/style.css",
        f"{encoded}/",
        f"{encoded}/.well-known/resourcesync",
        f"{encoded}/sets/col_10722_20",
        f"{encoded}/oai/view?verb=Identify",
    } <= set(home), home
    record = page_links(apps["direct"], f"/records/{SEED}", root, 200)
    assert f"{encoded}/sets/col_10722_5" in record
    listed = page_links(apps["direct"], "/sets/col_10722_5", root, 200)
    assert f"{encoded}/records/{SEED}" in listed


def test_pages_behind_a_proxy_link_under_its_prefix_encoded(apps: dict[str, Flask]) -> None:
    """X-Forwarded-Prefix is the script root the links are made under, as SCRIPT_NAME is."""
    headers = {"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": "/my repo"}
    body = get(apps["proxied"], "/", "127.0.0.1:5000", **headers)
    links = [link for _, _, link, _ in html.document_fromstring(body).iterlinks()]
    assert "/my%20repo/static/style.css" in links
    assert "/my%20repo/sets/col_10722_20" in links
    assert not [link for link in links if not validate_rfc3986(link, rule="URI_reference")]


@pytest.mark.parametrize("prefix", ["repo", "//evil.example"])
def test_a_prefix_not_one_slash_then_a_path_still_links_on_this_site(
    apps: dict[str, Flask], prefix: str
) -> None:
    """A script root must begin with one '/' (WSGI's SCRIPT_NAME does): a proxy's prefix
    without one would make its links relative to the page (`repo/sets/...`), or name
    another host (`//evil.example/sets/...`); it is the path it names, from the root."""
    headers = {"X-Forwarded-Host": "oai.example.org", "X-Forwarded-Prefix": prefix}
    body = get(apps["proxied"], "/", "127.0.0.1:5000", **headers)
    links = [link for _, _, link, _ in html.document_fromstring(body).iterlinks()]
    root = "/" + prefix.strip("/")
    assert f"{root}/sets/col_10722_20" in links
    site = f"http://oai.example.org{root}/"
    assert [link for link in links if not urljoin(site, link).startswith((site, "https://"))] == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(prefix=st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=12))
def test_any_prefix_of_a_trusted_proxy_makes_urls_of_this_site(
    apps: dict[str, Flask], prefix: str
) -> None:
    """Whatever X-Forwarded-Prefix a trusted proxy passes on (as it arrives: UTF-8 bytes
    as Latin-1), the baseURL and robots.txt's site root are URIs on the forwarded host,
    the baseURL the OAI-PMH schema accepts (the client validates it)."""
    sent = prefix.encode().decode("latin-1")
    base, site = urls(
        apps["proxied"], "127.0.0.1:5000", **{"X-Forwarded-Host": "oai.example.org",
                                              "X-Forwarded-Prefix": sent}
    )  # fmt: skip
    for url in (base, site):
        assert validate_rfc3986(url, rule="URI"), url
        assert urlsplit(url).netloc == "oai.example.org", url
    assert base == f"{site}/oai/request"
