"""ResourceSync (issue 26): the Source Description, Capability List, resource and change
lists are valid sitemaps the reference client (`resync`) reads; every live record's
document in each format is listed with the md5 and length of exactly the bytes its URL
serves, which are GetRecord's; lists page by keyset ranges; change lists stop at the list
cut-off, so a poll during a load loses nothing; `resync-sync` keeps a copy equal to the
store through a load that adds, changes and deletes records."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask.testing import FlaskClient
from lxml import etree
from resync.capability_list import CapabilityList
from resync.change_list import ChangeList
from resync.resource_list import ResourceList
from resync.source_description import SourceDescription
from sqlalchemy import select

import oaipmh_server.resourcesync
from oaipmh_server import datestamps
from oaipmh_server.check.resourcesync import (
    check_resourcesync,
    head_problems,
    resourcesync_schema,
)
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import records_table
from oaipmh_server.web import resourcesync as web_resourcesync

from .conftest import SECRET, LiveServer, load_into, make_app
from .db import datestamps as stored_datestamps
from .db import fetch
from .oai import NS
from .test_changes import START, Clock, HeldLoad, records, write_jsonl
from .test_check import fetch_from
from .test_pages import DELETED
from .xsd import validate_resourcesync, validate_sitemap

SM = {
    "sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
    "rs": "http://www.openarchives.org/rs/terms/",
}
FORMATS = ("oai_dc", "dim", "oai_openaire", "qdc")
FILES_URL = "https://dspace.example.org/bitstream/{handle}/{name}"
WAIT = 60


def get_xml(client: FlaskClient, url: str) -> etree._Element:
    """A ResourceSync document by its absolute URL, checked against the sitemap schema,
    and its own rs:md and rs:ln by ResourceSync's rules."""
    parts = urlsplit(url)
    response = client.get(parts.path, query_string=parts.query)
    assert response.status_code == 200, (url, response.data[:300])
    assert response.mimetype == "application/xml"
    root = validate_sitemap(response.data)
    assert head_problems(root) == [], response.data[:2000]
    return root


def parsed(client: FlaskClient, url: str, container: Any) -> Any:
    """The document (a list, or an index of lists) read by the reference client's parser,
    which checks its capability."""
    parts = urlsplit(url)
    data = client.get(parts.path, query_string=parts.query).data
    index = etree.QName(etree.fromstring(data)).localname == "sitemapindex"
    # An index's entries are lists, not changes: read into a plain list of resources (the
    # client's ChangeList refuses them: resync 2.0.1 reads no change list index).
    into = ResourceList() if index else container
    into.new_sitemap().parse_xml(fh=BytesIO(data), resources=into,
        capability=container.capability_name, sitemapindex=index)  # fmt: skip
    return into


def locs(root: etree._Element) -> list[str]:
    return [e.text or "" for e in root.iterfind("sm:*/sm:loc", SM)]


def list_entries(client: FlaskClient, index_url: str) -> list[etree._Element]:
    """Every <url> of every list an index names (or of the list itself)."""
    root = get_xml(client, index_url)
    if etree.QName(root).localname == "urlset":
        return root.findall("sm:url", SM)
    return [url for loc in locs(root) for url in get_xml(client, loc).findall("sm:url", SM)]


def all_headers(client: FlaskClient) -> dict[str, tuple[str, bool]]:
    """local id → (datestamp, deleted) of every record, by ListIdentifiers and its tokens."""
    found = {}
    query = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
    while True:
        root = etree.fromstring(client.get("/oai", query_string=query).data)
        for header in root.iterfind(".//oai:header", NS):
            local_id = header.findtext("oai:identifier", namespaces=NS).split(":", 2)[2]
            stamp = header.findtext("oai:datestamp", namespaces=NS)
            found[local_id] = (stamp, header.get("status") == "deleted")
        token = root.findtext(".//oai:resumptionToken", namespaces=NS)
        if not token:
            return found
        query = {"verb": "ListIdentifiers", "resumptionToken": token}


def metadata_of(getrecord: bytes) -> bytes:
    """The bytes inside a GetRecord's <metadata>."""
    found = re.search(rb"<metadata>(.*)</metadata>", getrecord, re.DOTALL)
    assert found is not None, getrecord[:500]
    return found.group(1)


# -- the documents -----------------------------------------------------------------------


def test_the_source_description_leads_to_a_capability_list_of_both_lists(
    reading_client: FlaskClient,
) -> None:
    root = get_xml(reading_client, "http://localhost/.well-known/resourcesync")
    assert root.find("rs:md", SM).get("capability") == "description"
    description = parsed(reading_client, "http://localhost/.well-known/resourcesync",
                         SourceDescription())  # fmt: skip
    (capabilities_url,) = description.uris()
    assert capabilities_url == "http://localhost/resources/capabilitylist.xml"
    get_xml(reading_client, capabilities_url)
    capabilities = parsed(reading_client, capabilities_url, CapabilityList())
    assert capabilities.has_capability("resourcelist")
    assert capabilities.has_capability("changelist")
    assert capabilities.capability_info("resourcelist").uri.endswith("/resources/resourcelist.xml")
    assert capabilities.capability_info("changelist").uri.endswith("/resources/changelist.xml")
    assert capabilities.link("up")["href"] == "http://localhost/.well-known/resourcesync"


def test_an_empty_repository_lists_no_resources_and_no_changes(empty_database_url: str) -> None:
    """Before the first load: an index of no resource lists and a change list of no
    changes, which the reference client reads as empty, not an error. Each is valid as
    ResourceSync reads sitemaps.org's schema (zero or more entries, section 7), with the
    time and the link up ResourceSync wants; sitemaps.org's own schema, which wants one
    entry or more, refuses them, and does not apply."""
    client = make_app(empty_database_url, files_url=FILES_URL).test_client()
    for url, container in (
        ("http://localhost/resources/resourcelist.xml", ResourceList()),
        ("http://localhost/resources/changelist.xml", ChangeList()),
    ):
        response = client.get(urlsplit(url).path)
        assert response.status_code == 200, (url, response.data[:300])
        root = validate_resourcesync(response.data)
        assert not root.findall("sm:*", SM)
        with pytest.raises(AssertionError, match="sitemap-invalid"):
            validate_sitemap(response.data)
        assert len(parsed(client, url, container)) == 0


def test_check_passes_an_empty_repositorys_resourcesync(empty_database_url: str) -> None:
    """`check URL` reads an empty list as ResourceSync does: valid, not a failure until
    the first load (it used sitemaps.org's schema, which wants an entry)."""
    results = checked(make_app(empty_database_url))
    assert all(status.startswith("pass") for status in results.values()), results


def test_a_range_or_time_with_nothing_in_it_is_a_valid_list_of_nothing(
    reading_client: FlaskClient,
) -> None:
    """A resource list of a range whose records are all deleted (since its index was
    read, or since before: the ranges count tombstones, to stay on the primary key), and
    a change list of a time with no changes: each a valid ResourceSync list with no <url>."""
    ids = sorted(all_headers(reading_client))
    after = ids[ids.index(DELETED) + 1]
    at = datestamps.format_datestamp(datestamps.now())
    before = "1990-01-01T00:00:00Z"
    for path, query, capability in (
        ("/resources/resourcelist/oai_dc.xml", {"start": DELETED, "end": after, "at": at},
         "resourcelist"),
        ("/resources/changelist/page.xml", {"from": before, "from_id": "", "until": before},
         "changelist"),
    ):  # fmt: skip
        response = reading_client.get(path, query_string=query)
        assert response.status_code == 200, response.data[:300]
        root = validate_resourcesync(response.data)
        assert root.find("rs:md", SM).get("capability") == capability
        assert not root.findall("sm:url", SM)


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        pytest.param(b"<urlset xmlns='%s'/>", True, id="urlset-of-no-url"),
        pytest.param(b"<sitemapindex xmlns='%s'/>", True, id="sitemapindex-of-no-sitemap"),
        pytest.param(b"<urlset xmlns='%s'><url/></urlset>", False, id="url-without-loc"),
        pytest.param(b"<urlset xmlns='%s'><url><loc>x</loc><lastmod>soon</lastmod></url>"
                     b"</urlset>", False, id="lastmod-not-a-date"),
        pytest.param(b"<sitemapindex xmlns='%s'><url><loc>x</loc></url></sitemapindex>", False,
                     id="url-in-an-index"),
        pytest.param(b"<urlset xmlns='%s'><loc>x</loc></urlset>", False, id="loc-outside-url"),
    ],
)  # fmt: skip
def test_resourcesyncs_reading_of_the_sitemap_schema_changes_only_how_many_entries(
    document: bytes, valid: bool
) -> None:
    """ResourceSync 1.1, section 7: a <urlset> has zero or more <url>, a <sitemapindex>
    zero or more <sitemap>. Everything else sitemaps.org's schema says still holds."""
    root = etree.fromstring(document % SM["sm"].encode())
    assert resourcesync_schema(etree.QName(root).localname).validate(root) is valid


def test_a_repository_without_files_lists_no_file_resources(
    empty_database_url: str, tmp_path: Path
) -> None:
    """[files] url set, and no record holds a file: the index lists the formats' lists
    alone."""
    load_into(empty_database_url, write_jsonl(tmp_path / "r.jsonl", records(3)))
    client = make_app(empty_database_url, files_url=FILES_URL).test_client()
    lists = locs(get_xml(client, "http://localhost/resources/resourcelist.xml"))
    assert lists and not [url for url in lists if "/resourcelist/files.xml" in url]


def test_the_home_page_links_the_source_description(reading_client: FlaskClient) -> None:
    page = reading_client.get("/").data.decode()
    assert '<link rel="resourcesync" href="/.well-known/resourcesync">' in page


def test_every_live_record_is_listed_in_every_format_with_the_md5_and_length_served(
    reading_client: FlaskClient,
) -> None:
    """Each URL answers exactly GetRecord's <metadata> child, and the list gives its md5,
    length and datestamp; no deleted record is listed."""
    headers = all_headers(reading_client)
    stamps = {local_id: stamp for local_id, (stamp, _) in headers.items()}
    deleted = {local_id for local_id, (_, gone) in headers.items() if gone}
    assert deleted and len(stamps) > len(deleted)
    entries = list_entries(reading_client, "http://localhost/resources/resourcelist.xml")
    listed = {}
    for url in entries:
        loc = url.findtext("sm:loc", namespaces=SM)
        md = url.find("rs:md", SM)
        listed[loc] = (url.findtext("sm:lastmod", namespaces=SM), md.get("hash"), md.get("length"))
    assert len(listed) == len(entries)  # no URL twice
    expected = set()
    for local_id in set(stamps) - deleted:
        for prefix in FORMATS:
            getrecord = reading_client.get("/oai", query_string={
                "verb": "GetRecord", "metadataPrefix": prefix,
                "identifier": f"oai:repository.example.org:{local_id}"}).data  # fmt: skip
            if b"cannotDisseminateFormat" in getrecord:
                continue
            url = f"http://localhost/resources/{prefix}/{local_id}.xml"
            expected.add(url)
            served = reading_client.get(url.removeprefix("http://localhost"))
            assert served.status_code == 200
            assert served.data == metadata_of(getrecord)
            md5 = hashlib.md5(served.data).hexdigest()
            assert listed[url] == (stamps[local_id], f"md5:{md5}", str(len(served.data)))
    assert set(listed) == expected
    for local_id in deleted:
        assert reading_client.get(f"/resources/oai_dc/{local_id}.xml").status_code == 404


def test_the_reference_client_reads_the_resource_list_index(
    reading_client: FlaskClient,
) -> None:
    index = parsed(reading_client, "http://localhost/resources/resourcelist.xml", ResourceList())
    assert index.md["capability"] == "resourcelist" and "md_at" in index.md
    for url in index.uris():
        page = parsed(reading_client, url, ResourceList())
        assert page.md["md_at"] == index.md["md_at"]
        assert all(r.md5 and r.length and r.lastmod for r in page)


def test_the_change_list_lists_each_records_latest_change_up_to_the_cut_off(
    reading_client: FlaskClient,
) -> None:
    changes = parsed(reading_client, "http://localhost/resources/changelist.xml", ChangeList())
    validate_sitemap(reading_client.get("/resources/changelist.xml").data)
    want = {}
    for local_id, (stamp, gone) in all_headers(reading_client).items():
        change = "deleted" if gone else "updated"
        for prefix in FORMATS:
            want[f"http://localhost/resources/{prefix}/{local_id}.xml"] = (change, stamp)
    got = {r.uri: (r.change, datestamps.format_datestamp(
        datestamps.parse_datestamp(r.datetime)[0])) for r in changes}  # fmt: skip
    assert got == want
    assert len(changes) == len(want)
    until = changes.md["md_until"]
    assert all(stamp <= until for _, stamp in got.values())


def test_big_lists_are_indexes_of_keyset_ranges(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """With 7 URLs a sitemap: the resource list index names ranges of at most 7 records
    a format (5 for the formats rendered on request); the change list becomes an index of lists of at most 7 URLs (one record's
    formats each), with from/until; together they list what one list would."""
    client = app.test_client()
    whole = {u.findtext("sm:loc", namespaces=SM) for u in
             list_entries(client, "http://localhost/resources/changelist.xml")}  # fmt: skip
    resources = {u.findtext("sm:loc", namespaces=SM) for u in
                 list_entries(client, "http://localhost/resources/resourcelist.xml")}  # fmt: skip
    monkeypatch.setattr(web_resourcesync, "MAX_URLS", 7)
    monkeypatch.setattr(web_resourcesync, "RENDERED", 5)
    index = get_xml(client, "http://localhost/resources/resourcelist.xml")
    assert len(locs(index)) > len(FORMATS)
    paged = []
    for loc in locs(index):
        page = get_xml(client, loc).findall("sm:url", SM)
        # oai_dc's documents are stored; the others are rendered on request: smaller lists
        assert len(page) <= (7 if "/oai_dc.xml?" in loc else 5)
        paged += [u.findtext("sm:loc", namespaces=SM) for u in page]
    assert sorted(paged) == sorted(resources)
    index = get_xml(client, "http://localhost/resources/changelist.xml")
    assert etree.QName(index).localname == "sitemapindex"
    assert index.find("rs:md", SM).get("capability") == "changelist"
    changes = []
    for sitemap in index.findall("sm:sitemap", SM):
        md = sitemap.find("rs:md", SM)
        assert md.get("from") <= md.get("until")
        page = get_xml(client, sitemap.findtext("sm:loc", namespaces=SM))
        assert page.find("rs:md", SM).get("from") == md.get("from")
        urls = page.findall("sm:url", SM)
        assert len(urls) <= 7
        for url in urls:
            assert md.get("from") <= url.find("rs:md", SM).get("datetime") <= md.get("until")
        changes += [u.findtext("sm:loc", namespaces=SM) for u in urls]
    assert sorted(changes) == sorted(whole)
    index = parsed(client, "http://localhost/resources/changelist.xml", ChangeList())
    assert index.md["capability"] == "changelist"
    assert len(index.uris()) > 1


def test_lists_streamed_in_many_chunks_are_whole(app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A list is written a chunk at a time after the view has returned (every 500 URLs;
    here every 2, and read from the store 3 records at a time): its chunks are read in
    the request's context and together make the same list."""
    client = app.test_client()
    whole = [
        etree.tostring(u)
        for u in list_entries(client, "http://localhost/resources/resourcelist.xml")
    ]
    changes = [
        etree.tostring(u) for u in list_entries(client, "http://localhost/resources/changelist.xml")
    ]
    monkeypatch.setattr(oaipmh_server.resourcesync, "CHUNK", 2)
    monkeypatch.setattr(web_resourcesync, "READ", 3)
    assert [
        etree.tostring(u)
        for u in list_entries(client, "http://localhost/resources/resourcelist.xml")
    ] == whole
    assert [
        etree.tostring(u) for u in list_entries(client, "http://localhost/resources/changelist.xml")
    ] == changes


@pytest.mark.parametrize("path", [
    "/resources/resourcelist/oai_dc.xml?start=10722/1",  # no cut-off
    "/resources/resourcelist/oai_dc.xml?start=10722/1&at=yesterday",
    "/resources/resourcelist/oai_dc.xml?start=&at=2026-01-01T00:00:00Z",
    "/resources/resourcelist/nope.xml?start=a&at=2026-01-01T00:00:00Z",
    "/resources/resourcelist/files.xml?start=a&at=2026-01-01T00:00:00Z",  # no [files] url
    "/resources/changelist/page.xml?from=2026-01-01&from_id=a&until=2026-01-01T00:00:00Z",
    "/resources/changelist/page.xml?from=2026-01-01T00:00:00Z&from_id=a",
    "/resources/changelist/page.xml?from=2026-01-01T00:00:00Z&from_id=a&to=x&until=2026-01-01T00:00:00Z",
    "/resources/nope/10722/212116.xml",
    "/resources/oai_dc/10722/212116",
    "/resources/oai_dc/10722/999999.xml",
])  # fmt: skip
def test_what_is_not_a_document_of_this_repository_is_404(
    reading_client: FlaskClient, path: str
) -> None:
    assert reading_client.get(path).status_code == 404


@pytest.mark.store_behaviour
@pytest.mark.parametrize("query", [
    "start=99999999999999999999:10722/1",
    "start=1:10722/1&end=2147483648:10722/1",
])  # fmt: skip
def test_a_file_range_with_a_sequence_no_file_can_have_is_404(
    database_url: str, query: str
) -> None:
    """A file key's sequence past what the store's column holds is no key an index
    writes: 404, as other such ranges, not a 500 (SQLite: an int too large for it) or a
    503 logged as the database failing (PostgreSQL: integer out of range)."""
    client = make_app(
        database_url, files_url="https://dspace.example.org/bitstream/{handle}/{name}"
    ).test_client()
    at = "&at=2026-01-01T00:00:00Z"
    assert client.get(f"/resources/resourcelist/files.xml?{query}{at}").status_code == 404
    assert client.get(f"/resources/resourcelist/files.xml?start=1:10722/1{at}").status_code == 200


def test_open_files_are_listed_with_their_md5_length_and_type(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Where [files] url is set, a resource list of the open ORIGINAL files, each at its
    link, with what the record holds of it; restricted files and others are left out."""
    record = {
        "id": "10722/1",
        "metadata": [{"field": "dc.title", "value": "T"},
                     {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}],
        "files": [
            {"name": "a.pdf", "size": 10, "md5": "0123456789abcdef0123456789abcdef"},
            {"name": "b.txt", "size": 3, "md5": "1" * 32, "access": "restricted"},
            {"name": "c.txt", "size": 4, "md5": "2" * 32, "bundle": "TEXT"},
        ],
    }  # fmt: skip
    load_into(empty_database_url, write_jsonl(tmp_path / "r.jsonl", [record]))
    client = make_app(
        empty_database_url, files_url="https://dspace.example.org/bitstream/{handle}/{name}"
    ).test_client()
    index = get_xml(client, "http://localhost/resources/resourcelist.xml")
    (files,) = [loc for loc in locs(index) if "/resourcelist/files.xml" in loc]
    (url,) = get_xml(client, files).findall("sm:url", SM)
    assert url.findtext("sm:loc", namespaces=SM) == (
        "https://dspace.example.org/bitstream/10722/1/a.pdf"
    )
    assert dict(url.find("rs:md", SM).attrib) == {
        "hash": "md5:0123456789abcdef0123456789abcdef", "length": "10",
        "type": "application/pdf"}  # fmt: skip
    assert parsed(client, files, ResourceList()).uris() == [
        "https://dspace.example.org/bitstream/10722/1/a.pdf"
    ]


# -- polls during loads, and the reference client (on SQLite and PostgreSQL) -------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock(START)
    monkeypatch.setattr(datestamps, "now", moving)
    return moving


def change_poll(client: FlaskClient, since: str | None) -> tuple[str, dict[str, tuple[str, str]]]:
    """One poll of the change list (and its lists, when it is an index): its `until`, and
    url → (change, datetime) of the changes at or after `since` (the previous poll's
    `until`), as a client keeps them."""
    root = get_xml(client, "http://localhost/resources/changelist.xml")
    until = root.find("rs:md", SM).get("until")
    listed = {}
    for url in list_entries(client, "http://localhost/resources/changelist.xml"):
        md = url.find("rs:md", SM)
        if since is None or md.get("datetime") >= since:
            listed[url.findtext("sm:loc", namespaces=SM) or ""] = (
                md.get("change"),
                md.get("datetime"),
            )
    return until, listed


@pytest.mark.store_behaviour
def test_a_change_list_poll_during_a_load_loses_no_change(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """Polls while an update of every record (and a deletion) is written but not
    committed list nothing of it and advertise an `until` before the load's datestamp;
    the first poll after the commit, from the last `until`, lists every change with the
    record's final datestamp."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", records(50)),
              clock=lambda: START - timedelta(days=30))  # fmt: skip
    client = make_app(empty_database_url).test_client()
    since, listed = change_poll(client, None)
    assert len(listed) == 50 * len(FORMATS)
    changed = [*records(49, note="Corrected."), {"id": "10722/49", "deleted": True}]
    clock.tick()
    load = HeldLoad(empty_database_url, write_jsonl(tmp_path / "u.jsonl", changed), clock)
    dated = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        (writer,) = dated.writers()
    finally:
        dated.close()
    stamp = datestamps.format_datestamp(writer.since)
    seen: dict[str, tuple[str, str]] = {}
    for _ in range(4):
        clock.tick()
        since, listed = change_poll(client, since)
        seen.update(listed)
        assert since < stamp
    assert seen == {}
    load.commit()
    clock.tick()
    _, listed = change_poll(client, since)
    want = {}
    for local_id, final in stored_datestamps(empty_database_url).items():
        change = "deleted" if local_id == "10722/49" else "updated"
        for prefix in FORMATS:
            want[f"http://localhost/resources/{prefix}/{local_id}.xml"] = (change, final)
    assert listed == want
    assert {final for _, final in listed.values()} == {stamp}


def resync_sync(*args: str, cwd: Path) -> None:
    """`resync-sync ARGS`, the reference client's command (its state file in `cwd`)."""
    command = [sys.executable, str(Path(sys.executable).parent / "resync-sync"), *args]
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "FatalError" not in done.stderr, done.stderr  # which it reports with status 0


def served_copy(url: str, base: str) -> dict[str, bytes]:
    """What a copy of the store must hold: each live record's document in each format
    it is disseminated in (GetRecord's <metadata> child, from the live server), by path."""
    want = {}
    for local_id, deleted in fetch(url, select(records_table.c.local_id, records_table.c.deleted)):
        if deleted:
            continue
        for prefix in FORMATS:
            getrecord = requests.get(f"{base}/oai", params={
                "verb": "GetRecord", "metadataPrefix": prefix,
                "identifier": f"oai:repository.example.org:{local_id}"}, timeout=WAIT).content  # fmt: skip
            if b"cannotDisseminateFormat" not in getrecord:
                want[f"{prefix}/{local_id}.xml"] = metadata_of(getrecord)
    return want


def copied(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.live
def test_resync_keeps_a_copy_equal_to_the_store(empty_database_url: str, tmp_path: Path) -> None:
    """A baseline copy by `resync-sync --baseline --capabilitylist URL --delete`, then, after
    a load that adds, changes and deletes records, `--incremental`: the copy holds every
    live record's document byte for byte and nothing of a deleted one. On SQLite: what the
    lists hold through a load on each store, cut-offs included, is shown by the
    store_behaviour tests here, in process; this one shows the reference client's sync."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", records(12)),
              clock=lambda: START)  # fmt: skip
    server = LiveServer(empty_database_url, tmp_path, workers=1)
    try:
        base = f"http://127.0.0.1:{server.port}"
        mapping = f"{base}/resources={tmp_path / 'copy'}"
        resync_sync("--baseline", "--capabilitylist", f"{base}/resources/capabilitylist.xml",
                    "--delete", mapping, cwd=tmp_path)  # fmt: skip
        assert copied(tmp_path / "copy") == served_copy(empty_database_url, base)
        later = [
            *records(16, note="Corrected.")[8:],  # 8 to 11 changed, 12 to 15 added
            {"id": "10722/0", "deleted": True},
            {"id": "10722/1", "deleted": True},
        ]
        load_into(empty_database_url, write_jsonl(tmp_path / "later.jsonl", later))
        stamp = max(stored_datestamps(empty_database_url).values())
        # The change list shows the load once its cut-off has passed the load's datestamp
        # (at most a second): each look is a request, as a client's poll would be.
        deadline = time.monotonic() + WAIT
        while True:
            root = etree.fromstring(requests.get(f"{base}/resources/changelist.xml",
                                                 timeout=WAIT).content)  # fmt: skip
            if root.find("rs:md", SM).get("until") >= stamp:
                break
            assert time.monotonic() < deadline, f"the change list never passed {stamp}"
        resync_sync("--incremental", "--delete", mapping, cwd=tmp_path)
        copy = copied(tmp_path / "copy")
        assert copy == served_copy(empty_database_url, base)
        assert "oai_dc/10722/0.xml" not in copy and "oai_dc/10722/15.xml" in copy
        assert b"Corrected." in copy["oai_dc/10722/11.xml"]
    finally:
        server.stop()


# -- check URL -------------------------------------------------------------------------


def checked(
    app: Any, alter: Callable[[str, int, bytes], tuple[int, bytes]] | None = None
) -> dict[str, str]:
    """rule → status of `check_resourcesync` against the app, its answers altered by
    `alter(url, status, body)`."""
    fetch = fetch_from(app)

    def altered(url: str) -> tuple[int, bytes]:
        status, body = fetch(url)
        return alter(url, status, body) if alter else (status, body)

    return {
        r.rule: f"{r.status}: {r.detail}"
        for r in check_resourcesync("http://localhost/oai", altered)
    }


def test_check_passes_this_servers_resourcesync(reading_app: Any) -> None:
    results = checked(reading_app)
    assert set(results) == {"resourcesync-source-description", "resourcesync-capability-list",
                            "resourcesync-resourcelist", "resourcesync-changelist"}  # fmt: skip
    assert all(status.startswith("pass") for status in results.values()), results


def test_check_does_not_fail_an_endpoint_without_resourcesync(reading_app: Any) -> None:
    def gone(url: str, status: int, body: bytes) -> tuple[int, bytes]:
        return (404, b"") if url.endswith("/.well-known/resourcesync") else (status, body)

    assert checked(reading_app, gone) == {
        "resourcesync-source-description":
            "not checked: http://localhost/.well-known/resourcesync: none (HTTP 404)"
    }  # fmt: skip


@pytest.mark.parametrize(("path", "rewrite", "rule", "says"), [
    ("capabilitylist.xml", lambda b: b.replace(b'capability="capabilitylist"', b'capability="x"'),
     "resourcesync-capability-list", "rs:md capability 'x', expected 'capabilitylist'"),
    ("capabilitylist.xml", lambda b: b.replace(b"<loc>", b"<lo>").replace(b"</loc>", b"</lo>"),
     "resourcesync-capability-list", "invalid sitemap"),
    ("capabilitylist.xml", lambda b: b.replace(b'capability="resourcelist"', b'capability="y"'),
     "resourcesync-capability-list", "advertises changelist, y"),
    ("changelist.xml", lambda b: b[:-20], "resourcesync-changelist", "not well-formed XML"),
    ("resourcelist.xml", lambda b: b"", "resourcesync-resourcelist", "not well-formed XML"),
    ("resourcelist.xml", lambda b: re.sub(rb' at="[^"]*"', b"", b, count=1),
     "resourcesync-resourcelist", "a resourcelist's rs:md has no at"),
    ("resourcelist.xml", lambda b: re.sub(rb' at="[^"]*"', b' at="yesterday"', b, count=1),
     "resourcesync-resourcelist", "rs:md at='yesterday' is not a W3C Datetime"),
    ("changelist.xml", lambda b: re.sub(rb'<rs:ln rel="up"[^>]*/>', b"", b),
     "resourcesync-changelist", 'a changelist has no rs:ln rel="up"'),
    ("changelist.xml", lambda b: re.sub(rb' from="[^"]*"', b"", b, count=1),
     "resourcesync-changelist", "a changelist's rs:md has no from"),
])  # fmt: skip
def test_check_fails_a_broken_capability_list_or_list(
    reading_app: Any, path: str, rewrite: Callable[[bytes], bytes], rule: str, says: str
) -> None:
    def broken(url: str, status: int, body: bytes) -> tuple[int, bytes]:
        return (status, rewrite(body)) if url.endswith("/resources/" + path) else (status, body)

    results = checked(reading_app, broken)
    assert results[rule].startswith("fail") and says in results[rule], results


@pytest.mark.store_behaviour
def test_a_resource_list_read_while_loads_commit_shows_its_cut_off_and_the_change_list_the_rest(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """The pages of a resource list index read after a load has committed still show the
    store at the index's `at`: a record the load changed drops out (its old document is
    gone), an added one is not there; the change list from `at` lists both."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", records(6)),
              clock=lambda: START - timedelta(days=30))  # fmt: skip
    client = make_app(empty_database_url).test_client()
    index = get_xml(client, "http://localhost/resources/resourcelist.xml")
    at = index.find("rs:md", SM).get("at")
    clock.tick(5)
    later = [*records(7, note="Corrected.")[5:]]  # 10722/5 changed, 10722/6 added
    load_into(empty_database_url, write_jsonl(tmp_path / "later.jsonl", later), clock=clock)
    clock.tick(5)
    listed = {u.findtext("sm:loc", namespaces=SM) for loc in locs(index)
              for u in get_xml(client, loc).findall("sm:url", SM)}  # fmt: skip
    assert {u.rsplit("/", 1)[1] for u in listed if "/oai_dc/" in u} == {
        f"{n}.xml" for n in range(5)
    }
    _, changes = change_poll(client, at)
    assert {u for u in changes if "/oai_dc/" in u} == {
        "http://localhost/resources/oai_dc/10722/5.xml",
        "http://localhost/resources/oai_dc/10722/6.xml",
    }
