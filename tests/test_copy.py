"""`oaipmh-server copy TARGET`: a store moved to another database (from SQLite to
PostgreSQL, as a repository grows, or back) keeps what harvesters hold it to: every
record's datestamp, its tombstone, its sets and stored formats, and the token secret, so
a harvest begun on the old database goes on, with its token, on the new one."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import create_engine, select, update
from sqlalchemy.pool import NullPool

from oaipmh_server.packing import unpack_rows
from oaipmh_server.store import SqlStore, copying
from oaipmh_server.store.copying import TABLES
from oaipmh_server.store.schema import meta_table, records_table

from .cli import invoke
from .conftest import LOADED, Databases, load_into, make_app
from .db import everything, fetch, stored_fields
from .oai import NS, token, tree
from .test_hostile_exports import record, write_jsonl

BACKENDS = [("sqlite", "postgresql"), ("postgresql", "sqlite"), ("sqlite", "sqlite")]


def kept_meta(url: str) -> dict[str, str]:
    rows = fetch(url, select(meta_table.c.key, meta_table.c.value))
    return {key: value for key, value in rows if key != "schema_written_by"}


@pytest.mark.parametrize(("source_backend", "target_backend"), BACKENDS)
def test_a_copy_serves_what_the_store_served_and_a_harvest_goes_on_across_it(
    databases: Databases,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    source_backend: str,
    target_backend: str,
) -> None:
    source = databases.samples(source_backend, request)
    # A tombstone dated a day after the samples' load: dated now (`delete`), it was in the
    # lists of whichever store was harvested a second later, and not of the other (the
    # list cut-off is a second before now), and the test failed one run in a few.
    gone = write_jsonl(tmp_path / "gone.jsonl", [{"id": "10722/212116", "deleted": True}])
    load_into(source, gone, clock=lambda: LOADED + timedelta(days=1))
    before = make_app(source, page_size=7, token_secret="").test_client()
    first = tree(before.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))  # stores a secret
    target = databases.bare(target_backend, request)

    copied = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})

    assert copied.returncode == 0, copied.stderr
    counted = {table.name: len(fetch(source, select(table))) for table in TABLES}
    assert copied.stdout == (
        f"Copied 50 records ({counted['memberships']} set memberships, "
        f"{counted['fragments']} stored formats, {counted['files']} files), "
        f"{counted['sets']} sets and the store's own {len(kept_meta(source))} values "
        f"(counts, marks, token secret) into {target}.\n"
    )
    assert everything(target) == everything(source)
    assert kept_meta(target) == kept_meta(source)
    assert kept_meta(target)["token_secret"]
    assert served(target) == served(source)
    # The source's token, handed out before the copy, goes on on the copy, and the pages
    # the copy serves after it are the ones the source serves.
    resumed = {"verb": "ListRecords", "resumptionToken": token(first).text}
    after = make_app(target, page_size=7, token_secret="").test_client()
    assert pages_from(after, resumed) == pages_from(before, resumed)


def served(url: str) -> list[bytes]:
    """What a whole harvest of the store serves, ListRecords then ListSets, page by page
    (pages_from)."""
    client = make_app(url, page_size=7, token_secret="").test_client()
    return pages_from(client, {"verb": "ListRecords", "metadataPrefix": "oai_dc"}) + pages_from(
        client, {"verb": "ListSets"}
    )


def pages_from(client: Any, query: dict[str, str]) -> list[bytes]:
    """The pages of a list from `query` to its end, without what differs from one request
    to the next (the responseDate, the tokens' own text and expiry)."""
    pages: list[bytes] = []
    while True:
        root = tree(client.get("/oai", query_string=query))
        assert root.find("oai:error", NS) is None, etree.tostring(root)
        root.find("oai:responseDate", NS).text = ""
        root.find("oai:request", NS).attrib.pop("resumptionToken", None)
        element = token(root)
        following = None if element is None else element.text
        if element is not None:  # its harvest's id is new in each list, its expiry is now's
            element.text = ""
            element.attrib.pop("expirationDate", None)
        pages.append(etree.tostring(root))
        if not following:
            return pages
        query = {"verb": query["verb"], "resumptionToken": following}


def test_a_target_that_holds_records_is_refused_and_left_as_it_was(
    databases: Databases, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source = databases.samples("sqlite", request)
    target = databases.empty("sqlite", request)
    load_into(target, write_jsonl(tmp_path / "one.jsonl", [record("other/1")]))
    before = everything(target), kept_meta(target)

    refused = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})

    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: nothing was copied: the target already holds 1 record(s): copy into a "
        "database with no records (a new one)\n"
    )
    assert (everything(target), kept_meta(target)) == before


def test_fields_kept_as_json_text_before_revision_0003_are_copied_as_the_target_keeps_them(
    databases: Databases, request: pytest.FixtureRequest
) -> None:
    """A record's fields written before revision 0003 are JSON text. PostgreSQL's column is
    bytea, so they go there as bytes; SQLite's keeps them as the text they were, and the
    copy's rows are the source's, row for row (they were made bytes there too)."""
    source = databases.samples("sqlite", request)
    engine = create_engine(source, poolclass=NullPool)
    with engine.begin() as conn:
        local_id, packed = conn.execute(
            select(records_table.c.local_id, records_table.c.fields)
        ).first()
        text = json.dumps([list(row) for row in unpack_rows(packed)])
        conn.execute(
            update(records_table).where(records_table.c.local_id == local_id).values(fields=text)
        )
    engine.dispose()
    for backend in ("sqlite", "postgresql"):
        target = databases.bare(backend, request)
        assert invoke("copy", target, env={"OAIPMH_DATABASE_URL": source}).returncode == 0
        assert stored_fields(target, local_id) == stored_fields(source, local_id)
        if backend == "sqlite":
            assert everything(target) == everything(source)


def test_the_store_is_not_copied_onto_itself(
    databases: Databases, request: pytest.FixtureRequest
) -> None:
    source = databases.samples("sqlite", request)
    refused = invoke("copy", source, env={"OAIPMH_DATABASE_URL": source})
    assert refused.returncode == 1
    assert "nothing was copied: the target is this store's own database" in refused.stderr


def test_the_store_is_not_copied_onto_itself_under_another_spelling_of_its_url(
    databases: Databases, request: pytest.FixtureRequest
) -> None:
    """The same file named another way (an SQLite URI filename, a relative path): an empty
    store said "Copied 0 records" onto itself, a full one that it "already holds" them."""
    for source in (databases.empty("sqlite", request), databases.samples("sqlite", request)):
        path = source.removeprefix("sqlite:///")
        refused = invoke("copy", f"sqlite:///file:{path}?uri=true",
                         env={"OAIPMH_DATABASE_URL": source})  # fmt: skip
        assert refused.returncode == 1
        assert refused.stderr == (
            "Error: nothing was copied: the target is this store's own database: name another one\n"
        )


def test_a_postgresql_store_is_not_copied_onto_itself_through_another_connection(
    databases: Databases, request: pytest.FixtureRequest
) -> None:
    """The same PostgreSQL database named another way (its server's socket folder instead
    of its TCP address, as `localhost` against `127.0.0.1` would be): an empty store said
    "Copied 0 records" onto itself, a full one that it "already holds" them."""
    cluster = request.getfixturevalue("postgres")
    for source in (
        databases.empty("postgresql", request),
        databases.samples("postgresql", request),
    ):
        name = source.rsplit("/", 1)[1]
        elsewise = (
            f"postgresql+psycopg://postgres@/{name}?host={cluster.folder}&port={cluster.port}"
        )
        refused = invoke("copy", elsewise, env={"OAIPMH_DATABASE_URL": source})
        assert refused.returncode == 1
        assert refused.stderr == (
            "Error: nothing was copied: the target is this store's own database: name another one\n"
        )


def test_a_load_committed_during_the_copy_fails_it_whole(
    databases: Databases,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The copy reads one snapshot of the source: a load that commits meanwhile would be in
    the source and not in the copy, so the copy is refused and the target left empty."""
    source = databases.samples("sqlite", request)
    target = databases.bare("sqlite", request)
    copy_rows = copying._copy_rows

    def with_a_load_meanwhile(reading: Any, writing: Any, table: Any) -> int:
        if table.name == "records":
            load_into(source, write_jsonl(tmp_path / "late.jsonl", [record("late/1")]))
        return copy_rows(reading, writing, table)

    monkeypatch.setattr(copying, "_copy_rows", with_a_load_meanwhile)
    refused = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})

    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: nothing was copied: a load committed to the source during the copy, and the "
        "copy does not hold it: stop the loads (and what starts them), then copy again\n"
    )
    assert everything(target) == []


def test_a_list_begun_on_the_source_during_the_copy_leaves_its_cut_off_in_the_copy(
    databases: Databases, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server left running on the source during the copy (as docs/backups.md allows)
    hands out a cut-off with each new list and raises the store's mark to it, after the
    copy's snapshot was read. The copy must keep that mark: a later load into the copy is
    dated no earlier than it, or a harvester going on from= that list's responseDate on
    the new database would miss what the load changed."""
    source = databases.samples("sqlite", request)
    target = databases.bare("postgresql", request)
    handed_out = datetime(2030, 1, 1, tzinfo=UTC)  # a list's `now`, past anything stored
    copy_rows = copying._copy_rows

    def with_a_list_meanwhile(reading: Any, writing: Any, table: Any) -> int:
        if table.name == "records":
            store = SqlStore(source)
            try:
                store.list_cutoff(handed_out)
            finally:
                store.close()
        return copy_rows(reading, writing, table)

    monkeypatch.setattr(copying, "_copy_rows", with_a_list_meanwhile)
    assert invoke("copy", target, env={"OAIPMH_DATABASE_URL": source}).returncode == 0
    copied = SqlStore(target)
    try:
        # A list begun a day earlier by the new database's clock is cut off no earlier
        # than the one the source handed out (a load is dated after it likewise).
        earlier = copied.list_cutoff(handed_out - timedelta(days=1))
        assert earlier == handed_out - timedelta(seconds=1)
    finally:
        copied.close()


@pytest.mark.parametrize("target", ["sqlite://", "sqlite:///:memory:"])
def test_a_target_in_memory_is_refused_not_copied_into_nothing(
    databases: Databases, request: pytest.FixtureRequest, target: str
) -> None:
    """A database in memory is gone when the command ends: a copy into it said "Copied 50
    records" and exit status 0, and nothing was anywhere."""
    source = databases.samples("sqlite", request)
    refused = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == (
        f"Error: TARGET: {target!r} is an SQLite database in memory, gone when the command "
        "ends: the copy would be lost; name a file (sqlite:////var/lib/oai/oai.sqlite3) or a "
        "PostgreSQL database\n"
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ('connection to server at "127.0.0.1", port 5432 failed: FATAL:  password '
         'authentication failed for user "oai"',
         "password authentication failed (the password in TARGET's URL, or PGPASSWORD or "
         "~/.pgpass)"),
        ("connection to server failed: fe_sendauth: no password supplied",
         "the server asks for a password (give it in TARGET's URL, "
         "postgresql+psycopg://USER:PASSWORD@HOST/DB, or in PGPASSWORD or ~/.pgpass)"),
    ],
)  # fmt: skip
def test_a_target_password_refused_names_where_the_target_takes_it_from(
    databases: Databases,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    reason: str,
) -> None:
    """The configured store's password is OAIPMH_DATABASE_PASSWORD; TARGET's is not: it
    is in its URL (or libpq's PGPASSWORD, ~/.pgpass). Told to set OAIPMH_DATABASE_PASSWORD,
    the operator did, and was told the same again."""
    from sqlalchemy.exc import OperationalError

    from oaipmh_server.store import sqlstore

    source = databases.samples("sqlite", request)
    target = "postgresql+psycopg://oai@127.0.0.1/oai"
    migrate = sqlstore.migrate

    def refused_on_postgresql(engine: Any, on_wait: Any) -> Any:
        if engine.dialect.name == "postgresql":
            raise OperationalError(None, None, Exception(answer))
        return migrate(engine, on_wait)

    monkeypatch.setattr(sqlstore, "migrate", refused_on_postgresql)
    refused = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})
    assert refused.returncode == 1
    assert refused.stderr == (
        "Error: TARGET: cannot connect to PostgreSQL at 127.0.0.1:5432 (database oai, user "
        f"oai): {reason}\n"
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_copy_while_a_load_runs_is_refused_naming_the_load(
    databases: Databases, request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    """A load under way when the copy starts commits, as a rule, after the copy read the
    store: the copy said "Copied", the operator moved the server to the copy, and the
    load's changes were in the old database only. The copy is refused while a load runs."""
    from .test_backups import held_load, new_records

    source = databases.samples(backend, request)
    target = databases.bare("sqlite", request)
    with held_load(source, new_records(tmp_path / "new.jsonl", 1200)):
        refused = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})
    assert refused.returncode == 1
    assert refused.stderr.startswith("Error: nothing was copied: a load is running (since ")
    assert refused.stderr.endswith("): let it end (and stop what starts loads), then copy again\n")
    assert len(refused.stderr.splitlines()) == 1
    assert everything(target) == []


def test_a_copy_interrupted_says_nothing_was_copied_and_a_copy_again_is_whole(
    databases: Databases, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C (SIGINT) half-way: "Aborted!" left the operator to wonder whether TARGET
    now held half the records, and whether to empty it before copying again."""
    source = databases.samples("sqlite", request)
    target = databases.bare("postgresql", request)
    copy_rows = copying._copy_rows

    def interrupted(reading: Any, writing: Any, table: Any) -> int:
        if table.name == "memberships":  # the records are written by then
            raise KeyboardInterrupt
        return copy_rows(reading, writing, table)

    with monkeypatch.context() as patched:
        patched.setattr(copying, "_copy_rows", interrupted)
        stopped = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})
    assert stopped.returncode == 1
    assert stopped.stderr == (
        "Error: interrupted: nothing was copied, the target holds no records: copy again\n"
    )
    assert fetch(target, select(records_table.c.local_id)) == []

    again = invoke("copy", target, env={"OAIPMH_DATABASE_URL": source})
    assert again.returncode == 0, again.stderr
    assert everything(target) == everything(source)
