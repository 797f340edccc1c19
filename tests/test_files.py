"""Files (DSpace bitstreams), end to end: read from a SAF item's `contents` as DSpace's
import reads it and from JSON's "files", kept in the store (both backends) and in the
content hash, kept by a metadata CSV, dropped with their record; shown as oai_dc's
dc:format, oai_openaire's oaire:file (valid against openaire.xsd: the test client
validates every response), on the record page, and used by check's CORE rule. A file
anonymous users may not read is never linked nor shown on a page."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient
from lxml import etree, html
from sqlalchemy import create_engine, func, select, update
from sqlalchemy.pool import NullPool

from oaipmh_server.check.store import check_records
from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.files import Linker, access_of, access_status, has_open_file
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import delete_records
from oaipmh_server.ingest.mime import mime_type
from oaipmh_server.record_source import File
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import files_table

from .conftest import SECRET, load_into, make_app, refused_unchanged
from .db import fetch
from .oai import tree

SEED_ITEM = Path(__file__).parent / "fixtures" / "dspace-seed" / "saf" / "item_000"
SEED_CSV = Path(__file__).parent / "fixtures" / "dspace-seed" / "metadata-export.csv"
HANDLE = "10722/212116"
BASE = "https://repo.example.org/oai/request"
# DSpace 6's bitstream links, DSpace served on the host of the OAI endpoint ({base}).
DSPACE_6 = "{base}/bitstream/handle/{handle}/{name}?sequence={sequence}"
OAI_ID = f"oai:repository.example.org:{HANDLE}"
OAIRE = "http://namespace.openaire.eu/schema/oaire/"
DC = "http://purl.org/dc/elements/1.1/"
CHAPTER = b"%PDF-1.4\n%chapter one\n"
RESTRICTED = b"PK\x03\x04 a restricted report"
THUMBNAIL = b"\xff\xd8\xff\xe0 a thumbnail"
LICENSE = b"You grant the repository the right to keep this.\n"
CONTENTS = (
    "chapters/chapter one.pdf\tbundle:ORIGINAL\tpermissions:-r 'Anonymous'"
    "\tdescription:The article \tprimary:true\n"
    "restricted.docx\tbundle:ORIGINAL\tpermissions:-r 'Staff'\tdescription:Referee report\n"
    "\n"
    "chapters/chapter one.pdf.jpg\tbundle:THUMBNAIL\n"
    "license.txt\n"
)


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


EXPECTED = (
    File("chapters/chapter one.pdf", "ORIGINAL", len(CHAPTER), md5(CHAPTER), "application/pdf",
         1, "The article", True, "open", "-r 'Anonymous'"),
    File("restricted.docx", "ORIGINAL", len(RESTRICTED), md5(RESTRICTED),
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         2, "Referee report", False, "restricted", "-r 'Staff'"),
    File("chapters/chapter one.pdf.jpg", "THUMBNAIL", len(THUMBNAIL), md5(THUMBNAIL),
         "image/jpeg", 3),
    File("license.txt", "LICENSE", len(LICENSE), md5(LICENSE), "text/plain", 4),
)  # fmt: skip
CHAPTER_URL = (
    f"https://repo.example.org/bitstream/handle/{HANDLE}/chapters/chapter%20one.pdf?sequence=1"
)


def item_with_files(export: Path) -> Path:
    """The seed item as DSpace exports it with four bitstreams: an open PDF in a
    sub-folder (primary), a restricted Word file, a thumbnail and the licence; and a file
    the contents do not list (DSpace ignores it)."""
    folder = export / "item_000"
    shutil.copytree(SEED_ITEM, folder)
    (folder / "chapters").mkdir()
    (folder / "chapters" / "chapter one.pdf").write_bytes(CHAPTER)
    (folder / "chapters" / "chapter one.pdf.jpg").write_bytes(THUMBNAIL)
    (folder / "restricted.docx").write_bytes(RESTRICTED)
    (folder / "license.txt").write_bytes(LICENSE)
    (folder / "unlisted.pdf").write_bytes(b"%PDF not listed")
    (folder / "contents").write_text(CONTENTS, "utf-8")
    return folder


def files_in(url: str, local_id: str = HANDLE) -> tuple[File, ...]:
    store = SqlStore(url, token_secret=SECRET)
    try:
        return store.get_files(local_id)
    finally:
        store.close()


def refused(url: str, *paths: Path, **overrides: Any) -> list[str]:
    """The problems of a load that must fail, leaving the store (made if new) as it was."""
    SqlStore(url, token_secret=SECRET).close()
    return refused_unchanged(url, *paths, **overrides)


# -- ingest and store ---------------------------------------------------------------------------


def test_a_saf_items_bitstreams_are_kept_with_it(empty_database_url: str, tmp_path: Path) -> None:
    item_with_files(tmp_path / "export")
    summary = load_into(empty_database_url, tmp_path / "export")
    assert (summary.added, summary.rejected) == (1, 0)
    assert files_in(empty_database_url) == EXPECTED


def test_reloading_is_no_change_unless_a_bitstream_changed(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export")
    assert load_into(empty_database_url, tmp_path / "export").unchanged == 1
    (folder / "chapters" / "chapter one.pdf").write_bytes(CHAPTER + b"corrected\n")
    assert load_into(empty_database_url, tmp_path / "export").updated == 1
    assert files_in(empty_database_url)[0].size == len(CHAPTER) + 10
    contents = CONTENTS.replace("-r 'Staff'", "-r 'Anonymous'")
    (folder / "contents").write_text(contents, "utf-8")
    assert load_into(empty_database_url, tmp_path / "export").updated == 1
    assert files_in(empty_database_url)[1].access == "open"


def test_a_record_without_files_keeps_its_content_hash(tmp_path: Path) -> None:
    """Stores loaded before files were kept hold hashes of the fields alone: a record
    without files must hash as it did, or every reload would date every record anew."""
    from oaipmh_server.ingest.drafts import fields_digest
    from oaipmh_server.record_source import Field

    fields = [Field("dc.title", "A"), Field("dc.date.accessioned", "2015-07-21T02:23:32Z")]
    ordered = sorted(fields, key=lambda f: f.name)
    # As those stores hashed them: [name, value, lang] (before authorities were kept).
    old = hashlib.sha256(orjson.dumps([f[:3] for f in ordered])).hexdigest()
    assert fields_digest(fields, ()) == old
    assert fields_digest(fields, EXPECTED) != old


def test_a_missing_bitstream_is_an_error_naming_the_contents_line_and_the_item(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = item_with_files(tmp_path / "export")
    (folder / "restricted.docx").unlink()
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}/contents:2: record {HANDLE}: bitstream 'restricted.docx': no such file "
        "in the item folder"
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("../item_001/x.pdf\tbundle:ORIGINAL", "bitstream '../item_001/x.pdf': a '..' segment: "
         "not a name inside the item folder"),
        ("/etc/passwd", "bitstream '/etc/passwd': an absolute path: not a name inside the item "
         "folder"),
        ("C:\\x.pdf", "bitstream 'C:\\\\x.pdf': a Windows drive (C:\\) at its start: not a name "
         "inside the item folder"),
        ("c:/x.pdf", "bitstream 'c:/x.pdf': a Windows drive (c:/) at its start: not a name "
         "inside the item folder"),
        ("\\server\\x.pdf", "bitstream '\\\\server\\\\x.pdf': an absolute path: not a name "
         "inside the item folder"),
        ("chapters//x.pdf", "bitstream 'chapters//x.pdf': an empty segment: not a name inside "
         "the item folder"),
        ("./x.pdf", "bitstream './x.pdf': a '.' segment: not a name inside the item folder"),
        ("chapters/\tbundle:ORIGINAL", "bitstream 'chapters/': an empty segment: not a name "
         "inside the item folder"),
        ("\tbundle:ORIGINAL", "bitstream '': an empty name: not a name inside the item folder"),
        ("chapters\tbundle:ORIGINAL", "bitstream 'chapters': not a file"),
        ("-r -s 0 -f some/where.pdf\tbundle:ORIGINAL", "a registered bitstream (-r -s N -f "
         "PATH): its file is in DSpace's assetstore, not in the export, so it cannot be read"),
    ],
)  # fmt: skip
def test_a_contents_line_naming_no_file_of_the_item_is_refused(
    empty_database_url: str, tmp_path: Path, line: str, reason: str
) -> None:
    folder = item_with_files(tmp_path / "export")
    (folder / "contents").write_text(CONTENTS + line + "\n", "utf-8")
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}/contents:6: record {HANDLE}: {reason}"
    ]


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ("bundle:ORIG\x01INAL", "bundle 'ORIG\\x01INAL' has characters XML cannot carry"),
        ("bundle:\ufffe", "bundle '\\ufffe' has characters XML cannot carry"),
        ("permissions:-r 'Staff\x1b[31m'",
         "permissions \"-r 'Staff\\x1b[31m'\" has characters XML cannot carry"),
        ("bundle:ORIGINAL\tpermissions:-r '\x0bAnonymous'",
         "permissions \"-r '\\x0bAnonymous'\" has characters XML cannot carry"),
    ],
    ids=["bundle-control", "bundle-noncharacter", "permissions-escape", "permissions-vertical-tab"],
)  # fmt: skip
def test_a_bundle_or_permissions_xml_cannot_carry_is_refused_as_in_json(
    empty_database_url: str, tmp_path: Path, options: str, reason: str
) -> None:
    """A bundle's name and a file's permissions are names and codes, not text: with a
    character XML cannot carry (a control character, a terminal escape, U+FFFE) they are
    refused, as JSON's "bundle" and "permissions" are, never stored to break a page."""
    folder = item_with_files(tmp_path / "export")
    (folder / "contents").write_text(CONTENTS + f"unlisted.pdf\t{options}\n", "utf-8")
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}/contents:6: record {HANDLE}: bitstream 'unlisted.pdf': {reason}"
    ]


# Names a real thesis had, as DSpace writes and imports them: a colon is a character of a
# name (only `C:\\` or `C:/` at the start is a drive), and so is everything else DSpace allows.
ORDINARY_NAMES = (
    "Figure 1: map.pdf",
    "chapters/Table 2: results.csv",
    "C:x notes.txt",
    "Movement I\u2013II (final) #2 [a] {b} 50% & 'more'; ok?.pdf",
    "10:30 interview.mp3",
)


def test_bitstream_names_with_any_character_dspace_allows_load(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = item_with_files(tmp_path / "export")
    (folder / "chapters").mkdir(exist_ok=True)
    for number, name in enumerate(ORDINARY_NAMES):
        (folder / name).write_bytes(b"file %d" % number)
    listed = "".join(
        f"{name}\tbundle:ORIGINAL\tpermissions:-r 'Anonymous'\n" for name in ORDINARY_NAMES
    )
    (folder / "contents").write_text(CONTENTS + listed, "utf-8")
    summary = load_into(empty_database_url, tmp_path / "export")
    assert (summary.added, summary.rejected) == (1, 0)
    stored = files_in(empty_database_url)[len(EXPECTED) :]
    assert [(f.name, f.size, f.md5) for f in stored] == [
        (name, 6, md5(b"file %d" % number)) for number, name in enumerate(ORDINARY_NAMES)
    ]


def test_a_contents_line_ends_only_where_dspace_ends_it(
    empty_database_url: str, tmp_path: Path
) -> None:
    """DSpace reads `contents` with Java's readLine, which ends a line at LF, CR or CRLF
    only: a name holding U+2028, U+2029 or U+0085 (Python's splitlines ends lines there
    too) is one bitstream, and the lines after it keep their numbers."""
    folder = item_with_files(tmp_path / "export")
    names = ["a\u2028b.pdf", "c\u2029d.pdf", "e\x85f.pdf"]
    for name in names:
        (folder / name).write_bytes(b"x")
    (folder / "contents").write_text(CONTENTS + "".join(f"{n}\r\n" for n in names), "utf-8")
    load_into(empty_database_url, tmp_path / "export")
    assert [f.name for f in files_in(empty_database_url)[len(EXPECTED) :]] == names
    (folder / "contents").write_text(CONTENTS + "".join(f"{n}\n" for n in names) + "gone.pdf\n")
    first = len(CONTENTS.splitlines()) + len(names) + 1
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}/contents:{first}: record {HANDLE}: bitstream 'gone.pdf': no such file in "
        "the item folder"
    ]


def test_a_bitstream_linked_outside_the_item_is_not_read(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = item_with_files(tmp_path / "export")
    secret = tmp_path / "secret.pdf"
    secret.write_bytes(b"private")
    (folder / "restricted.docx").unlink()
    (folder / "restricted.docx").symlink_to(secret)
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}/contents:2: record {HANDLE}: bitstream 'restricted.docx': a symbolic link "
        "leading outside the item folder: not read"
    ]


def test_files_beside_the_metadata_without_contents_are_refused_as_dspace_does(
    empty_database_url: str, tmp_path: Path
) -> None:
    folder = item_with_files(tmp_path / "export")
    (folder / "contents").unlink()
    assert refused(empty_database_url, tmp_path / "export") == [
        f"{folder}: record {HANDLE}: chapters beside the metadata but no contents file listing "
        "the item's bitstreams (DSpace's import refuses such an item too)"
    ]
    # Metadata alone (and macOS debris) needs no contents file.
    for name in ("chapters", "restricted.docx", "license.txt", "unlisted.pdf"):
        path = folder / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    assert load_into(empty_database_url, tmp_path / "export").added == 1
    assert files_in(empty_database_url) == ()


def test_json_records_carry_files(empty_database_url: str, tmp_path: Path) -> None:
    record = {
        "id": "10722/1",
        "metadata": [{"field": "dc.title", "value": "T"},
                     {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}],
        "files": [
            {"name": "a.pdf", "size": 10, "md5": "0123456789ABCDEF0123456789abcdef"},
            {"name": "b.bin", "size": 0, "md5": "0" * 32, "mime": "application/x-thing",
             "bundle": "TEXT", "access": "restricted", "sequence": 7, "description": "B",
             "primary": True, "uuid": "9a3c…"},
            {"name": "c.txt", "size": 3, "md5": "1" * 32, "permissions": "-r 'Staff'"},
        ],
    }  # fmt: skip
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\n", "utf-8")
    load_into(empty_database_url, path)
    assert files_in(empty_database_url, "10722/1") == (
        File("a.pdf", "ORIGINAL", 10, "0123456789abcdef0123456789abcdef", "application/pdf", 1),
        File("c.txt", "ORIGINAL", 3, "1" * 32, "text/plain", 3, None, False, "restricted",
             "-r 'Staff'"),
        File("b.bin", "TEXT", 0, "0" * 32, "application/x-thing", 7, "B", True, "restricted",
             None, "9a3c…"),
    )  # fmt: skip


BAD_FILES = [
    ({"files": {}}, '"files" must be a list of {"name", "size", "md5"} objects'),
    ({"files": ["a.pdf"]}, 'files entry 1 must be an object with "name", "size" and "md5"'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "url": "x"}]},
     'files entry 1: unknown key(s) "url"'),
    ({"files": [{"name": "", "size": 1, "md5": "0" * 32}]},
     'files entry 1: "name" must be a non-empty string, not ""'),
    ({"files": [{"name": "a\x01.pdf", "size": 1, "md5": "0" * 32}]},
     'files entry 1: "name" "a\\u0001.pdf" has characters XML cannot carry'),
    # A name SAF's `contents` refuses: its link ([files] url) would lead out of the item's
    # files, to any path of the repository's host (DSpace's logout, its admin pages).
    ({"files": [{"name": "../../../../server/api/authn/logout", "size": 1, "md5": "0" * 32}]},
     'files entry 1: "name" "../../../../server/api/authn/logout": a \'..\' segment: not a '
     "name inside the item (its link would lead elsewhere)"),
    ({"files": [{"name": "/etc/passwd", "size": 1, "md5": "0" * 32}]},
     'files entry 1: "name" "/etc/passwd": an absolute path: not a name inside the item (its '
     "link would lead elsewhere)"),
    ({"files": [{"name": "a.pdf", "size": -1, "md5": "0" * 32}]},
     'files entry 1 (a.pdf): "size" must be a number of bytes, not -1'),
    ({"files": [{"name": "a.pdf", "size": True, "md5": "0" * 32}]},
     'files entry 1 (a.pdf): "size" must be a number of bytes, not true'),
    # Over what a 64-bit integer column (SQLite's, PostgreSQL's bigint) holds: 8 EiB.
    ({"files": [{"name": "a.pdf", "size": 2**63, "md5": "0" * 32}]},
     'files entry 1 (a.pdf): "size" must be a number of bytes, not 9223372036854775808'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "xyz"}]},
     'files entry 1 (a.pdf): "md5" must be 32 hexadecimal digits, not "xyz"'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "mime": "pdf"}]},
     'files entry 1 (a.pdf): "mime" "pdf" is not a MIME type like application/pdf'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32,
                 "mime": 'application/pdf; rel="cite-as"'}]},
     'files entry 1 (a.pdf): "mime" "application/pdf; rel=\\"cite-as\\"" is not a MIME type '
     "like application/pdf"),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "mime": "application/pdf\r\nX: 1"}]},
     'files entry 1 (a.pdf): "mime" "application/pdf\\r\\nX: 1" is not a MIME type like '
     "application/pdf"),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "mime": "text/plain; a=b; c"}]},
     'files entry 1 (a.pdf): "mime" "text/plain; a=b; c" is not a MIME type like '
     "application/pdf"),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "mime": "text/pl ain"}]},
     'files entry 1 (a.pdf): "mime" "text/pl ain" is not a MIME type like application/pdf'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "access": "embargoed"}]},
     'files entry 1 (a.pdf): "access" must be "open" or "restricted", not "embargoed"'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "sequence": 0}]},
     'files entry 1 (a.pdf): "sequence" must be a positive integer, not 0'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32},
                {"name": "b.pdf", "size": 1, "md5": "0" * 32, "sequence": 1}]},
     "files entry 2: sequence 1 is given twice"),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "primary": "yes"}]},
     'files entry 1 (a.pdf): "primary" must be true or false, not "yes"'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "bundle": 3}]},
     'files entry 1 (a.pdf): "bundle" must be a non-empty string, not 3'),
    # A lone surrogate (JSON's "\\ud800"), which no XML, hash or database can take.
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "bundle": "B\ud800"}]},
     'files entry 1 (a.pdf): "bundle" "B\\ud800" has characters XML cannot carry'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "uuid": "\x01"}]},
     'files entry 1 (a.pdf): "uuid" "\\u0001" has characters XML cannot carry'),
    ({"files": [{"name": "a.pdf", "size": 1, "md5": "0" * 32, "permissions": "-r '\udfff'"}]},
     "files entry 1 (a.pdf): \"permissions\" \"-r '\\udfff'\" has characters XML cannot carry"),
]  # fmt: skip


@pytest.mark.parametrize(("extra", "reason"), BAD_FILES)
def test_json_files_errors_name_file_line_record_and_entry(
    empty_database_url: str, tmp_path: Path, extra: dict[str, Any], reason: str
) -> None:
    good = {"id": "10722/1", "metadata": [
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}  # fmt: skip
    path = tmp_path / "records.jsonl"
    lines = [json.dumps(good), json.dumps({**good, "id": "10722/2", **extra})]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    assert refused(empty_database_url, path) == [f"{path}:2: record 10722/2: {reason}"]


def test_a_metadata_csv_keeps_the_records_files(empty_database_url: str, tmp_path: Path) -> None:
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export")
    csv = tmp_path / "default.csv"
    rows = SEED_CSV.read_text("utf-8").splitlines()
    csv.write_text("\n".join(rows[:2]).replace("Cell Transplantation", "Cell Transpl.") + "\n")
    summary = load_into(empty_database_url, csv)
    assert summary.updated == 1
    assert files_in(empty_database_url) == EXPECTED


def test_a_deleted_record_loses_its_files(empty_database_url: str, tmp_path: Path) -> None:
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export")
    settings = load_settings({"database_url": empty_database_url}, environ={})
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        delete_records([HANDLE], store, settings, build_formats(settings))
        assert store.get_files(HANDLE) == ()
        with store.engine.begin() as conn:  # and the foreign key cascades
            conn.exec_driver_sql("DELETE FROM records")
    finally:
        store.close()
    assert fetch(empty_database_url, select(func.count()).select_from(files_table)) == [(0,)]


# -- formats ------------------------------------------------------------------------------------


@pytest.fixture
def files_client(empty_database_url: str, tmp_path: Path) -> FlaskClient:
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export", base_url=BASE, files_url=DSPACE_6)
    return make_app(empty_database_url, base_url=BASE, files_url=DSPACE_6).test_client()


def metadata(client: FlaskClient, prefix: str) -> etree._Element:
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix={prefix}&identifier={OAI_ID}"))
    found = root.find(".//{http://www.openarchives.org/OAI/2.0/}metadata")
    assert found is not None
    return found[0]


def test_oai_dc_lists_each_original_files_mime_type_as_dspace_does(
    files_client: FlaskClient,
) -> None:
    """DSpace's oai_dc.xsl: a dc:format per ORIGINAL bitstream (restricted ones too: a
    type says what the item holds, not how to get it), none for THUMBNAIL or LICENSE;
    after the record's own values, no link anywhere."""
    dc = metadata(files_client, "oai_dc")
    formats = [e.text for e in dc.iterfind(f"{{{DC}}}format")]
    assert formats[-2:] == [
        "application/pdf",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ]
    assert "image/jpeg" not in formats and "text/plain" not in formats
    assert dc[-2].tag == f"{{{DC}}}format" and dc[-1].tag == f"{{{DC}}}format"
    assert b"bitstream" not in etree.tostring(dc)


def test_dim_is_unchanged_by_files(files_client: FlaskClient, tmp_path: Path) -> None:
    with_files = etree.tostring(metadata(files_client, "dim"), method="c14n")
    url = f"sqlite:///{tmp_path / 'plain.sqlite3'}"
    shutil.copytree(SEED_ITEM, tmp_path / "plain" / "item_000")
    load_into(url, tmp_path / "plain", base_url=BASE)
    plain = make_app(url, base_url=BASE).test_client()
    assert etree.tostring(metadata(plain, "dim"), method="c14n") == with_files


def test_oai_openaire_links_the_open_file_only(files_client: FlaskClient) -> None:
    resource = metadata(files_client, "oai_openaire")
    files = resource.findall(f"{{{OAIRE}}}file")
    assert [(f.text, dict(f.attrib)) for f in files] == [
        (
            CHAPTER_URL,
            {
                "mimeType": "application/pdf",
                "accessRightsURI": "http://purl.org/coar/access_right/c_abf2",
                "objectType": "fulltext",
            },
        )
    ]
    assert b"restricted.docx" not in etree.tostring(resource)


@pytest.mark.parametrize("explicit", [True, False], ids=["files_url-empty", "default"])
def test_without_a_link_pattern_no_file_is_linked(
    empty_database_url: str, tmp_path: Path, explicit: bool
) -> None:
    """No pattern (the default: where the files are served only the operator knows) makes
    no link anywhere: oai_openaire leaves oaire:file out (its value is the URL), oai_dc
    still gives each ORIGINAL file's MIME type, and the record page names the open file,
    unlinked, with no citation_pdf_url, Signposting `item` or JSON-LD contentUrl."""
    item_with_files(tmp_path / "export")
    pattern = {"files_url": ""} if explicit else {}
    assert load_settings(environ={}).files_url == ""
    load_into(empty_database_url, tmp_path / "export", base_url=BASE, **pattern)
    client = make_app(empty_database_url, base_url=BASE, **pattern).test_client()
    assert metadata(client, "oai_openaire").find(f"{{{OAIRE}}}file") is None
    assert len(metadata(client, "oai_dc").findall(f"{{{DC}}}format")) >= 2
    response = client.get(f"/records/{HANDLE}")
    body = response.get_data(as_text=True)
    document = html.document_fromstring(body)
    items = document.findall(".//ul[@class='files']/li")
    assert [li.findtext("span[@class='file-name']") for li in items] == ["chapters/chapter one.pdf"]
    assert f"application/pdf, {len(CHAPTER)} Bytes" in items[0].text_content()
    assert document.find(".//ul[@class='files']//a") is None
    assert "bitstream" not in body and "citation_pdf_url" not in body
    assert 'rel="item"' not in response.headers["Link"] and 'rel="item"' not in body
    data = json.loads(document.find(".//script[@type='application/ld+json']").text)
    assert [f["name"] for f in data["encoding"]] == ["chapters/chapter one.pdf"]
    assert "contentUrl" not in data["encoding"][0]
    for hidden in ("restricted.docx", "Referee report"):
        assert hidden not in body


def test_dspace_7_links_need_the_uuid() -> None:
    linker = Linker("https://api.example.org/server/api/core/bitstreams/{uuid}/download", "")
    open_file = EXPECTED[0]
    assert linker.url(HANDLE, open_file) is None
    assert (
        linker.url(HANDLE, open_file._replace(uuid="4a1f"))
        == "https://api.example.org/server/api/core/bitstreams/4a1f/download"
    )
    assert linker.url(HANDLE, EXPECTED[1]._replace(uuid="4a1f")) is None  # restricted
    assert Linker("{base}/bitstream/{handle}/{name}", "").url(HANDLE, open_file) is None


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("{base}/{file}", "unknown placeholder(s) 'file'"),
        ("ftp://x/{name}", "must begin with {base} or http(s)://"),
        ("{base}/{name", "is not a pattern"),
    ],
)
def test_a_bad_link_pattern_is_a_config_error(pattern: str, message: str) -> None:
    with pytest.raises(ConfigError, match=r"^overrides: files\.url: ") as error:
        load_settings({"files_url": pattern}, environ={})
    assert message in str(error.value)


# -- pages ---------------------------------------------------------------------------------------


def test_the_record_page_shows_the_open_files_only(files_client: FlaskClient) -> None:
    response = files_client.get(f"/records/{HANDLE}")
    assert response.status_code == 200
    document = html.document_fromstring(response.get_data(as_text=True))
    items = document.findall(".//ul[@class='files']/li")
    assert [(a.get("href"), a.get("type"), a.text) for li in items for a in li.iter("a")] == [
        (CHAPTER_URL, "application/pdf", "chapters/chapter one.pdf")
    ]
    assert f"application/pdf, {len(CHAPTER)} Bytes" in items[0].text_content()
    meta = {m.get("name"): m.get("content") for m in document.iter("meta")}
    assert meta["citation_pdf_url"] == CHAPTER_URL
    assert f'<{CHAPTER_URL}>; rel="item"; type="application/pdf"' in response.headers["Link"]
    body = response.get_data(as_text=True)
    for hidden in ("restricted.docx", "Referee report", "chapter one.pdf.jpg", "license.txt"):
        assert hidden not in body and hidden not in response.headers["Link"]


# -- check and the predicate ---------------------------------------------------------------------


def test_cores_full_text_rule_finds_an_open_linked_file(
    empty_database_url: str, tmp_path: Path
) -> None:
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export")
    settings = load_settings({"base_url": BASE, "files_url": DSPACE_6}, environ={})
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        records = list(store.iter_records())
    finally:
        store.close()

    def core(records: Any) -> list[str]:
        with check_records(records, settings, "core") as report:
            return [line for line in report.failures if "core-full-text" in line]

    assert core(records) == []
    only_restricted = [(lid, fields, files[1:]) for lid, fields, files in records]
    assert core(only_restricted) == [
        f'["{HANDLE}", "core-full-text", "no direct link to a full text: its files are '
        'restricted or not linked ([files] url)"]\n'
    ]
    assert len(core([(lid, fields) for lid, fields, _ in records])) == 1


def test_has_open_file_is_an_open_original_file() -> None:
    assert has_open_file(EXPECTED)
    assert not has_open_file(EXPECTED[1:])  # restricted, thumbnail, licence
    assert not has_open_file(())


@pytest.mark.parametrize(
    ("permissions", "access"),
    [
        (None, "open"),
        ("-r 'Anonymous'", "open"),
        ("-r 'anonymous'", "open"),
        ("-r Anonymous", "open"),
        ("-r 'Staff'", "restricted"),
        ("-w 'Anonymous'", "restricted"),  # DSpace replaces the read policy by a write one
        ("-x 'Anonymous'", "open"),  # an unknown flag: DSpace keeps the default policy
        ("read by all", "open"),
    ],
)
def test_access_follows_dspaces_permissions(permissions: str | None, access: str) -> None:
    assert access_of(permissions) == access


def test_mime_types_as_dspaces_registry_gives_them() -> None:
    assert mime_type("a/Thesis.PDF") == "application/pdf"
    assert mime_type("x.odt") == "application/vnd.oasis.opendocument.text"
    assert mime_type("x.xml") == "text/xml"
    assert mime_type("x.webm") == "video/webm"  # not DSpace's: Python's built-in table
    assert mime_type("README") == "application/octet-stream"
    assert mime_type("x.unknown-kind") == "application/octet-stream"


def test_a_harvest_of_oai_openaire_carries_the_files(files_client: FlaskClient) -> None:
    root = tree(files_client.get("/oai?verb=ListRecords&metadataPrefix=oai_openaire"))
    assert [f.text for f in root.iter(f"{{{OAIRE}}}file")] == [CHAPTER_URL]


def test_stored_fragments_follow_a_changed_link_pattern(
    empty_database_url: str, tmp_path: Path
) -> None:
    """oai_openaire stored at load: its fragments hold the links, so another pattern is
    another version, and the next load renders every record again, with its files."""
    item_with_files(tmp_path / "export")
    stored = {"base_url": BASE, "stored_formats": ["oai_openaire"]}
    load_into(empty_database_url, tmp_path / "export", **stored)
    other = "https://files.example.org/{handle}/{sequence}"
    assert load_into(empty_database_url, tmp_path / "export", files_url=other, **stored).unchanged
    client = make_app(empty_database_url, files_url=other, **stored).test_client()
    resource = metadata(client, "oai_openaire")
    assert [f.text for f in resource.iterfind(f"{{{OAIRE}}}file")] == [
        f"https://files.example.org/{HANDLE}/1"
    ]
    settings = load_settings({"files_url": other, **stored}, environ={})
    version = build_formats(settings)["oai_openaire"].version
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        record = store.get_record(HANDLE, "oai_openaire", version, "")
    finally:
        store.close()
    # Served from the fragment stored by the second load, rendered with the files.
    assert record is not None and record.fragment is not None
    assert f"https://files.example.org/{HANDLE}/1".encode() in record.fragment


def test_files_are_bounded_like_values(empty_database_url: str, tmp_path: Path) -> None:
    """A record's files count against [limits] max_values: a contents file (or "files"
    list) of millions of entries is refused, not stored."""
    folder = item_with_files(tmp_path / "export")
    assert refused(empty_database_url, tmp_path / "export", max_values=2) == [
        f"{folder}/contents:4: record {HANDLE}: more than 2 bitstreams, over the limit of "
        "values ([limits] max_values)"
    ]
    path = tmp_path / "records.jsonl"
    entry = {"name": "a.pdf", "size": 1, "md5": "0" * 32}
    record = {"id": "10722/1", "files": [entry] * 3}
    path.write_text(json.dumps(record) + "\n", "utf-8")
    assert refused(empty_database_url, path, max_values=2) == [
        f"{path}:1: record 10722/1: 3 files, over the limit of 2 ([limits] max_values)"
    ]


def test_the_sample_export_carries_bitstreams(database_url: str) -> None:
    """sample_records/dspace/saf/item_001 (10722/310001) as DSpace exports an item with
    files: the open full text in a sub-folder, restricted referee reports, the licence."""
    files = files_in(database_url, "10722/310001")
    assert [(f.name, f.bundle, f.mime, f.sequence, f.primary, f.access) for f in files] == [
        ("fulltext/article.pdf", "ORIGINAL", "application/pdf", 1, True, "open"),
        ("peer-review.pdf", "ORIGINAL", "application/pdf", 2, False, "restricted"),
        ("license.txt", "LICENSE", "text/plain", 3, False, "open"),
    ]
    sample = Path(__file__).parent.parent / "sample_records" / "dspace" / "saf" / "item_001"
    article = (sample / "fulltext" / "article.pdf").read_bytes()
    assert (files[0].size, files[0].md5) == (len(article), md5(article))
    client = make_app(database_url, base_url=BASE, files_url=DSPACE_6).test_client()
    identifier = "oai:repository.example.org:10722/310001"
    root = tree(
        client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_openaire&identifier={identifier}")
    )
    assert [f.text for f in root.iter(f"{{{OAIRE}}}file")] == [
        "https://repo.example.org/bitstream/handle/10722/310001/fulltext/article.pdf?sequence=1"
    ]
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={identifier}"))
    assert [e.text for e in root.iter(f"{{{DC}}}format")] == ["application/pdf"] * 2


# -- access rights: one rule for every place that says them --------------------------------------

DATACITE = "http://datacite.org/schema/kernel-4"
FUTURE = "2099-06-30"
# DSpace 6's links, given: these tests are about which files are linked, whatever the default.
LINKED = {
    "base_url": BASE,
    "files_url": "{base}/bitstream/handle/{handle}/{name}?sequence={sequence}",
}


def a_file(sequence: int, **changes: Any) -> File:
    plain = File(f"f{sequence}.pdf", "ORIGINAL", 1, "0" * 32, "application/pdf", sequence)
    return plain._replace(**changes)


@pytest.mark.parametrize(
    ("files", "label", "end"),
    [
        ((), "metadata only access", None),
        ((a_file(1, bundle="THUMBNAIL"),), "metadata only access", None),
        ((a_file(1),), "open access", None),
        ((a_file(1, access="restricted", permissions="-r 'Staff'"),), "restricted access", None),
        # DSpace's helper: the primary file decides, else the first
        ((a_file(1, access="restricted"), a_file(2)), "restricted access", None),
        ((a_file(1, access="restricted"), a_file(2, primary=True)), "open access", None),
        ((a_file(1, access="restricted", permissions=f"-r 'Anonymous' {FUTURE}"),),
         "embargoed access", date(2099, 6, 30)),
        # an embargo that ended: open, by the calendar
        ((a_file(1, access="restricted", permissions="-r 'Anonymous' 2001-01-31"),),
         "open access", None),
        # a date on another group's policy is no embargo
        ((a_file(1, access="restricted", permissions=f"-r 'Staff' {FUTURE}"),),
         "restricted access", None),
    ],
)  # fmt: skip
def test_a_records_access_status_is_its_files_as_dspace_works_it_out(
    files: tuple[File, ...], label: str, end: date | None
) -> None:
    assert access_status(files) == (label, end)


def test_an_embargo_policy_in_contents_is_kept(empty_database_url: str, tmp_path: Path) -> None:
    folder = item_with_files(tmp_path / "export")
    (folder / "contents").write_text(
        CONTENTS.replace("-r 'Anonymous'", f"-r 'Anonymous' {FUTURE}"), "utf-8"
    )
    load_into(empty_database_url, tmp_path / "export")
    chapter = files_in(empty_database_url)[0]
    assert (chapter.access, chapter.permissions) == ("restricted", f"-r 'Anonymous' {FUTURE}")
    assert access_of(f"-r 'Anonymous' {FUTURE}") == "restricted"


def rights_of(client: FlaskClient) -> tuple[str | None, dict[str, str], list[str]]:
    """oai_openaire's datacite:rights (label, attributes), its datacite:dates by type, and
    its oaire:file links."""
    resource = metadata(client, "oai_openaire")
    rights = resource.find(f"{{{DATACITE}}}rights")
    assert rights is not None
    dates = {d.get("dateType"): d.text for d in resource.iter(f"{{{DATACITE}}}date")}
    files = [f.text for f in resource.iterfind(f"{{{OAIRE}}}file")]
    return rights.text, dates, files


def test_oai_openaire_says_open_access_for_an_item_with_an_open_file(
    empty_database_url: str, tmp_path: Path
) -> None:
    """The seed item has no access field: its open primary file makes it open access (it
    was "metadata only access", while oaire:file said open access)."""
    item_with_files(tmp_path / "export")
    load_into(empty_database_url, tmp_path / "export", **LINKED)
    label, _, files = rights_of(make_app(empty_database_url, **LINKED).test_client())
    assert (label, files) == ("open access", [CHAPTER_URL])


@pytest.mark.parametrize("source", ["contents", "json"])
def test_an_embargoed_item_is_embargoed_everywhere(
    empty_database_url: str, tmp_path: Path, source: str
) -> None:
    """Its primary file's anonymous READ policy starts in 2099: oai_openaire says embargoed
    access with that end as dateType="Available", lists no file; the record page shows
    none; the openaire set's access condition and check agree."""
    if source == "contents":
        folder = item_with_files(tmp_path / "export")
        (folder / "contents").write_text(
            CONTENTS.replace("-r 'Anonymous'", f"-r 'Anonymous' {FUTURE}"), "utf-8"
        )
        load_into(empty_database_url, tmp_path / "export", **LINKED)
    else:
        fields = [
            {"field": "dc.title", "value": "An embargoed thesis"},
            {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"},
            {"field": "dc.identifier.uri", "value": f"http://hdl.handle.net/{HANDLE}"},
        ]
        entry = {"name": "chapters/chapter one.pdf", "size": 3, "md5": "0" * 32,
                 "embargo": FUTURE, "primary": True}  # fmt: skip
        (tmp_path / "r.json").write_text(
            json.dumps([{"id": HANDLE, "metadata": fields, "files": [entry]}])
        )
        load_into(empty_database_url, tmp_path / "r.json", **LINKED)
    client = make_app(empty_database_url, **LINKED).test_client()
    label, dates, files = rights_of(client)
    assert (label, dates["Available"], files) == ("embargoed access", FUTURE, [])
    page = client.get(f"/records/{HANDLE}").get_data(as_text=True)
    assert "chapter one.pdf" not in page
    settings = load_settings(LINKED, environ={})
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        records = list(store.iter_records())
    finally:
        store.close()
    with check_records(records, settings, "openaire") as report:
        assert not [line for line in report.failures if "access" in line or "embargo" in line]
    from oaipmh_server.virtual_sets import VirtualSets

    embargoed = {"e": {"name": "E", "access_right": ["embargoed access"]}}
    served = {"virtual_set_definitions": embargoed, "virtual_sets_served": ["e"]}
    virtual = VirtualSets(load_settings(served, environ={}))
    (_, stored_fields, stored_files) = records[0]
    assert virtual.of(stored_fields, stored_files) == ("e",)


def test_json_embargo_is_a_date_given_once(empty_database_url: str, tmp_path: Path) -> None:
    fields = [{"field": "dc.title", "value": "T"},
              {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]  # fmt: skip
    for entry, reason in (
        ({"embargo": "soon"}, '"embargo" must be a date like 2027-01-31, not "soon"'),
        ({"embargo": FUTURE, "permissions": "-r 'Staff'"},
         "\"embargo\" and \"permissions\": give the embargo as one or the other (-r "
         "'Anonymous' 2027-01-31)"),
    ):  # fmt: skip
        entry = {"name": "a.pdf", "size": 1, "md5": "0" * 32, **entry}
        (tmp_path / "r.json").write_text(
            json.dumps([{"id": "1", "metadata": fields, "files": [entry]}])
        )
        (problem,) = refused(empty_database_url, tmp_path / "r.json")
        assert problem.endswith(f"files entry 1 (a.pdf): {reason}")


@pytest.mark.parametrize(
    "mime",
    ['application/pdf"; rel="cite-as', "application/pdf\r\nX-Evil: 1", 'a/b; x="\\"'],
)
def test_a_stored_mime_is_checked_again_where_the_link_header_is_written(
    files_client: FlaskClient, empty_database_url: str, mime: str
) -> None:
    """A value stored before the load refused it (or written by other means) reaches the
    header only quoted as the Link syntax requires, or not at all: the page is served, and
    no record adds a cite-as of its own."""
    store = SqlStore(empty_database_url, token_secret=SECRET)
    try:
        with store.engine.begin() as conn:
            conn.execute(update(files_table).values(mime=mime))
    finally:
        store.close()
    response = files_client.get(f"/records/{HANDLE}")
    assert response.status_code == 200
    header = response.headers["Link"]
    assert "\r" not in header and "\n" not in header
    assert header.count('rel="cite-as"') <= 1
    assert "X-Evil" not in response.headers
    for link in parse_links(header):
        assert link.get("rel") != "cite-as" or link["url"].startswith("https://")
        if link.get("rel") == "item":  # the type as stored, or none (a control character)
            assert link.get("type", mime) == mime


def parse_links(header: str) -> list[dict[str, str]]:
    """The links of a Link header (RFC 8288), quoted strings unescaped, as a client reads
    them."""
    links = []
    pattern = re.compile(
        r'\s*<([^>]*)>((?:\s*;\s*[^=;,\s]+\s*=\s*(?:"(?:[^"\\]|\\.)*"|[^;,]*))*)\s*,?'
    )
    for found in pattern.finditer(header):
        link = {"url": found.group(1)}
        for name, quoted_value, token_value in re.findall(
            r';\s*([^=;,\s]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,]*))', found.group(2)
        ):
            link[name] = re.sub(r"\\(.)", r"\1", quoted_value) if quoted_value else token_value
        links.append(link)
    return links


def test_a_stored_file_name_leading_outside_the_item_is_never_linked(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A name a load now refuses (`../../server/api/authn/logout`), stored by an earlier
    version: its link ([files] url) would lead anywhere on the repository's host, so it has
    none, in oai_openaire (oaire:file) as on the record's page."""
    fields = [{"field": "dc.title", "value": "T"},
              {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]  # fmt: skip
    entry = {"name": "thesis.pdf", "size": 3, "md5": "0" * 32, "primary": True}
    (tmp_path / "r.json").write_text(json.dumps([{"id": HANDLE, "metadata": fields,
                                                  "files": [entry]}]))  # fmt: skip
    load_into(empty_database_url, tmp_path / "r.json", **LINKED)
    client = make_app(empty_database_url, **LINKED).test_client()
    assert rights_of(client)[2] == [
        f"{BASE.removesuffix('/oai/request')}/bitstream/handle/{HANDLE}/thesis.pdf?sequence=1"
    ]
    engine = create_engine(empty_database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(update(files_table).values(name="../../server/api/authn/logout"))
    engine.dispose()
    assert rights_of(client)[2] == []
    page = client.get(f"/records/{HANDLE}").get_data(as_text=True)
    assert "thesis.pdf" not in page and "authn/logout?sequence" not in page  # no link
