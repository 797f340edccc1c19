"""The HTML pages over HTTP (Flask's client, both stores): what each page shows, its
status, its Highwire tags, Signposting and JSON-LD against the stored fields, and that no
private field ever leaves in any of them. The browser's view is tests/test_browser.py."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote, quote_from_bytes, urlsplit

import html5lib
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree, html
from sqlalchemy import create_engine, text

from oaipmh_server import landing
from oaipmh_server.config import load_settings
from oaipmh_server.crosswalk import PRIVATE_FIELDS
from oaipmh_server.datestamps import format_datestamp
from oaipmh_server.formats import build_formats
from oaipmh_server.record_source import Field, Header
from oaipmh_server.web import pages, sitemaps
from oaipmh_server.web.app import create_app
from oaipmh_server.xml import xml_language

from .conftest import LOADED, SAMPLES, SECRET, load_into, make_app
from .oai import NS, harvest
from .xsd import validate_sitemap

SEED = "10722/212116"
DELETED = "10722/212125"
# What Chrome sends for a page: text/html first. A harvester on Java's defaults sends
# "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2".
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
SITEMAP = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


def page(client: FlaskClient, path: str, status: int = 200, lang: str = "en") -> html.HtmlElement:
    response = client.get(path)
    assert response.status_code == status, response.data[:300]
    assert response.mimetype == "text/html"
    body = response.get_data(as_text=True)
    html5lib.HTMLParser(strict=True).parse(body)  # a parse error raises
    document = html.document_fromstring(body)
    assert document.get("lang") == lang
    assert len(document.findall(".//main")) == 1 and len(document.findall(".//h1")) == 1
    return document


def stored(app: Flask, local_id: str) -> tuple[Header, tuple[Field, ...]]:
    store = app.extensions["oaipmh"].store
    header, fields = store.get_header(local_id), store.get_fields(local_id)
    assert header is not None and fields is not None
    return header, fields


def public(fields: tuple[Field, ...], name: str) -> list[str]:
    return [f.value for f in fields if f.name == name]


def listed_headers(client: FlaskClient, **arguments: str) -> list[Any]:
    roots, _ = harvest(client, "ListIdentifiers", metadataPrefix="oai_dc", **arguments)
    return [h for root in roots for h in root.iterfind(".//oai:header", NS)]


def test_the_home_page_counts_a_load_at_once(database_url: str, tmp_path: Any) -> None:
    """The home page's counts are the ones every write keeps, read at each visit: after a
    load they agree with the latest records it lists beside them. Only a store whose
    counts are not kept (last written by an older version) is counted, at most every
    five minutes, as reading it at every visit would cost a scan of its memberships."""
    client = make_app(database_url).test_client()

    def counts() -> str:
        return str(page(client, "/").find(".//p[@class='counts']").text_content())

    before = counts()
    seed = json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))
    added = tmp_path / "added.json"
    added.write_text(json.dumps({**seed, "id": "10722/999001"}), "utf-8")
    load_into(database_url, added)
    after = counts()
    assert after != before
    stats = make_app(database_url).extensions["oaipmh"].store.stats()
    assert f"{stats.records - stats.deleted} records" in after


def test_a_store_whose_counts_are_not_kept_is_counted_at_most_every_five_minutes(
    database_url: str,
) -> None:
    """Counting a store's sets scans its memberships (1.2 s at 10,000,000 records): a store
    whose counts no write kept is counted once for the home page's visits of five minutes."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM meta WHERE key IN ('counts', 'set_counts')"))
    engine.dispose()
    app = make_app(database_url)
    store = app.extensions["oaipmh"].store
    counted: list[bool] = []
    stats = store.stats

    def counting() -> Any:
        figures = stats()
        counted.append(figures.counted)
        return figures

    store.stats = counting
    client = app.test_client()
    first, second = (page(client, "/").find(".//p[@class='counts']").text_content()
                     for _ in range(2))  # fmt: skip
    assert counted == [True] and first == second


def test_home_shows_the_repository(client: FlaskClient, app: Flask) -> None:
    document = page(client, "/")
    stats = app.extensions["oaipmh"].store.stats()
    assert document.findtext(".//h1") == "Sample DSpace Repository"
    counts = document.find(".//p[@class='counts']").text_content()
    assert (
        f"{stats.records - stats.deleted} records" in counts
        and f"{stats.deleted} deleted" in counts
    )
    sets = {a.get("href"): a.text for a in document.findall(".//ul[@class='sets']//a")}
    assert sets["/sets/com_10722_1"] == "Faculty of Medicine"
    latest = [a.get("href") for a in document.findall(".//ol[@class='records']//a")]
    assert len(latest) == 10 and all(href.startswith("/records/") for href in latest)
    links = [a.get("href") for a in document.findall(".//table//a")]
    assert "http://localhost/oai?verb=Identify" in links
    assert "/oai/view?verb=ListRecords&metadataPrefix=oai_dc" in links


def test_home_shows_the_configured_description(database_url: str) -> None:
    app = make_app(database_url, repository_description="Theses & articles <of HKU>.")
    document = page(app.test_client(), "/")
    assert document.findtext(".//p[@class='lead']") == "Theses & articles <of HKU>."


def test_record_page_shows_the_record(client: FlaskClient, app: Flask) -> None:
    header, fields = stored(app, SEED)
    document = page(client, f"/records/{SEED}")
    assert document.findtext(".//h1") == public(fields, "dc.title")[0]
    creators = document.find(".//p[@class='creators']").text_content().split("; ")
    assert creators == public(fields, "dc.contributor.author")
    identifiers = {
        dt.text: dt.getnext() for dt in document.findall(".//dl[@class='identifiers']/dt")
    }
    doi = public(fields, "dc.identifier.doi")[0]
    assert identifiers["DOI"].find(".//a").get("href") == f"https://doi.org/{doi}"
    assert identifiers["Handle"].find(".//a").get("href") == "http://hdl.handle.net/10722/212116"
    assert identifiers["ISSN"].find(".//a") is None  # an ISSN is not a link
    assert identifiers["ISSN"].text_content() == "0963-6897"
    assert (
        identifiers["PubMed"].find(".//a").get("href")
        == "https://pubmed.ncbi.nlm.nih.gov/24388428/"
    )
    subjects = [li.text_content() for li in document.findall(".//ul[@class='subjects']/li")]
    assert subjects == public(fields, "dc.subject")
    sets = [a.get("href") for a in document.findall(".//ul[@class='sets']//a")]
    assert sets == [f"/sets/{spec}" for spec in header.set_specs]
    citation = document.find(".//dl[@class='facts']").text_content()
    assert public(fields, "dc.identifier.citation")[0] in citation


def test_record_page_links_every_format_of_the_registry(client: FlaskClient, app: Flask) -> None:
    """Whatever formats the registry holds (another module may add one), each the record
    can be disseminated in is linked as a GetRecord request."""
    _, fields = stored(app, SEED)
    formats = app.extensions["oaipmh"].formats
    document = page(client, f"/records/{SEED}")
    links = [a.get("href") for a in document.findall(".//ul[@class='formats']//a")]
    expected = [p for p, f in formats.items() if f.disseminates(fields)]
    assert [parse_qs(urlsplit(link).query)["metadataPrefix"][0] for link in links] == expected
    for link in links:
        query = parse_qs(urlsplit(link).query)
        assert query["verb"] == ["GetRecord"]
        assert query["identifier"] == [f"oai:repository.example.org:{SEED}"]
        response = client.get(urlsplit(link).path + "?" + urlsplit(link).query)
        assert response.status_code == 200 and b"<error" not in response.data


def test_values_with_a_language_carry_lang(client: FlaskClient, app: Flask) -> None:
    found = 0
    for local_id in ("10722/310001", "10722/310002", "10722/212130"):
        _, fields = stored(app, local_id)
        document = page(client, f"/records/{local_id}")
        title = next(f for f in fields if f.name == "dc.title")
        if title.lang:
            # the stored code (DSpace's `en_US`) as HTML's lang takes it: a BCP 47 tag
            assert document.find(".//h1").get("lang") == xml_language(title.lang)
            assert "_" not in document.find(".//h1").get("lang")
            found += 1
        for row in document.findall(".//table[@class='fields']/tbody/tr"):
            lang = row.findall("td")[2].text_content()  # as stored, what the source said
            assert (row.findall("td")[1].get("lang") or "") == (xml_language(lang) or "")
    assert found


def test_record_citation_tags_follow_the_stored_fields(client: FlaskClient, app: Flask) -> None:
    _, fields = stored(app, SEED)
    document = page(client, f"/records/{SEED}")
    meta: dict[str, list[str]] = {}
    for tag in document.findall(".//head/meta[@name]"):
        if tag.get("name").startswith("citation_"):
            meta.setdefault(tag.get("name"), []).append(tag.get("content"))
    assert meta["citation_title"] == public(fields, "dc.title")
    assert meta["citation_author"] == public(fields, "dc.contributor.author")  # in order
    assert meta["citation_publication_date"] == ["2013"]
    assert meta["citation_journal_title"] == ["Cell Transplantation"]
    assert meta["citation_volume"] == ["22"] and meta["citation_issue"] == ["12"]
    assert meta["citation_firstpage"] == ["2267"] and meta["citation_lastpage"] == ["2277"]
    assert meta["citation_doi"] == public(fields, "dc.identifier.doi")
    assert meta["citation_issn"] == ["0963-6897"]
    assert meta["citation_publisher"] == public(fields, "dc.publisher")
    assert meta["citation_keywords"] == public(fields, "dc.subject")
    assert meta["citation_abstract_html_url"] == [f"http://localhost/records/{SEED}"]
    assert "citation_pdf_url" not in meta  # no files yet


def test_citation_table_is_configurable(database_url: str) -> None:
    app = make_app(
        database_url,
        citation_map={"citation_title": "dc.title.alternative | dc.title", "citation_issn": ""},
    )
    document = page(app.test_client(), f"/records/{SEED}")
    names = [m.get("name") for m in document.findall(".//meta[@name]")]
    assert "citation_issn" not in names
    assert document.find(".//meta[@name='citation_title']").get("content").startswith("Allogeneic")


def test_signposting_links_in_headers_and_page(client: FlaskClient, app: Flask) -> None:
    response = client.get(f"/records/{SEED}")
    links = re.split(r", (?=<)", response.headers["Link"])
    assert links[0] == '<https://doi.org/10.3727/096368911X582769c>; rel="cite-as"'
    formats = app.extensions["oaipmh"].formats
    described = [link for link in links if 'rel="describedby"' in link]
    assert len(described) == len(formats)
    for prefix, metadata_format in formats.items():
        assert any(
            f"metadataPrefix={prefix}&" in link
            and f'profile="{metadata_format.namespace}"' in link
            and 'type="text/xml"' in link
            for link in described
        ), prefix
    assert '<https://schema.org/ScholarlyArticle>; rel="type"' in links
    document = html.document_fromstring(response.get_data(as_text=True))
    elements = {(e.get("rel"), e.get("href")) for e in document.findall(".//head/link")}
    assert ("cite-as", "https://doi.org/10.3727/096368911X582769c") in elements
    assert ("type", "https://schema.org/ScholarlyArticle") in elements
    assert sum(1 for rel, _ in elements if rel == "describedby") == len(formats)


def test_link_header_of_a_record_with_many_files_stays_within_its_budget(
    empty_database_url: str, tmp_path: Any
) -> None:
    """Stock nginx answers 502 once a response's headers pass its 4 KB buffer: the Link
    header keeps cite-as, describedby and type first, then as many files as fit in
    landing.LINK_HEADER_BUDGET bytes; the page's <link> elements keep every file."""
    files = [{"name": f"chapter-{n:03}-of-a-long-thesis.pdf", "size": 1000 + n, "md5": "0" * 32}
             for n in range(1, 201)]  # fmt: skip
    record = {
        "id": "10722/9",
        "metadata": [{"field": "dc.title", "value": "Two hundred chapters"},
                     {"field": "dc.identifier.doi", "value": "10.1000/many"},
                     {"field": "dc.rights.uri", "value": "https://creativecommons.org/licenses/by/4.0/"},
                     {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}],
        "files": files,
    }  # fmt: skip
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record) + "\n", "utf-8")
    pattern = "https://files.example.org/{handle}/{name}"
    load_into(empty_database_url, path, files_url=pattern)
    app = make_app(empty_database_url, files_url=pattern)
    response = app.test_client().get("/records/10722/9")
    assert response.status_code == 200
    header = response.headers["Link"]
    assert len(header.encode()) <= landing.LINK_HEADER_BUDGET
    links = re.split(r", (?=<)", header)
    assert links[0] == '<https://doi.org/10.1000/many>; rel="cite-as"'
    formats = app.extensions["oaipmh"].formats
    assert sum('rel="describedby"' in link for link in links) == len(formats)
    assert '<https://schema.org/ScholarlyArticle>; rel="type"' in links
    assert '<https://creativecommons.org/licenses/by/4.0/>; rel="license"' in links
    items = [link for link in links if 'rel="item"' in link]
    urls = [f"https://files.example.org/10722/9/{f['name']}" for f in files]
    assert 0 < len(items) < 200
    assert items == [f'<{url}>; rel="item"; type="application/pdf"' for url in urls[: len(items)]]
    document = html.document_fromstring(response.get_data(as_text=True))
    in_page = [e.get("href") for e in document.findall(".//head/link[@rel='item']")]
    assert in_page == urls
    assert len(document.findall(".//ul[@class='files']/li")) == 200


def test_link_header_passes_over_a_link_too_long_for_it() -> None:
    links = [
        landing.Link("https://doi.org/10.1/" + "x" * 3000, "cite-as"),
        landing.Link("https://r.example/f/1", "item", "application/pdf"),
        landing.Link("https://orcid.org/0000-0002-1825-0097", "author"),
        landing.Link("https://schema.org/Thesis", "type"),
    ]
    assert landing.link_header(links) == (
        '<https://schema.org/Thesis>; rel="type", '
        '<https://r.example/f/1>; rel="item"; type="application/pdf", '
        '<https://orcid.org/0000-0002-1825-0097>; rel="author"'
    )
    assert landing.link_header(links, budget=len('<https://schema.org/Thesis>; rel="type"')) == (
        '<https://schema.org/Thesis>; rel="type"'
    )


def test_json_ld_follows_the_stored_fields(client: FlaskClient, app: Flask) -> None:
    _, fields = stored(app, SEED)
    document = page(client, f"/records/{SEED}")
    data = json.loads(document.find(".//script[@type='application/ld+json']").text)
    assert data["@type"] == "ScholarlyArticle"
    assert data["@id"] == "https://doi.org/10.3727/096368911X582769c"
    assert data["name"] == public(fields, "dc.title")[0]
    assert [a["name"] for a in data["author"]] == public(fields, "dc.contributor.author")
    assert data["datePublished"] == "2013"
    assert data["isPartOf"] == {"@type": "Periodical", "name": "Cell Transplantation",
                                "issn": ["0963-6897"]}  # fmt: skip
    assert data["keywords"] == public(fields, "dc.subject")


def test_dc_type_chooses_the_schema_org_type(client: FlaskClient, app: Flask) -> None:
    store = app.extensions["oaipmh"].store
    theses = [
        lid
        for lid, fields in store.get_fields_of([f"10722/2121{n}" for n in range(17, 60)]).items()
        if any(f.name == "dc.type" and f.value == "Thesis" for f in fields)
    ]
    assert theses
    response = client.get(f"/records/{theses[0]}")
    assert '<https://schema.org/Thesis>; rel="type"' in response.headers["Link"]
    document = html.document_fromstring(response.get_data(as_text=True))
    assert json.loads(document.find(".//script").text)["@type"] == "Thesis"


def test_no_private_field_leaves_in_page_tags_or_json_ld(database_url: str) -> None:
    """dc.identifier.email, dc.description.provenance and the configured hidden fields are
    in none of the page, its meta tags, its Link header or its JSON-LD."""
    app = make_app(database_url, hidden_fields=["dc.identifier.scopus", "dc.identifier.isi"])
    client = app.test_client()
    store = app.extensions["oaipmh"].store
    hidden = PRIVATE_FIELDS | {"dc.identifier.scopus", "dc.identifier.isi"}
    checked: set[str] = set()
    ids = [SEED, *(f"10722/2121{n}" for n in range(17, 40))]
    for local_id, fields in store.get_fields_of(ids).items():
        secrets = [f.value for f in fields if f.name in hidden]
        if not secrets:
            continue
        response = client.get(f"/records/{local_id}")
        if response.status_code == 410:
            continue
        text = response.get_data(as_text=True) + response.headers.get("Link", "")
        unescaped = html.document_fromstring(response.get_data(as_text=True)).text_content()
        for secret in secrets:
            for part in (secret, *re.findall(r"\S+@\S+", secret)):
                assert part not in text and part not in unescaped, (local_id, part)
                assert json.dumps(part)[1:-1] not in text
        checked.update(f.name for f in fields if f.name in hidden)
    assert checked >= PRIVATE_FIELDS | {"dc.identifier.scopus", "dc.identifier.isi"}


def test_deleted_record_is_gone(client: FlaskClient, app: Flask) -> None:
    header, _ = stored(app, DELETED)
    assert header.deleted
    document = page(client, f"/records/{DELETED}", 410)
    assert document.find(".//time").get("datetime") == format_datestamp(header.datestamp)
    assert format_datestamp(LOADED) in document.text_content()


def test_unknown_record_is_not_found(reading_client: FlaskClient) -> None:
    document = page(reading_client, "/records/10722/nothing-here", 404)
    assert "10722/nothing-here" in document.text_content()


def test_values_are_escaped_and_only_http_is_linked() -> None:
    settings = load_settings(environ={})
    fields = (
        Field("dc.title", "<script>alert(1)</script>"),
        Field("dc.identifier.uri", "javascript:alert(1)"),
        Field("dc.identifier.uri", 'https://example.org/a b"<>'),
        Field("dc.identifier.doi", "doi:10.1000/x<y>"),
    )
    record = landing.record_page(
        Header("1/2", LOADED, (), False), fields, [], settings=settings,
        formats=build_formats(settings), page_url="https://r.example/records/1/2",
        oai_base="https://r.example/oai", oai_identifier="oai:r.example:1/2",
    )  # fmt: skip
    hrefs = [v.href for v in record.identifiers]
    assert hrefs == [None, None, "https://doi.org/10.1000/x%3Cy%3E"]
    assert landing.safe_url("https://example.org/ü b") is None
    assert landing.safe_url("https://example.org/ü") == "https://example.org/%C3%BC"
    for link in record.links:
        assert not re.search(r"[\s<>\"]", link.href)


def test_rendered_values_are_escaped(database_url: str, tmp_path: Any) -> None:
    """A title holding markup is shown as text (autoescaping), in the page and its tags."""
    client = make_app(database_url).test_client()
    body = client.get("/records/10722/212120").get_data(as_text=True)
    assert "<sup>2+</sup>" not in body and "&lt;sup&gt;2+&lt;/sup&gt;" in body


def test_files_plug_into_the_page_tags_and_links() -> None:
    """Records carry no files yet (issue 14): once the store gives them, they become the
    files section, citation_pdf_url, Signposting `item` links and JSON-LD `encoding`."""
    settings = load_settings(environ={})
    pdf = landing.FileLink("paper.pdf", "application/pdf", 123456, "https://r.example/f/1")
    record = landing.record_page(
        Header("1/2", LOADED, (), False), (Field("dc.title", "T"),), [], settings=settings,
        formats=build_formats(settings), page_url="https://r.example/records/1/2",
        oai_base="https://r.example/oai", oai_identifier="oai:r.example:1/2", files=[pdf],
    )  # fmt: skip
    assert ("citation_pdf_url", "https://r.example/f/1") in record.meta
    assert landing.Link("https://r.example/f/1", "item", "application/pdf") in record.links
    assert record.json_ld["encoding"][0]["contentUrl"] == "https://r.example/f/1"
    without = landing.record_page(
        Header("1/2", LOADED, (), False), (Field("dc.title", "T"),), [], settings=settings,
        formats=build_formats(settings), page_url="https://r.example/records/1/2",
        oai_base="https://r.example/oai", oai_identifier="oai:r.example:1/2",
    )  # fmt: skip
    assert without.files == [] and "encoding" not in without.json_ld


def test_record_page_has_no_files_section_without_files(reading_client: FlaskClient) -> None:
    document = page(reading_client, f"/records/{SEED}")
    assert document.find(".//h2[@id='files-heading']") is None


@pytest.mark.store_behaviour
def test_set_page_pages_by_keyset_in_datestamp_order(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "SET_PAGE_SIZE", 3)
    spec = "com_10722_1"
    document = page(client, f"/sets/{spec}")
    assert document.findtext(".//h1") == "Faculty of Medicine"
    subsets = [a.get("href") for a in document.findall(".//section//ul[@class='sets']//a")]
    # The sets file's tree: a collection and a sub-community (with its own collection).
    assert subsets == ["/sets/col_10722_5", "/sets/com_10722_4"]
    shown: list[str] = []
    pages_seen = 0
    while True:
        pages_seen += 1
        items = document.findall(".//ol[@class='records']/li")
        assert len(items) <= 3
        for item in items:
            link = item.find("a")
            shown.append(link.get("href").removeprefix("/records/") if link is not None
                         else item.findtext("span").removesuffix(" (deleted)"))  # fmt: skip
        following = document.find(".//a[@rel='next']")
        if following is None:
            break
        document = page(client, following.get("href"))
    expected = [header.findtext("oai:identifier", namespaces=NS).split(":", 2)[2]
                for header in listed_headers(client, set=spec)]  # fmt: skip
    assert shown == expected and pages_seen > 3


@pytest.mark.parametrize(
    "query",
    ["after=2020-01-01T00:00:00Z", "id=x", "after=yesterday&id=x", "after=2020-13-01&id=x"],
)
def test_set_page_refuses_a_bad_position(reading_client: FlaskClient, query: str) -> None:
    page(reading_client, f"/sets/com_10722_1?{query}", 400)


def test_unknown_set_is_not_found(reading_client: FlaskClient) -> None:
    page(reading_client, "/sets/nope", 404)


def test_oai_view_renders_any_request_with_links(
    reading_client: FlaskClient, reading_app: Flask
) -> None:
    document = page(reading_client, "/oai/view?verb=ListRecords&metadataPrefix=qdc")
    assert document.findtext(".//h1") == "OAI-PMH: ListRecords"
    token = document.xpath(".//li[span[@class='tag']='resumptionToken']//a")[0]
    query = parse_qs(urlsplit(token.get("href")).query)
    assert query["verb"] == ["ListRecords"] and query[pages.VIEW_PREFIX] == ["qdc"]
    identifier = document.xpath(".//li[span[@class='tag']='identifier']//a")[0]
    assert parse_qs(urlsplit(identifier.get("href")).query)["metadataPrefix"] == ["qdc"]
    following = page(reading_client, token.get("href"))  # the next page, readable
    assert following.xpath(".//li[span[@class='tag']='record']")
    record = following.xpath(".//a[@class='page']")[0].get("href")
    assert reading_client.get(record).status_code in (200, 410)
    raw = document.find(".//main//a[@class='url']").get("href")
    assert raw == "http://localhost/oai?verb=ListRecords&metadataPrefix=qdc"


def test_oai_view_shows_errors_and_languages(reading_client: FlaskClient) -> None:
    document = page(reading_client, "/oai/view?verb=Frobnicate")
    assert "badVerb" in document.find(".//p[@class='error']").text_content()
    document = page(reading_client, "/oai/view?verb=GetRecord&metadataPrefix=oai_dc"
                    "&identifier=oai:repository.example.org:10722/310002")  # fmt: skip
    assert document.xpath(".//span[@class='text'][@lang]")
    formats = page(reading_client, "/oai/view?verb=ListMetadataFormats")
    assert formats.xpath(".//a[contains(@href, 'verb=ListRecords&metadataPrefix=oai_dc')]")


@pytest.mark.parametrize(
    "query",
    [
        "verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:10722/%E9",
        "verb=ListRecords&metadataPrefix=%FF",
        "verb=Identify%E9",
    ],
)
def test_oai_view_answers_a_byte_that_is_not_utf8_as_oai_does(
    reading_client: FlaskClient, query: str
) -> None:
    """/oai refuses a %-escaped byte that is not UTF-8 (badArgument, or badVerb in the
    verb) rather than read it as U+FFFD, which could name another record; the view of the
    same request shows the same error."""
    answer = etree.fromstring(reading_client.get(f"/oai?{query}").data)
    (code,) = answer.xpath("//oai:error/@code", namespaces=NS)
    document = page(reading_client, f"/oai/view?{query}")
    assert code in document.find(".//p[@class='error']").text_content()
    (xml_link,) = document.xpath(".//a[@class='url']/@href")  # the same request, as it came
    assert query[-3:] in xml_link


@pytest.mark.parametrize(
    "accept",
    [BROWSER_ACCEPT, "text/html", "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"],
)
def test_oai_answers_xml_whatever_the_accept_header(
    reading_client: FlaskClient, accept: str
) -> None:
    response = reading_client.get("/oai?verb=Identify", headers={"Accept": accept})
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert etree.fromstring(response.data).tag == "{http://www.openarchives.org/OAI/2.0/}OAI-PMH"


def sitemap_locations(client: FlaskClient, path: str) -> list[str]:
    """The locations a sitemap or sitemap index lists, the document valid by sitemaps.org's
    schema (which wants at least one of them)."""
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "application/xml"
    root = validate_sitemap(response.get_data())
    return [str(loc) for loc in root.xpath("s:*/s:loc/text()", namespaces=SITEMAP)]


def test_an_empty_repositorys_sitemap_lists_its_home_page(empty_database_url: str) -> None:
    """Before the first load the sitemap index still lists a sitemap, and that sitemap a
    page: sitemaps.org's schema wants at least one of each, and a crawler reads the home
    page. (An index of no sitemaps was invalid.)"""
    client = make_app(empty_database_url).test_client()
    assert sitemap_locations(client, "/sitemap.xml") == ["http://localhost/sitemaps/pages.xml"]
    assert sitemap_locations(client, "/sitemaps/pages.xml") == ["http://localhost/"]


@pytest.mark.parametrize("start", [DELETED, "~"], ids=["deleted-records-only", "past-the-last"])
def test_a_records_sitemap_with_no_live_record_lists_the_home_page(
    reading_client: FlaskClient, monkeypatch: pytest.MonkeyPatch, start: str
) -> None:
    """A range the index listed whose records have all been deleted since (or were: the
    ranges count tombstones) is still a sitemap sitemaps.org's schema takes, which wants
    a URL: the home page's, as the empty repository's pages' sitemap lists it. These are
    sitemaps for crawlers, not ResourceSync lists (which may list nothing)."""
    monkeypatch.setattr(sitemaps, "SITEMAP_SIZE", 1)
    path = f"/sitemaps/records.xml?start={quote(start, safe='')}"
    assert sitemap_locations(reading_client, path) == ["http://localhost/"]


@pytest.mark.store_behaviour
def test_sitemap_lists_every_live_record_with_its_datestamp(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index lists the sitemap of the site's own pages (the home page and each set's
    page), then one sitemap per SITEMAP_SIZE records, each record's page once, with its
    datestamp."""
    monkeypatch.setattr(sitemaps, "SITEMAP_SIZE", 10)
    monkeypatch.setattr(sitemaps, "SITEMAP_CHUNK", 3)
    pages_map, *locations = sitemap_locations(client, "/sitemap.xml")
    stats = app.extensions["oaipmh"].store.stats()
    assert pages_map == "http://localhost/sitemaps/pages.xml"
    # A sitemap holds at most SITEMAP_SIZE URLs: the home page and the first sets' pages.
    assert len(stats.sets) > 9
    assert sitemap_locations(client, "/sitemaps/pages.xml") == [
        "http://localhost/",
        *(f"http://localhost/sets/{spec}" for spec in sorted(stats.sets)[:9]),
    ]
    assert len(locations) == -(-stats.records // 10)
    listed: dict[str, str] = {}
    for location in locations:
        parts = urlsplit(location)
        response = client.get(f"{parts.path}?{parts.query}")
        assert response.status_code == 200 and response.is_streamed
        urls = validate_sitemap(response.get_data()).findall("s:url", SITEMAP)
        assert len(urls) <= 10
        for url in urls:
            local_id = url.findtext("s:loc", namespaces=SITEMAP).removeprefix(
                "http://localhost/records/"
            )
            assert local_id not in listed
            listed[local_id] = url.findtext("s:lastmod", namespaces=SITEMAP)
    expected = {
        h.findtext("oai:identifier", namespaces=NS).split(":", 2)[2]:
        h.findtext("oai:datestamp", namespaces=NS)
        for h in listed_headers(client) if h.get("status") != "deleted"
    }  # fmt: skip
    assert listed == expected


def test_robots_txt_points_at_the_sitemap(database_url: str) -> None:
    app = make_app(database_url, base_url="https://repo.example.org/oai")
    body = app.test_client().get("/robots.txt").get_data(as_text=True)
    assert "Sitemap: https://repo.example.org/sitemap.xml" in body.splitlines()
    assert "Disallow: /oai" in body.splitlines()


def test_pages_use_the_configured_base_url(database_url: str) -> None:
    app = make_app(database_url, base_url="https://repo.example.org/oai")
    response = app.test_client().get(f"/records/{SEED}")
    assert (
        "<https://repo.example.org/oai?verb=GetRecord&metadataPrefix=oai_dc"
        in response.headers["Link"]
    )
    document = html.document_fromstring(response.get_data(as_text=True))
    canonical = document.find(".//link[@rel='canonical']").get("href")
    assert canonical == f"https://repo.example.org/records/{SEED}"


def test_pages_forbid_scripts(reading_client: FlaskClient) -> None:
    policy = reading_client.get("/").headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy


def test_citation_sources_read_as_dspace_reads_them() -> None:
    fields = (Field("dc.creator", "A"), Field("dc.subject", "s"), Field("dc.type", "t"),
              Field("dc.date.issued", "2020-05-04"))  # fmt: skip
    tags = landing.citation_tags(
        fields,
        [("citation_author", "dc.contributor.author | dc.creator"),
         ("citation_keywords", "dc.subject, dc.type"),
         ("citation_publication_date", "dc.date.issued"),
         ("citation_pdf_url", "$pdf")],
        {"$pdf": None},
    )  # fmt: skip
    assert tags == [("citation_author", "A"), ("citation_keywords", "s"),
                    ("citation_keywords", "t"), ("citation_publication_date", "2020/05/04")]  # fmt: skip


@pytest.mark.store_behaviour
def test_store_reads_for_pages(app: Flask) -> None:
    store = app.extensions["oaipmh"].store
    latest = store.latest_headers(3)
    assert [h.datestamp for h in latest] == sorted((h.datestamp for h in latest), reverse=True)
    assert not any(h.deleted for h in latest)
    assert [s.spec for s in store.list_subsets("com_10722_2", 10)] == [
        "col_10722_20", "col_10722_21"]  # fmt: skip
    starts = store.sitemap_starts(5)
    assert len(starts) == -(-store.count_all() // 5) and starts == sorted(starts)
    assert store.list_ids(starts[1], None, 1)[0][0] == starts[1]
    assert isinstance(store.list_ids(starts[0], None, 1)[0][1], datetime)
    assert store.list_ids(starts[0], None, 1)[0][1].tzinfo == UTC


@pytest.mark.parametrize(
    "path",
    [
        "/records/%00", "/records/a%00b", "/records/" + "a" * 5000, "/records/%C3%BC",
        "/sets/%00", "/sets/a%20b", "/sets/" + "s" * 5000,
        "/sets/com_10722_1?after=2020-01-01T00:00:00Z&id=%00",
        "/sitemaps/records.xml?start=%00", "/oai/view?verb=%00", "/oai/view?verb=GetRecord"
        "&metadataPrefix=oai_dc&identifier=oai:repository.example.org:%00",
    ],
)  # fmt: skip
def test_hostile_addresses_are_answered_not_failed(reading_client: FlaskClient, path: str) -> None:
    """Bad input is a 4xx page (or an OAI error), never a 500, and never a 503 either:
    nothing that cannot be an id or a set reaches the database."""
    response = reading_client.get(path)
    assert response.status_code in (200, 400, 404), response.status_code


@pytest.mark.store_behaviour
def test_pages_answer_503_when_the_database_cannot(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oaipmh_server.errors import StoreUnavailable

    def down(*_: Any) -> None:
        raise StoreUnavailable("OperationalError")

    monkeypatch.setattr(app.extensions["oaipmh"].store, "get_header", down)
    response = client.get(f"/records/{SEED}")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert response.mimetype == "text/html"


def test_page_tables_in_a_config_file_add_to_the_defaults(tmp_path: Any) -> None:
    config = tmp_path / "site.toml"
    config.write_text(
        '[repository]\ndescription = "Our papers."\n'
        '[pages.citation]\ncitation_title = "dc.title.alternative | dc.title"\n'
        '[pages.schema_types]\n"Poster" = "Poster"\n'
    )
    settings = load_settings(environ={"OAIPMH_CONFIG": str(config)})
    citation = dict(settings.citation_map)
    assert citation["citation_title"] == "dc.title.alternative | dc.title"
    assert citation["citation_author"] == "dc.contributor.author | dc.creator"
    assert dict(settings.schema_types)["poster"] == "Poster"
    assert dict(settings.schema_types)["article"] == "ScholarlyArticle"
    assert settings.repository_description == "Our papers."


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[pages.citation]\ntitle = "dc.title"\n', r": pages\.citation: "),
        ('[pages.citation]\ncitation_title = "dc title!"\n', r": pages\.citation: "),
        ('[pages.schema_types]\n"Article" = "not a type"\n', r": pages\.schema_types: "),
    ],
)
def test_bad_page_tables_are_refused_naming_the_key(
    tmp_path: Any, table: str, message: str
) -> None:
    from oaipmh_server.errors import ConfigError

    config = tmp_path / "site.toml"
    config.write_text(table)
    with pytest.raises(ConfigError, match=message) as error:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert str(config) in str(error.value)


def test_landing_imports_neither_flask_nor_sqlalchemy() -> None:
    """What a landing page says is testable without the web and the database, as verbs are."""
    import subprocess
    import sys

    code = (
        "import sys, oaipmh_server.landing;"
        "print(sorted(m for m in ('flask', 'sqlalchemy', 'werkzeug') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- [pages]: off, or the institution's -------------------------------------------------------


PAGES = [
    "/", f"/records/{SEED}", f"/records/{DELETED}", "/records/no/such", "/sets/com_10722_1",
    "/sitemap.xml", "/sitemaps/records.xml", "/sitemaps/pages.xml", "/oai/view?verb=Identify",
    "/static/style.css",
]  # fmt: skip


def site_config(tmp_path: Any, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "site.toml"
    config.write_text(text, "utf-8")
    monkeypatch.setenv("OAIPMH_CONFIG", str(config))


def test_pages_turned_off_answer_404_and_oai_is_unchanged(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    on = make_app(database_url).test_client()
    for path in PAGES:
        with on.get(path) as response:
            assert response.status_code in (200, 404, 410), path
    site_config(tmp_path, "[pages]\nenabled = false\n", monkeypatch)
    off = make_app(database_url).test_client()
    for path in PAGES:
        response = off.get(path)
        assert response.status_code == 404, path
        assert response.mimetype == "text/plain", path  # not a page either
    for path in ("/oai", "/oai/request"):
        query = f"{path}?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:{SEED}"
        both = [client.get(query) for client in (on, off)]
        assert [r.status_code for r in both] == [200, 200]
        blank = [re.sub(rb"<responseDate>[^<]*", b"", r.data) for r in both]
        assert blank[0] == blank[1] and b"<error" not in blank[0]
        assert off.post(path, data={"verb": "Identify"}).status_code == 200
    robots = off.get("/robots.txt").get_data(as_text=True)
    assert robots == "User-agent: *\nDisallow: /oai\n"  # no sitemap to point at
    assert off.get("/healthz").status_code == 200


def test_pages_show_the_institutions_name_logo_footer_colour_and_language(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_config(
        tmp_path,
        '[pages]\nname = "HKU Scholars Hub"\nlogo_url = "https://www.hku.hk/logo.svg"\n'
        'footer = "The University of Hong Kong <b>Libraries</b> & co"\naccent_color = "#0A5"\n'
        'lang = "zh-Hant-HK"\n',
        monkeypatch,
    )
    client = make_app(database_url).test_client()
    for path, status in (("/", 200), (f"/records/{SEED}", 200), ("/records/no/such", 404),
                         (f"/records/{DELETED}", 410), ("/sets/com_10722_1", 200)):  # fmt: skip
        response = client.get(path)
        document = page(client, path, status, lang="zh-Hant-HK")
        assert document.findtext(".//title").endswith("HKU Scholars Hub")
        name = document.find(".//p[@class='site-name']/a")
        assert name.text_content() == "HKU Scholars Hub"
        logo = name.find("img")
        assert (logo.get("src"), logo.get("alt")) == ("https://www.hku.hk/logo.svg", "")
        footer = document.find(".//footer/p[@class='footer-text']")
        assert footer.text == "The University of Hong Kong <b>Libraries</b> & co"  # as text
        assert len(footer) == 0
        style = document.find(".//head/style").text
        assert style == ":root { --accent: #0a5; }"
        digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
        policy = response.headers["Content-Security-Policy"]
        assert f"style-src 'self' 'sha256-{digest}';" in policy
        assert "img-src 'self' https://www.hku.hk;" in policy
        assert "script-src" not in policy
    assert page(client, "/", lang="zh-Hant-HK").findtext(".//h1") == "HKU Scholars Hub"
    # Identify still names the repository: the pages' name is the pages' own.
    assert b"<repositoryName>Sample DSpace Repository<" in client.get("/oai?verb=Identify").data


def test_pages_by_default_have_no_logo_footer_or_inline_style(reading_client: FlaskClient) -> None:
    response = reading_client.get("/")
    assert response.headers["Content-Security-Policy"] == pages.CONTENT_SECURITY_POLICY
    document = page(reading_client, "/")
    assert document.find(".//head/style") is None and document.find(".//header//img") is None
    assert document.find(".//p[@class='footer-text']") is None
    assert document.find(".//p[@class='site-name']/a").text == "Sample DSpace Repository"


def test_a_template_folder_overrides_templates_of_its_names(
    database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "record.html").write_text(
        '{% extends "base.html" %}\n{% block main %}<h1 class="ours">{{ record.title.text }}'
        "</h1><p>{{ record.oai_identifier }}</p>{% endblock %}\n",
        "utf-8",
    )
    (folder / "_macros.html").write_text(
        '{% macro title_link(local_id, title) %}<a class="ours" href="/records/{{ local_id }}'
        '">{{ title.text if title else local_id }}</a>{% endmacro %}\n',
        "utf-8",
    )
    site_config(tmp_path, f'[pages]\ntemplate_folder = "{folder}"\n', monkeypatch)
    app = make_app(database_url)
    client = app.test_client()
    _, fields = stored(app, SEED)
    record = page(client, f"/records/{SEED}")
    assert record.find(".//h1").get("class") == "ours"
    assert record.findtext(".//h1") == public(fields, "dc.title")[0]
    assert record.find(".//dl[@class='facts']") is None  # the built-in body is gone
    assert record.find(".//header[@class='site']") is not None  # base.html stays built-in
    home = page(client, "/")  # home.html stays built-in, with the folder's macro
    assert home.find(".//p[@class='counts']") is not None
    assert home.findall(".//ol[@class='records']//a[@class='ours']")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ('enabled = "no"', "pages.enabled", "expected true or false, got 'no'"),
        ("name = 3", "pages.name", "expected a string, got 3"),
        ('logo_url = "javascript:alert(1)"', "pages.logo_url", "is not an http(s) URL"),
        ('logo_url = "logo.png"', "pages.logo_url", "is not an http(s) URL or a path"),
        ('logo_url = "/a\\" onerror=\\"x"', "pages.logo_url", "is not an http(s) URL"),
        ('accent_color = "red"', "pages.accent_color", "'red' is not a colour like #0a5"),
        ('accent_color = "#00aa5"', "pages.accent_color", "is not a colour"),
        ('accent_color = "#0a5; } body { display: none"', "pages.accent_color", "not a colour"),
        ('template_folder = "/no/such/folder"', "pages.template_folder", "is not a folder"),
        ('lang = ""', "pages.lang", "'' is not a language tag"),
        ('lang = "en_US"', "pages.lang", "is not a language tag"),
        ('lang = "en\\" x=\\"y"', "pages.lang", "is not a language tag"),
        ('logo = "/logo.png"', "pages.logo", "unknown key pages.logo (did you mean pages.logo_url?)"),
    ],
)  # fmt: skip
def test_bad_pages_settings_are_refused_naming_key_and_source(
    tmp_path: Any, text: str, key: str, message: str
) -> None:
    from oaipmh_server.errors import ConfigError

    config = tmp_path / "site.toml"
    config.write_text(f"[pages]\n{text}\n", "utf-8")
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert str(error.value).startswith(f"{config}: ")
    assert key in str(error.value) and message in str(error.value)


def test_good_pages_settings_are_taken(tmp_path: Any) -> None:
    settings = load_settings(
        {"pages_logo_url": "/static-site/logo.svg?v=2", "pages_accent_color": "#00AA55",
         "pages_lang": "pt-BR", "pages_template_folder": str(tmp_path)},
        environ={},
    )  # fmt: skip
    assert settings.pages_accent_color == "#00aa55" and settings.pages_lang == "pt-BR"
    site = pages.site_of(settings)
    assert "img-src 'self';" in site.policy  # a logo on this site needs no other host


@pytest.mark.parametrize(
    ("color", "warned"), [("#006633", False), ("#0a5", True), ("#f2a900", True)]
)
def test_an_accent_colour_too_light_for_links_is_warned_of(
    database_url: str, caplog: pytest.LogCaptureFixture, color: str, warned: bool
) -> None:
    """The colour is the operator's choice; one that makes links unreadable is said at
    start-up (contrast below WCAG AA's 4.5:1 on the header band), and still applied."""
    with caplog.at_level("WARNING", logger="oaipmh_server"):
        client = make_app(database_url, pages_accent_color=color).test_client()
    messages = [r.getMessage() for r in caplog.records if "accent_color" in r.getMessage()]
    assert bool(messages) == warned, messages
    if warned:
        assert f"[pages] accent_color {color} has a contrast of" in messages[0]
        assert ":1 with the header band (#f3f5f8), below the 4.5:1" in messages[0]
    assert page(client, "/").find(".//head/style").text == f":root {{ --accent: {color}; }}"


def test_a_worker_given_its_masters_settings_does_not_warn_again(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`serve`'s master reads the settings, says what is wrong with them and hands them to
    each worker (`create_app(settings=…)`, cli/serving.py): the workers say no more. Each
    said it again, so a start with two workers printed every warning three times (the
    accent colour's, and the stale virtual sets')."""
    overrides = {
        "database_url": database_url, "token_secret": SECRET,
        "pages_accent_color": "#0a5", "virtual_sets_served": ["driver"],
    }  # fmt: skip

    def warnings_of(make: Any) -> list[str]:
        caplog.clear()
        with caplog.at_level("WARNING", logger="oaipmh_server"):
            app = make()
        app.extensions["oaipmh"].store.close()
        return [r.getMessage() for r in caplog.records]

    said = warnings_of(lambda: create_app(overrides))
    assert [m for m in said if "accent_color #0a5" in m] != []
    assert [m for m in said if "virtual sets configured" in m] != []
    settings = load_settings(overrides, environ={})
    assert warnings_of(lambda: create_app(settings=settings)) == []


def test_contrast_is_wcags() -> None:
    assert pages.contrast("#000", "#fff") == pytest.approx(21)
    assert pages.contrast("#fff", "#ffffff") == pytest.approx(1)
    assert pages.contrast("#0b57a4", "#fff") == pytest.approx(7.21, abs=0.01)  # the default


# -- text from the URL and bidi controls (issue 24) ------------------------------------------

SPOOF = "Repository closed: call +1-555-0100"


def test_oai_view_does_not_take_its_title_or_heading_from_the_url(client: FlaskClient) -> None:
    document = page(client, f"/oai/view?verb={quote(SPOOF)}")
    assert SPOOF not in document.findtext(".//title")
    assert SPOOF not in document.find(".//h1").text_content()
    assert document.find(".//h1").text_content() == "OAI-PMH: request"
    listed = page(client, "/oai/view?verb=ListSets")
    assert listed.findtext(".//title").startswith("ListSets · ")  # a verb the server knows


@pytest.mark.parametrize("path", [f"/records/{quote(SPOOF)}", f"/sets/{quote(SPOOF)}"])
def test_not_found_pages_show_the_url_only_as_code(client: FlaskClient, path: str) -> None:
    document = page(client, path, 404)
    assert SPOOF not in document.findtext(".//title")
    assert SPOOF not in document.find(".//h1").text_content()
    shown = [e for e in document.iter() if e.text and SPOOF in e.text]
    assert [e.tag for e in shown] == ["code"]


def _one_record_titled(title: str, url: str, tmp_path: Any) -> FlaskClient:
    """A client of a store holding one record, 1/1, with this title."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "1/1", "metadata": [
        {"field": "dc.title", "value": title},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}) + "\n")  # fmt: skip
    load_into(url, path)
    return make_app(url).test_client()


def test_bidi_controls_are_isolated_in_link_text_and_titles(
    empty_database_url: str, tmp_path: Any
) -> None:
    """A title with RIGHT-TO-LEFT OVERRIDE (U+202E) reverses what follows it on the line
    unless it is isolated: first strong isolate (U+2068) … pop directional isolate (U+2069)."""
    title = "Thesis \u202efdp.exe"
    client = _one_record_titled(title, empty_database_url, tmp_path)
    isolated = f"\u2068{title}\u2069"
    record = page(client, "/records/1/1")
    assert record.findtext(".//title").startswith(isolated)
    assert record.find(".//h1").text_content() == isolated
    home = page(client, "/")
    links = [a.text_content() for a in home.iter("a") if a.get("href", "").endswith("/records/1/1")]
    assert links == [isolated]
    assert title not in home.text_content().replace(isolated, "")
    plain = page(client, "/oai/view?verb=Identify")  # text without controls is unchanged
    assert "\u2068" not in plain.text_content()


@pytest.mark.parametrize(
    "path",
    ["/records/a%05b", "/records/%00", "/records/a%7Fb", "/records/a%C2%85b", "/records/a%EF%BF%BFb",
     "/sets/a%01b", "/sets/a%1Bb", "/sets/a%C2%9Bb", "/sets/a%EF%B7%90b"],
)  # fmt: skip
def test_not_found_pages_show_characters_html_forbids_as_replacement_characters(
    reading_client: FlaskClient, path: str
) -> None:
    """An address asking for an id or a spec with a control character (C0, DEL, C1) or a
    noncharacter in it is shown with each of them as U+FFFD: HTML forbids them in a
    document (each one a parse error), and a terminal escape copied from a page acts."""
    document = page(reading_client, path, 404)
    shown = document.find(".//code").text
    assert shown is not None and "\ufffd" in shown
    assert not re.search("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufdd0-\ufdef\ufffe\uffff]", shown)


def test_stored_characters_html_forbids_are_shown_as_replacement_characters(
    empty_database_url: str, tmp_path: Any
) -> None:
    """XML carries DEL, the C1 controls and the noncharacters of the astral planes (a
    record may hold them, and GetRecord serves them unchanged); a record page shows each
    as U+FFFD, in its title, its text and its tags alike, so the page is one HTML parses."""
    title = "Part\x7f one\x85 two\x9b three\U0010ffff"
    client = _one_record_titled(title, empty_database_url, tmp_path)
    shown = "Part\ufffd one\ufffd two\ufffd three\ufffd"
    record = page(client, "/records/1/1")
    assert record.find(".//h1").text_content() == shown
    assert record.xpath("string(//meta[@name='citation_title']/@content)") == shown
    getrecord = client.get(
        "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:1/1"
    )
    assert etree.fromstring(getrecord.data).findtext(".//dc:title", namespaces=NS) == title


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.text(min_size=1, max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
        st.binary(min_size=1, max_size=20),
    )
)
def test_any_id_or_spec_asked_for_is_answered_by_a_page_html_parses(
    reading_client: FlaskClient, asked: bytes
) -> None:
    """Whatever bytes an address asks for as a record's id or a set's spec (not UTF-8,
    NUL, controls, markup): a page (404 mostly), never a 500, that HTML parses without an
    error; or the redirect of a doubled slash, or the router's own 404."""
    for path in ("/records/" + quote_from_bytes(asked, safe="/"),
                 "/sets/" + quote_from_bytes(asked, safe="")):  # fmt: skip
        response = reading_client.get(path)
        if response.status_code == 308:
            continue
        assert response.status_code in (200, 404, 410), (path, response.status_code)
        if response.mimetype == "text/html":  # else the router's plain 404 (a newline)
            html5lib.HTMLParser(strict=True).parse(response.get_data(as_text=True))
