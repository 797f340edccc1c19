"""`oaipmh-server load`: validation, datestamp rules, all-or-nothing, error messages."""

from __future__ import annotations

import json
import os
import select as select_module
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, type_coerce, update
from sqlalchemy.pool import NullPool
from sqlalchemy.types import NullType

from oaipmh_server.ingest.drafts import Source, make_draft, normalise_language
from oaipmh_server.ingest.load import BATCH
from oaipmh_server.ingest.workers import PARALLEL_FROM_BYTES
from oaipmh_server.store import unpack_fields
from oaipmh_server.store.schema import files_table, memberships_table, records_table
from oaipmh_server.xml import clean_text, has_illegal_characters

from .cli import Ran, invoke, run_cli, run_process
from .conftest import (
    load_into,
    make_app,
    refusal,
    refused_problems,
    refused_unchanged,
    sqlite_url,
)
from .db import datestamps, everything, fetch, oai_identifiers, stored_fields
from .held_load import HOLDING
from .oai import NS, error_codes, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store: what a record is refused for, what the messages and the
# command say, what a record missing dc.date.accessioned is dated by, and whether a record
# changed (its content hash) are the reading's, whichever the store. (Their refused loads fail before a batch is written; the rollback of batches
# already written is shown on both stores by test_malformed_json_late_in_a_big_file_loads_
# nothing and test_killed_load_leaves_the_store_as_it_was.)
pytestmark = pytest.mark.store_behaviour

HELD_LOAD = Path(__file__).parent / "held_load.py"
T1 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
T2 = datetime(2025, 3, 2, 12, 0, 0, tzinfo=UTC)


def record(
    local_id: str, accessioned: str | None = "2015-07-21T02:23:32Z", **extra: Any
) -> dict[str, Any]:
    metadata = [{"field": "dc.title", "value": f"Title of {local_id}", "lang": "en"}]
    if accessioned is not None:
        metadata.append({"field": "dc.date.accessioned", "value": accessioned})
    value: dict[str, Any] = {"id": local_id, "sets": ["com_1:col_1"], "metadata": metadata}
    value.update(extra)
    return value


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    return path


def write_big(path: Path, size: int) -> Path:
    """write_jsonl of records n0, n1, … enough to make the file `size` bytes or more, each
    with a title of about a thousand characters: the workers read the file in chunks of
    CHUNK_BYTES, so a chunk holds under a thousand records, not the 5,700 of short ones,
    and a load held early (and killed) has so many fewer records prepared ahead for it.
    Each line is made from one record's line (dumping as many dicts cost the test more
    than the load it is for)."""
    long = record("n-ID")
    long["metadata"][0]["value"] += " of many words" * 70
    line = json.dumps(long, ensure_ascii=False) + "\n"
    count = -(-size // len(line)) + 1
    path.write_text("".join(line.replace("n-ID", f"n{n}") for n in range(count)), "utf-8")
    return path


def test_first_load_dates_records_by_accessioned(empty_database_url: str, tmp_path: Path) -> None:
    files = write_jsonl(
        tmp_path / "r.jsonl",
        [record("1", "2015-07-21T02:23:32Z"), record("2", "2019-11-02T15:04:05+08:00"),
         record("3", "2017-06-30")],
    )  # fmt: skip
    summary = load_into(empty_database_url, files, clock=lambda: T1)
    assert (summary.added, summary.clamped, summary.rejected) == (3, 0, 0)
    assert datestamps(empty_database_url) == {
        "1": "2015-07-21T02:23:32Z",
        "2": "2019-11-02T07:04:05Z",
        "3": "2017-06-30T00:00:00Z",
    }


def test_identical_reload_changes_nothing(empty_database_url: str, tmp_path: Path) -> None:
    files = write_jsonl(tmp_path / "r.jsonl", [record("1"), record("2", deleted=True)])
    load_into(empty_database_url, files, clock=lambda: T1)
    before = everything(empty_database_url)
    summary = load_into(empty_database_url, files, clock=lambda: T2)
    assert (summary.unchanged, summary.added, summary.updated, summary.deleted) == (2, 0, 0, 0)
    assert everything(empty_database_url) == before


def test_hashes_of_the_first_scheme_still_recognise_identical_content(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A store loaded before content hashes carried a scheme prefix: reloading the same
    records must still change nothing (no datestamp moves, nothing re-harvested)."""
    files = write_jsonl(tmp_path / "r.jsonl", [record("1"), record("2", deleted=True)])
    load_into(empty_database_url, files, clock=lambda: T1)
    engine = create_engine(empty_database_url, poolclass=NullPool)
    with engine.begin() as conn:
        packed = select(records_table.c.local_id, type_coerce(records_table.c.fields, NullType()))
        for local_id, fields in conn.execute(packed).all():
            draft = make_draft(
                Source("-", 1), local_id, ["com_1:col_1"], local_id == "2",
                unpack_fields(fields), require_accessioned=False,
            )  # fmt: skip
            assert len(draft.legacy_content_hash) == 64
            conn.execute(
                update(records_table)
                .where(records_table.c.local_id == local_id)
                .values(content_hash=draft.legacy_content_hash)
            )
    engine.dispose()
    before = everything(empty_database_url)
    summary = load_into(empty_database_url, files, clock=lambda: T2)
    assert (summary.unchanged, summary.updated) == (2, 0)
    assert everything(empty_database_url) == before


def test_worker_processes_load_exactly_what_one_process_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big JSON Lines files are checked and rendered by worker processes, in chunks: the
    store must come out the same, in the same order, and a record twice is refused the
    same way, naming both lines."""
    from oaipmh_server.ingest import workers

    monkeypatch.setattr(workers, "CHUNK_BYTES", 600)  # many chunks from a small file
    records = [record(str(n), f"2015-07-{1 + n % 28:02d}T02:23:32Z") for n in range(60)]
    records[7]["deleted"] = True
    records[3]["metadata"].append({"field": "dc.title", "value": "bell \x07", "lang": "en_US"})
    files = write_jsonl(tmp_path / "r.jsonl", records)
    twice = write_jsonl(tmp_path / "twice.jsonl", [*records, record("8", "2016-01-01T00:00:00Z")])
    stores = []
    for count in (0, 2):
        url = f"sqlite:///{tmp_path}/w{count}.sqlite3"
        assert refused_problems(url, twice, clock=lambda: T1, workers=count) == [
            f"{twice}:9: record 8: the same record again at {twice}:61: "
            "a load holds each record once"
        ]
        summary = load_into(url, files, clock=lambda: T1, workers=count)
        assert (summary.added, summary.updated, summary.deleted, summary.cleaned) == (59, 0, 1, 1)
        stores.append(everything(url))
    assert stores[0] == stores[1]


def test_worker_processes_render_headers_with_the_communities_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In DSpace's flat style a header names the communities above a record's collection:
    the workers render it with them (the tree as the load knows it), the same bytes as one
    process renders."""
    from oaipmh_server.ingest import workers

    monkeypatch.setattr(workers, "CHUNK_BYTES", 600)
    (tmp_path / "sets.json").write_text(json.dumps({"sets": [
        {"spec": "com_1", "name": "Community"},
        {"spec": "col_1", "name": "Collection", "parent": "com_1"}]}))  # fmt: skip
    write_jsonl(tmp_path / "r.jsonl", [record(str(n), sets=["col_1"]) for n in range(40)])
    stores = []
    for count in (0, 2):
        url = f"sqlite:///{tmp_path}/t{count}.sqlite3"
        load_into(url, tmp_path, clock=lambda: T1, workers=count)
        stores.append(everything(url))
    assert stores[0] == stores[1]
    assert b"<setSpec>com_1</setSpec><setSpec>col_1</setSpec>" in repr(stores[1]).encode()


def test_worker_processes_report_the_same_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oaipmh_server.ingest import workers

    monkeypatch.setattr(workers, "CHUNK_BYTES", 600)
    lines = [json.dumps(record(str(n))) for n in range(30)]
    lines[4] = '{"id": "4", "metadata": [ broken'
    lines[9] = ""  # a blank line is no record
    lines[12] += "\r"  # a CRLF line end
    lines[20] = json.dumps(record("20", "the day after tomorrow"))
    (tmp_path / "r.jsonl").write_text("\n".join(lines), "utf-8")  # no newline at the end
    reports = []
    for count in (0, 2):
        url = f"sqlite:///{tmp_path}/w{count}.sqlite3"
        reports.append(refused_problems(url, tmp_path / "r.jsonl", workers=count))
    assert reports[0] == reports[1]
    assert [r.split(": ")[0] for r in reports[0]] == [
        f"{tmp_path}/r.jsonl:5",
        f"{tmp_path}/r.jsonl:21",
    ]


def stored_headers(url: str) -> dict[str, bytes]:
    return dict(fetch(url, select(records_table.c.local_id, records_table.c.header)))


def test_headers_are_stored_as_served_and_follow_the_repository_identifier(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    files = write_jsonl(tmp_path / "r.jsonl", [record("1"), record("2", deleted=True)])
    load_into(url, files, clock=lambda: T1)
    stored = stored_headers(url)
    assert stored["1"] == (
        b"<header><identifier>oai:repository.example.org:1</identifier>"
        b"<datestamp>2015-07-21T02:23:32Z</datestamp><setSpec>com_1:col_1</setSpec></header>"
    )
    # The tombstone's datestamp is the moment of the load, stamped into its header too.
    assert b'status="deleted"' in stored["2"]
    assert b"<datestamp>2025-03-01T12:00:00Z</datestamp>" in stored["2"]

    # Another repository identifier: stored headers are not served, but rendered afresh…
    client = make_app(url, repository_identifier="other.example.org").test_client()
    root = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc"))
    assert [e.text for e in root.iterfind(".//oai:identifier", NS)] == [
        "oai:other.example.org:1",
        "oai:other.example.org:2",
    ]
    # …until the next load under it stores them again, unchanged records included.
    summary = load_into(url, files, clock=lambda: T2, repository_identifier="other.example.org")
    assert summary.unchanged == 2
    assert all(b"oai:other.example.org:" in header for header in stored_headers(url).values())


def test_changed_record_moves_to_the_time_of_the_change(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(empty_database_url, write_jsonl(tmp_path / "a.jsonl", [record("1"), record("2")]))
    changed = record("1")
    changed["metadata"][0]["value"] = "A corrected title"
    summary = load_into(
        empty_database_url,
        write_jsonl(tmp_path / "b.jsonl", [changed, record("2")]),
        clock=lambda: T2,
    )
    assert (summary.updated, summary.unchanged) == (1, 1)
    assert datestamps(empty_database_url) == {
        "1": "2025-03-02T12:00:00Z",
        "2": "2015-07-21T02:23:32Z",
    }


def test_deletion_leaves_a_tombstone_dated_at_deletion(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(empty_database_url, write_jsonl(tmp_path / "a.jsonl", [record("1"), record("2")]))
    summary = load_into(
        empty_database_url,
        write_jsonl(tmp_path / "b.jsonl", [{"id": "1", "deleted": True}]),
        clock=lambda: T2,
    )
    assert summary.deleted == 1
    client = make_app(empty_database_url).test_client()
    root = tree(
        client.get(
            "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:1"
        )
    )
    header = root.find(".//oai:header", NS)
    assert header.get("status") == "deleted"
    assert header.findtext("oai:datestamp", namespaces=NS) == "2025-03-02T12:00:00Z"
    assert header.findtext("oai:setSpec", namespaces=NS) == "com_1:col_1"  # keeps its sets
    assert root.find(".//oai:metadata", NS) is None


def test_new_record_older_than_the_store_is_clamped(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(
        empty_database_url, write_jsonl(tmp_path / "a.jsonl", [record("1", "2020-01-01T00:00:00Z")])
    )
    late = write_jsonl(tmp_path / "b.jsonl", [record("2", "2016-01-01T00:00:00Z")])
    summary = load_into(empty_database_url, late, clock=lambda: T2)
    assert (summary.added, summary.clamped) == (1, 1)
    assert datestamps(empty_database_url)["2"] == "2025-03-02T12:00:00Z"


def test_keep_accessioned_keeps_it(empty_database_url: str, tmp_path: Path) -> None:
    load_into(
        empty_database_url, write_jsonl(tmp_path / "a.jsonl", [record("1", "2020-01-01T00:00:00Z")])
    )
    late = write_jsonl(tmp_path / "b.jsonl", [record("2", "2016-01-01T00:00:00Z")])
    summary = load_into(empty_database_url, late, clock=lambda: T2, keep_accessioned=True)
    assert summary.clamped == 0
    assert datestamps(empty_database_url)["2"] == "2016-01-01T00:00:00Z"


@pytest.mark.same_on_every_store
def test_missing_accessioned_is_an_error_unless_configured(
    empty_database_url: str, tmp_path: Path
) -> None:
    files = write_jsonl(tmp_path / "r.jsonl", [record("1", None)])
    assert refused_problems(empty_database_url, files)[0] == (
        f"{files}:1: record 1: no dc.date.accessioned: the datestamp comes from it"
    )
    summary = load_into(
        empty_database_url, files, clock=lambda: T1, missing_accessioned="ingest_time"
    )
    assert summary.added == 1
    assert datestamps(empty_database_url)["1"] == "2025-03-01T12:00:00Z"


BAD_RECORDS = [
    pytest.param({"sets": []}, "record ?: no id", id="no-id"),
    pytest.param({"id": ""}, "record ?: no id", id="empty-id"),
    pytest.param({"id": 5}, "record ?: no id", id="id-not-a-string"),
    pytest.param({"id": "a b"}, 'record a b: id "a b" has characters', id="id-with-space"),
    pytest.param(
        record("x", "2015-02-30"),
        "record x: dc.date.accessioned: '2015-02-30' is not",
        id="impossible-date",
    ),
    pytest.param(
        record("x", "last Tuesday"), "record x: dc.date.accessioned", id="unparseable-date"
    ),
    pytest.param(
        record("x", "2999-01-01"),
        "record x: dc.date.accessioned 2999-01-01T00:00:00+00:00 is in the future",
        id="future-date",
    ),
    pytest.param(
        record("x", deleted="no"),
        'record x: "deleted" must be true or false',
        id="deleted-not-bool",
    ),
    pytest.param(
        record("x", sets="col_1"), 'record x: "sets" must be a list', id="sets-not-a-list"
    ),
    pytest.param(
        record("x", sets=["bad set"]),
        'record x: set spec "bad set" is not valid',
        id="bad-set-spec",
    ),
    pytest.param(
        record("x", metadata={"dc.title": "x"}),
        'record x: "metadata" must be a list',
        id="metadata-not-a-list",
    ),
    pytest.param(
        record("x", metadata=[{"field": "title", "value": "x"}]),
        'record x: metadata entry 1: field "title"',
        id="unqualified-field",
    ),
    pytest.param(
        record("x", metadata=[{"field": "dc.title", "value": 3}]),
        "record x: metadata entry 1 (dc.title): value must be a string",
        id="value-not-a-string",
    ),
    pytest.param(
        record("x", metadata=[{"field": "dc.title"}]),
        "record x: metadata entry 1 must be an object",
        id="entry-without-value",
    ),
    pytest.param(
        record("x", metadata=[{"field": "dc.title", "value": "t", "lang": "english please"}]),
        "record x: metadata entry 1 (dc.title): language",
        id="bad-language",
    ),
    pytest.param(
        record("x", handle="10722/1"), 'record x: unknown key(s) "handle"', id="unknown-key"
    ),
    pytest.param([1, 2], "record ?: a record must be a JSON object", id="not-an-object"),
]


@pytest.mark.same_on_every_store
@pytest.mark.parametrize(("bad", "message"), BAD_RECORDS)
def test_bad_record_fails_the_whole_load(
    empty_database_url: str, tmp_path: Path, bad: Any, message: str
) -> None:
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", [record("1")]))
    files = write_jsonl(tmp_path / "r.jsonl", [record("2"), record("3"), bad, record("4")])
    problems = refused_unchanged(empty_database_url, files)
    assert len(problems) == 1
    assert problems[0].startswith(f"{files}:3: {message}")


@pytest.mark.same_on_every_store
def test_every_problem_is_reported(empty_database_url: str, tmp_path: Path) -> None:
    files = write_jsonl(
        tmp_path / "r.jsonl", [record("1"), {"id": "a b"}, record("2"), record("3", "nope")]
    )
    failure = refusal(empty_database_url, files)
    assert [(p.line, p.record_id) for p in failure.problems] == [(2, "a b"), (4, "3")]


def test_malformed_json_late_in_a_big_file_loads_nothing(
    empty_database_url: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "big.jsonl", [record(str(i)) for i in range(3000)])
    with path.open("a") as f:
        f.write('{"id": "broken", "metadata": [\n')
    problems = refused_problems(empty_database_url, path)
    assert problems[0].startswith(f"{path}:3001: record broken: malformed JSON")
    assert everything(empty_database_url) == []


@pytest.mark.same_on_every_store
def test_json_array_errors_name_the_line(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([record("1"), record("2"), {"id": "3"}], indent=2))
    problems = refused_problems(empty_database_url, path)
    third = [i for i, text in enumerate(path.read_text().splitlines(), 1) if text == "  {"][2]
    assert problems[0].startswith(f"{path}:{third}: record 3: no dc.date.accessioned")


@pytest.mark.same_on_every_store
def test_truncated_json_array(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([record("1"), record("2")], indent=1)[:-30])
    assert "malformed JSON" in refused_problems(empty_database_url, path)[0]
    assert everything(empty_database_url) == []


@pytest.mark.same_on_every_store
def test_single_object_and_array_files(empty_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "one.json").write_text(json.dumps(record("1")))
    (tmp_path / "many.json").write_text(json.dumps([record("2"), record("3")]))
    (tmp_path / "notes.txt").write_text("not records")
    summary = load_into(empty_database_url, tmp_path)
    assert summary.added == 3


@pytest.mark.same_on_every_store
def test_missing_path_and_wrong_suffix(empty_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "records.xml").write_text("<x/>")
    assert refused_problems(empty_database_url, tmp_path / "nope", tmp_path / "records.xml") == [
        f"{tmp_path / 'nope'}: no such file or folder",
        f"{tmp_path / 'records.xml'}: not a .json, .jsonl, DSpace metadata .csv or DSpace "
        "structure export .xml file",
    ]


@pytest.mark.same_on_every_store
def test_a_pipe_or_a_device_is_named_as_such_not_missing(
    empty_database_url: str, tmp_path: Path
) -> None:
    """`load <(zcat records.jsonl.gz)` names a pipe, /dev/null a device: they exist, and are
    not read (a pipe would be waited on), said as such rather than "no such file"."""
    fifo = tmp_path / "records.jsonl"
    os.mkfifo(fifo)
    assert refused_problems(empty_database_url, fifo, "/dev/null") == [
        f"{path}: not a file or folder but a pipe, device or socket: not read"
        for path in (fifo, "/dev/null")
    ]


@pytest.mark.same_on_every_store
def test_not_utf8(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(json.dumps(record("1")).encode() + b"\n" + b'{"id": "\xff"}\n')
    assert refused_problems(empty_database_url, path)[0] == f"{path}:2: record ?: not UTF-8 text"


@pytest.mark.parametrize(
    ("given", "expected"),
    [("en_US", "en-US"), ("en", "en"), ("zh_TW", "zh-TW"), ("", None), ("*", None),
     ("none", None), ("NONE", None), (None, None), (" en ", "en")],
)  # fmt: skip
def test_dspace_languages_become_xml_lang(given: str | None, expected: str | None) -> None:
    assert normalise_language(given) == expected


def test_xml_illegal_characters_are_replaced_and_reported(
    empty_database_url: str, tmp_path: Path
) -> None:
    bad = record("1")
    bad["metadata"][0]["value"] = (
        "Tab\tnewline\nvt\u000bnul\u0000bell\u0007 surrogate\ud800 end\ufffe"
    )
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps(bad) + "\n")  # a lone surrogate only exists \u-escaped
    summary = load_into(empty_database_url, path)
    assert summary.cleaned == 5
    assert "5 character(s) XML cannot carry" in summary.warnings[0]
    client = make_app(empty_database_url).test_client()
    root = tree(
        client.get(
            "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:1"
        )
    )
    title = root.findtext(".//dc:title", namespaces=NS)
    assert title == "Tab\tnewline\nvt\ufffdnul\ufffdbell\ufffd surrogate\ufffd end\ufffd"


# Characters a bulk write must carry exactly: COPY's text format gives tab, newline,
# carriage return and backslash a meaning, `\N` is its NULL, `\.` its end of data; UTF-8
# of every length, non-BMP included; U+FFFD (what XML-illegal characters become).
AWKWARD = "tab\there back\\slash \\N \\. line\nnext\r\nend 'q' \"qq\" é€ 😀𝔘\U0010fffd \ufffd"


def test_values_with_awkward_characters_are_stored_exactly(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Every column a load writes in bulk (records, memberships, fragments, files) keeps
    such values exactly: the fields as stored, the file rows, the record as served."""
    local_id = "10722/a.b_c-1"
    given = record(local_id, sets=["com_1:col_1"])
    given["metadata"][0]["value"] = AWKWARD + " vt\u000b"
    given["metadata"].append({"field": "dc.description", "value": AWKWARD * 200})
    given["files"] = [{"name": "a\tb\\c\n😀.pdf", "size": 2**40, "md5": "0" * 32,
                       "description": AWKWARD, "permissions": "-r 'Anonymous' \\N",
                       "uuid": "u\tu"}]  # fmt: skip
    load_into(empty_database_url, write_jsonl(tmp_path / "r.jsonl", [given]))
    fields = stored_fields(empty_database_url, local_id)[local_id]
    assert [f[1] for f in fields if f[0] in ("dc.title", "dc.description")] == [
        AWKWARD + " vt\ufffd",
        AWKWARD * 200,
    ]
    files = fetch(empty_database_url, select(files_table.c.local_id, files_table.c.name, files_table.c.size,
                                             files_table.c.description, files_table.c.permissions,
                                             files_table.c.uuid, files_table.c.sequence))  # fmt: skip
    assert files == [(local_id, "a\tb\\c\n😀.pdf", 2**40, AWKWARD, "-r 'Anonymous' \\N",
                      "u\tu", 1)]  # fmt: skip
    sets = fetch(
        empty_database_url, select(memberships_table.c.set_spec, memberships_table.c.local_id)
    )
    assert sorted(sets) == [("com_1", local_id), ("com_1:col_1", local_id)]
    client = make_app(empty_database_url).test_client()
    identifier = "oai:repository.example.org:" + local_id
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={identifier}"))
    assert root.findtext(".//oai:header/oai:identifier", namespaces=NS) == identifier
    assert root.findtext(".//dc:title", namespaces=NS) == AWKWARD + " vt\ufffd"
    assert root.findtext(".//dc:description", namespaces=NS) == AWKWARD * 200


@pytest.mark.parametrize(
    "character",
    ["\x00", "\x08", "\x0b", "\x0c", "\x1f", "\ud800", "\udfff", "\ufffe", "\uffff"],
)
def test_each_character_xml_cannot_carry_is_found_wherever_it_is(character: str) -> None:
    # Loads find them by the bytes they encode to, not character by character: what a
    # value holds, at its start, middle or end, among characters of every UTF-8 length.
    for text in (character, f"a{character}", f"é€😀{character}x", f"{character}\U0010ffff"):
        assert has_illegal_characters(text), repr(text)
        assert clean_text(text).count("\ufffd") == 1


@pytest.mark.parametrize(
    "text", ["", "\t\n\r", " ~\x7f\x80\x9f", "é€😀", "\ud7ff\ue000\ufffd", "\U00010000\U0010ffff"]
)
def test_characters_xml_can_carry_are_not_taken_for_others(text: str) -> None:
    assert not has_illegal_characters(text)
    assert clean_text(text) == text


def test_sets_file_names_sets_and_undefined_sets_get_their_spec(
    empty_database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "sets.json").write_text(json.dumps({"sets": [
        {"spec": "com_1", "name": "Faculty of Medicine", "description": "Medicine & health"},
        {"spec": "com_1:col_1", "name": "Articles"},
    ]}))  # fmt: skip
    write_jsonl(tmp_path / "r.jsonl", [record("1"), record("2", sets=["com_2:col_9"])])
    summary = load_into(empty_database_url, tmp_path)
    assert summary.sets == 4
    client = make_app(empty_database_url).test_client()
    root = tree(client.get("/oai?verb=ListSets"))
    sets = {s.findtext("oai:setSpec", namespaces=NS): s.findtext("oai:setName", namespaces=NS)
            for s in root.iterfind(".//oai:set", NS)}  # fmt: skip
    assert sets == {"com_1": "Faculty of Medicine", "com_1:col_1": "Articles",
                    "com_2": "com_2", "com_2:col_9": "com_2:col_9"}  # fmt: skip
    description = root.find(
        ".//oai:set[oai:setSpec='com_1']/oai:setDescription//dc:description", NS
    )
    assert description.text == "Medicine & health"


def test_a_load_is_visible_to_a_running_server_at_once(
    empty_database_url: str, tmp_path: Path
) -> None:
    load_into(empty_database_url, write_jsonl(tmp_path / "a.jsonl", [record("1")]))
    client = make_app(empty_database_url).test_client()
    query = "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:2"
    assert error_codes(client.get(query)) == ["idDoesNotExist"]
    load_into(empty_database_url, write_jsonl(tmp_path / "b.jsonl", [record("2")]))
    assert error_codes(client.get(query)) == []


@pytest.mark.same_on_every_store
def test_cli_load_reports_and_exits_nonzero(empty_database_url: str, tmp_path: Path) -> None:
    """The failing load in a process of its own, as an operator's script sees its exit
    status; the report and the status are the command's, whichever the store."""
    env = {"OAIPMH_DATABASE_URL": empty_database_url}
    good = write_jsonl(tmp_path / "good.jsonl", [record("1"), record("2")])
    done = run_cli("load", str(good), env=env)
    assert done.returncode == 0, done.stderr
    assert "added 2, updated 0, unchanged 0, deleted 0, clamped 0, rejected 0" in done.stdout
    bad = write_jsonl(tmp_path / "bad.jsonl", [record("3"), {"id": "4"}])
    failed = run_process("load", str(bad), env=env)
    assert failed.returncode != 0
    assert f"{bad}:2: record 4: no dc.date.accessioned" in failed.stderr
    assert "nothing was loaded" in failed.stderr
    assert "Traceback" not in failed.stderr + failed.stdout


def test_cli_bad_config_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[harvest]\npage_size = -1\n")
    failed = run_cli("load", str(tmp_path), env={"OAIPMH_CONFIG": str(config)})
    assert failed.returncode != 0
    assert "page_size" in failed.stderr and "Traceback" not in failed.stderr


def test_killed_load_leaves_the_store_as_it_was(empty_database_url: str, tmp_path: Path) -> None:
    """A load killed with its workers running and batches written in its transaction:
    the store is as before, no worker is left running, and the next load goes through.
    The load is held at that moment (tests/held_load.py), so it is killed there."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", [record("first")]))
    before = everything(empty_database_url)
    big = write_big(tmp_path / "big.jsonl", PARALLEL_FROM_BYTES)
    assert big.stat().st_size >= PARALLEL_FROM_BYTES  # read by worker processes
    with subprocess.Popen(
        [sys.executable, str(HELD_LOAD), str(3 * BATCH), "load", str(big)],
        env={**os.environ, "OAIPMH_DATABASE_URL": empty_database_url},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.PIPE, text=True,
    ) as process:  # fmt: skip
        try:
            assert select_module.select([process.stdout], [], [], 120)[0], "the load never held"
            assert process.stdout.readline().strip() == HOLDING, "the load ended before it held"
            tasks = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            children = [int(pid) for pid in tasks.read_text().split()]
            assert children, "a file this big is read by worker processes"
            assert everything(empty_database_url) == before  # nothing visible before commit
        finally:
            process.kill()
    assert everything(empty_database_url) == before
    # The workers (and multiprocessing's helper) end with it: nothing is left running.
    still_running = [pid for pid in children if not exited(pid, timeout=30)]
    assert not still_running
    summary = load_into(
        empty_database_url, write_jsonl(tmp_path / "after.jsonl", [record("after")])
    )
    assert summary.added == 1


def exited(pid: int, timeout: float) -> bool:
    """Wait for a process that is not our child to end (a pidfd becomes readable when it
    does); False if it is still running after `timeout` seconds."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # gone already
    try:
        return bool(select_module.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


@pytest.mark.same_on_every_store
def test_field_order_across_fields_is_not_a_change(empty_database_url: str, tmp_path: Path) -> None:
    first = record("1")
    load_into(empty_database_url, write_jsonl(tmp_path / "a.jsonl", [first]))
    reordered = dict(first, metadata=list(reversed(first["metadata"])))
    summary = load_into(empty_database_url, write_jsonl(tmp_path / "b.jsonl", [reordered]))
    assert summary.unchanged == 1
    two_authors = record("1")
    two_authors["metadata"] += [{"field": "dc.contributor.author", "value": "A"},
                                {"field": "dc.contributor.author", "value": "B"}]  # fmt: skip
    load_into(empty_database_url, write_jsonl(tmp_path / "c.jsonl", [two_authors]))
    swapped = record("1")
    swapped["metadata"] += [{"field": "dc.contributor.author", "value": "B"},
                            {"field": "dc.contributor.author", "value": "A"}]  # fmt: skip
    summary = load_into(empty_database_url, write_jsonl(tmp_path / "d.jsonl", [swapped]))
    assert summary.updated == 1  # the order of authors is part of the record


def test_flat_spec_means_the_defined_set_ending_with_it(
    empty_database_url: str, tmp_path: Path
) -> None:
    """In the hierarchical style ([sets] style = "hierarchical")."""
    (tmp_path / "sets.json").write_text(
        json.dumps({"sets": [{"spec": "com_1:col_5", "name": "Articles"}]})
    )
    write_jsonl(tmp_path / "r.jsonl", [record("1", sets=["col_5"]), record("2", sets=["col_9"])])
    load_into(empty_database_url, tmp_path, set_style="hierarchical")
    client = make_app(empty_database_url).test_client()
    root = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc&set=com_1"))
    assert [
        h.findtext("oai:setSpec", namespaces=NS) for h in root.iterfind(".//oai:header", NS)
    ] == ["com_1:col_5"]
    assert (
        error_codes(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc&set=col_9")) == []
    )


@pytest.mark.same_on_every_store
def test_cli_delete_takes_the_oai_identifier(database_url: str, tmp_path: Path) -> None:
    """`delete` takes the identifier harvesters see; one of another repository identifier
    (say, the sample's, after a change of identifier) is refused, nothing deleted."""
    config = tmp_path / "oaipmh.toml"
    config.write_text('[repository]\nidentifier = "oai.muster-university.de"\n')
    env = {"OAIPMH_DATABASE_URL": database_url, "OAIPMH_CONFIG": str(config)}
    foreign = run_cli("delete", "10722/212116", "oai:repository.example.org:10722/212116", env=env)
    assert foreign.returncode == 1 and "Traceback" not in foreign.stderr
    assert foreign.stderr.strip() == (
        "Error: oai:repository.example.org:10722/212116 is an OAI identifier of "
        "repository.example.org, not of this repository (oai.muster-university.de); "
        "nothing was deleted"
    )
    assert "10722/212116" not in {
        i.rsplit(":", 1)[1] for i in oai_identifiers(database_url, deleted=True)
    }
    done = run_cli("delete", "oai:oai.muster-university.de:10722/212116", env=env)
    assert done.returncode == 0, done.stderr
    assert "Deleted 1 record(s)" in done.stdout
    assert "10722/212116" in {
        i.rsplit(":", 1)[1] for i in oai_identifiers(database_url, deleted=True)
    }


def test_cli_delete_and_stats(database_url: str) -> None:
    env = {"OAIPMH_DATABASE_URL": database_url}
    unknown = run_cli("delete", "10722/212116", "10722/0", env=env)
    assert unknown.returncode != 0 and "delete: record 10722/0: no such record" in unknown.stderr
    assert "nothing was deleted, the store is unchanged" in unknown.stderr
    assert "10722/212116" not in {
        i.rsplit(":", 1)[1] for i in oai_identifiers(database_url, deleted=True)
    }
    done = run_cli("delete", "10722/212116", env=env)
    assert done.returncode == 0 and "Deleted 1 record(s)" in done.stdout
    # The OAI identifier served names the same record: already deleted now.
    again = run_cli("delete", "oai:repository.example.org:10722/212116", env=env)
    assert again.returncode == 0, again.stderr
    assert "Deleted 0 record(s); 1 already deleted." in again.stdout
    client = make_app(database_url).test_client()
    header = tree(
        client.get(
            "/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:10722/212116"
        )
    ).find(".//oai:header", NS)
    assert header.get("status") == "deleted"
    specs = [s.text for s in header.findall("oai:setSpec", NS)]
    assert specs == ["com_10722_1", "col_10722_5"]
    stats = run_cli("stats", env=env)
    assert stats.returncode == 0
    total = len(oai_identifiers(database_url))
    deleted = len(oai_identifiers(database_url, deleted=True))
    assert f"records: {total} ({deleted} deleted)" in stats.stdout
    assert "earliest datestamp: 2014-" in stats.stdout
    assert "set col_10722_5: " in stats.stdout


def test_cli_delete_of_an_id_no_record_can_have_is_no_such_record(database_url: str) -> None:
    """An argument the command line could not decode (bytes not UTF-8, which Python hands
    on as lone surrogates) or one with a NUL is an unknown record, not a traceback."""
    before = everything(database_url)
    for odd in ("10722/\udcff", "\ud800", "10722/1\x00"):
        ran = run_cli("delete", odd, env={"OAIPMH_DATABASE_URL": database_url})
        assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr
        assert ": no such record" in ran.stderr
        assert "nothing was deleted, the store is unchanged" in ran.stderr
    assert everything(database_url) == before


def load_command(url: str, *args: str) -> Ran:
    """`oaipmh-server load ARGS` into the store at `url`, in process (as run_cli runs it)."""
    return invoke("load", *args, env={"OAIPMH_DATABASE_URL": url})


def refused_usage(url: str, *args: str) -> str:
    """The last line of a `load` refused as a usage error: exit status 2, no traceback."""
    ran = load_command(url, *args)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    return ran.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (("",), "PATHS: an empty path names no file (an unset variable?); nothing was loaded"),
        (("--changes", "", "records.jsonl"),
         "--changes: an empty path names no file (an unset variable?); nothing was loaded"),
    ],
)  # fmt: skip
def test_an_empty_path_is_refused_not_read_as_the_current_folder(
    empty_database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: tuple[str, ...],
    refusal: str,
) -> None:
    """`load "$EXPORT"` with the variable unset loaded the folder it was run in (and with
    --sync, withdrew what that folder lacks); `--changes ""` failed only once the load had
    committed."""
    (tmp_path / "seed").mkdir()
    load_into(empty_database_url, write_jsonl(tmp_path / "seed" / "s.jsonl", [record("seed")]))
    before = everything(empty_database_url)
    monkeypatch.chdir(tmp_path)
    write_jsonl(tmp_path / "records.jsonl", [record("10722/1")])
    assert refused_usage(empty_database_url, *args) == f"Error: {refusal}"
    assert everything(empty_database_url) == before


@pytest.mark.parametrize("named", ["records.jsonl", "./records.jsonl", "{tmp}/records.jsonl"])
def test_changes_written_over_a_file_being_loaded_are_refused(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, named: str
) -> None:
    """`--changes FILE` naming one of the files being loaded (a slip of the hand, however
    spelt) would overwrite the export with the list of changes once the load commits: it
    is refused before anything is read, and the export and the store stay as they were."""
    (tmp_path / "seed").mkdir()
    load_into(empty_database_url, write_jsonl(tmp_path / "seed" / "s.jsonl", [record("seed")]))
    monkeypatch.chdir(tmp_path)
    export = write_jsonl(tmp_path / "records.jsonl", [record("10722/1")])
    held = export.read_bytes()
    before = everything(empty_database_url)
    changes = named.format(tmp=tmp_path)
    assert refused_usage(empty_database_url, "--changes", changes, "records.jsonl") == (
        f"Error: --changes {changes}: is a file being loaded, which it would overwrite; "
        "nothing was loaded"
    )
    assert export.read_bytes() == held
    assert everything(empty_database_url) == before


def test_changes_written_into_a_folder_being_loaded_are_refused(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Nor may the list of changes go into a folder being loaded: it would overwrite an
    export there, or be found there by the next load of that folder."""
    (tmp_path / "seed").mkdir()
    load_into(empty_database_url, write_jsonl(tmp_path / "seed" / "s.jsonl", [record("seed")]))
    (tmp_path / "export").mkdir()
    write_jsonl(tmp_path / "export" / "records.jsonl", [record("10722/1")])
    before = everything(empty_database_url)
    changes = str(tmp_path / "export" / "changes.txt")
    assert refused_usage(empty_database_url, "--changes", changes, str(tmp_path / "export")) == (
        f"Error: --changes {changes}: is inside {tmp_path / 'export'}, a folder being loaded; "
        "nothing was loaded"
    )
    assert not (tmp_path / "export" / "changes.txt").exists()
    assert everything(empty_database_url) == before


def test_changes_beside_a_path_that_is_a_link_loop_is_the_load_s_problem(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Found by fuzzing the command line: a path to load that is a symbolic link loop made
    the check of --changes against the paths a traceback (Python 3.11's Path.resolve raises
    RuntimeError for a loop); the load names it as it does without --changes."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    changes = tmp_path / "changes.txt"
    result = load_command(empty_database_url, "--changes", str(changes), str(loop))
    assert result.returncode == 1
    assert f"{loop}: cannot read the file: Too many levels of symbolic links" in result.stderr
    assert "Traceback" not in result.stderr
    assert not changes.exists()


def test_changes_to_a_pipe_are_refused_before_the_load(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Found by fuzzing the command line: `--changes` naming a pipe or device had the list
    renamed over it once the load committed (`--changes /dev/null`, run as root, made
    /dev/null a regular file). It is refused before anything is loaded; `-` writes the
    list to standard output."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    export = write_jsonl(tmp_path / "records.jsonl", [record("10722/1")])
    result = load_command(empty_database_url, "--changes", str(pipe), str(export))
    assert (result.returncode, result.stderr) == (
        1,
        f"Error: --changes {pipe}: not a file but a pipe, device or socket "
        "(- writes to standard output); nothing was loaded\n",
    )
    assert pipe.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "records.jsonl"]


def test_changes_to_a_link_loop_replace_the_link(empty_database_url: str, tmp_path: Path) -> None:
    """Found by fuzzing the command line: `--changes` naming a symbolic link loop was a
    traceback (Path.resolve's RuntimeError on Python 3.11); the list is renamed over the
    link, as over any link named."""
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    export = write_jsonl(tmp_path / "records.jsonl", [record("10722/1")])
    result = load_command(empty_database_url, "--changes", str(loop), str(export))
    assert result.returncode == 0, result.stderr
    assert loop.read_text("utf-8") == "added 10722/1\n"


def test_a_record_repeated_after_another_problem_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a load has found a problem it writes nothing more, only reads on to report every
    problem; a record found twice after that is still named by its id, not `record ?`, with
    worker processes or without."""
    from oaipmh_server.ingest import workers

    monkeypatch.setattr(workers, "CHUNK_BYTES", 600)  # many chunks from a small file
    records: list[Any] = [record(str(n)) for n in range(30)]
    records[20] = record("20", "the 21st of July")
    path = write_jsonl(tmp_path / "r.jsonl", [*records, record("8")])
    lines = path.read_text("utf-8").splitlines(keepends=True)
    lines[4] = "{not json\n"
    path.write_text("".join(lines), "utf-8")
    for count in (0, 2):
        url = sqlite_url(tmp_path / f"w{count}.sqlite3")
        problems = refused_problems(url, path, clock=lambda: T1, workers=count)
        assert len(problems) == 3, problems
        assert problems[2] == (
            f"{path}:9: record 8: the same record again at {path}:31: a load holds each record once"
        )
