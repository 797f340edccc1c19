"""The store: its migrations build the schema the models describe, and page queries stay
on their indexes (a page deep in a harvest costs what the first one costs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import MetaData, create_engine, event, insert, select, text
from sqlalchemy.engine import Engine

from oaipmh_server.config import load_settings
from oaipmh_server.errors import StoreUnavailable
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import delete_records
from oaipmh_server.ingest.sync import Sync
from oaipmh_server.record_source import Selection
from oaipmh_server.store import (
    SQLITE_PAGE_SIZE,
    RecordWrite,
    SqlStore,
    _page_query,
    _shape,
    pack_fields,
)
from oaipmh_server.store.meta import stored_counts
from oaipmh_server.store.schema import memberships_table, meta_table, metadata, records_table

from .conftest import SAMPLES, load_into, make_app, sqlite_url
from .db import assert_set_sizes_kept, everything, fetch, set_sizes
from .oai import NS, tree
from .test_versions import HEAD as HEAD_REVISION

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour


def test_migrations_build_the_schema_of_the_tables(bare_database_url: str) -> None:
    engine = create_engine(bare_database_url)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        differences = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert differences == []


def test_a_migrated_database_opens_and_keeps_its_secret(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "db.sqlite3")
    first = SqlStore(url)
    secret = first.token_secret()
    first.close()
    second = SqlStore(url)
    assert second.token_secret() == secret
    second.close()


def test_a_new_sqlite_store_has_large_pages_and_an_existing_one_keeps_its_own(
    tmp_path: Path,
) -> None:
    import sqlite3

    def page_size(path: Path) -> int:
        with sqlite3.connect(path) as conn:
            return int(conn.execute("PRAGMA page_size").fetchone()[0])

    SqlStore(sqlite_url(tmp_path / "new.sqlite3")).close()
    assert page_size(tmp_path / "new.sqlite3") == SQLITE_PAGE_SIZE
    with sqlite3.connect(tmp_path / "old.sqlite3") as conn:
        conn.execute("CREATE TABLE t (x)")  # SQLite's default page size, 4096
    SqlStore(sqlite_url(tmp_path / "old.sqlite3")).close()
    assert page_size(tmp_path / "old.sqlite3") == 4096


def test_a_new_sqlite_store_opens_while_another_process_is_creating_it(tmp_path: Path) -> None:
    """Two processes started together on a database that does not exist yet (two loads,
    or a load and a server): the one that comes second waits for the first, instead of
    failing because SQLite would not switch the new file to WAL mode under a lock.

    The lock is released only once the store has been refused and has tried again: every
    statement of its connections is traced, and a second `PRAGMA journal_mode` is the
    sign that it is waiting. A store that gave up at the first refusal fails the test."""
    import sqlite3
    import threading

    path = tmp_path / "new.sqlite3"
    first = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    first.execute("BEGIN IMMEDIATE")  # what a process creating the schema holds
    wal_attempts: list[str] = []
    waiting = threading.Event()

    def traced(statement: str) -> None:
        if statement.startswith("PRAGMA journal_mode"):
            wal_attempts.append(statement)
            if len(wal_attempts) == 2:
                waiting.set()

    def connect(dialect: Any, record: Any, cargs: Any, cparams: Any) -> sqlite3.Connection:
        connection = sqlite3.connect(*cargs, **cparams)
        connection.set_trace_callback(traced)
        return connection

    opened: dict[str, Any] = {}

    def open_store() -> None:
        try:
            opened["store"] = SqlStore(sqlite_url(path))
        except BaseException as e:  # reported by the test's thread
            opened["error"] = e
        finally:
            waiting.set()

    event.listen(Engine, "do_connect", connect)
    try:
        opening = threading.Thread(target=open_store)
        opening.start()
        assert waiting.wait(timeout=60), "the store neither retried nor failed in 60 s"
        assert "error" not in opened, f"the store gave up on a locked new database: {opened}"
        first.execute("ROLLBACK")
        opening.join(timeout=60)
    finally:
        event.remove(Engine, "do_connect", connect)
        first.close()
    assert "error" not in opened, opened
    store = opened["store"]
    assert store.count_all() == 0
    store.close()


def test_a_store_of_the_first_schema_is_upgraded_with_its_data(
    bare_database_url: str, tmp_path: Path
) -> None:
    """A store made by revision 0001, holding a record: opening it upgrades it in place,
    nothing is lost (no memberships or fragments cascade away), the record is served
    with a header rendered on request, its fields (stored uncompressed then) are still
    read, and the next load stores its header."""
    url = bare_database_url
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    stamp = datetime(2015, 7, 21, 2, 23, 32)  # naive UTC, as the store keeps it
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        tables = MetaData()
        tables.reflect(conn)
        fields = (
            '[["dc.title", "Old", null], ["dc.date.accessioned", "2015-07-21T02:23:32Z", null]]'
        )
        conn.execute(insert(tables.tables["records"]).values(
            local_id="1", datestamp=stamp, deleted=False, set_specs="com_1",
            fields=fields, content_hash="0" * 64, accessioned=stamp,
        ))  # fmt: skip
        conn.execute(insert(tables.tables["memberships"]).values(
            set_spec="com_1", local_id="1", datestamp=stamp,
        ))  # fmt: skip
        conn.execute(insert(tables.tables["fragments"]).values(
            local_id="1", prefix="oai_dc", version="old", body=b"<old/>",
        ))  # fmt: skip
        conn.execute(insert(tables.tables["sets"]).values(spec="com_1", name="One"))
    engine.dispose()

    client = make_app(url).test_client()
    root = tree(client.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc&set=com_1"))
    assert [e.text for e in root.iterfind(".//oai:identifier", NS)] == [
        "oai:repository.example.org:1"
    ]
    assert fetch(url, select(records_table.c.header)) == [(None,)]
    qdc = tree(
        client.get("/oai?verb=GetRecord&metadataPrefix=qdc&identifier=oai:repository.example.org:1")
    )
    assert [e.text for e in qdc.iterfind(".//dc:title", NS)] == ["Old"]

    (tmp_path / "sets.json").write_text('{"sets": [{"spec": "com_1", "name": "One"}]}')
    load_into(url, tmp_path / "sets.json")
    header = fetch(url, select(records_table.c.header))[0][0]
    assert header is not None and b"oai:repository.example.org:1" in header
    assert len(fetch(url, select(memberships_table.c.local_id))) == 1


def fragment_storage(url: str) -> str:
    """How PostgreSQL stores `fragments.body`: 'x' compressed (EXTENDED, the default for
    bytea), 'e' uncompressed out of line (EXTERNAL)."""
    query = text(
        "SELECT attstorage FROM pg_attribute"
        " WHERE attrelid = 'fragments'::regclass AND attname = 'body'"
    )
    return str(fetch(url, query)[0][0])


def stored_uncompressed(url: str, local_id: str) -> bool:
    """Whether a record's stored fragment is kept as it is (its stored size is its length)."""
    query = text(
        "SELECT pg_column_size(body) >= octet_length(body) FROM fragments WHERE local_id = :id"
    ).bindparams(id=local_id)
    return bool(fetch(url, query)[0][0])


def one_record(path: Path, local_id: str, title: str) -> Path:
    record = {"id": local_id, "sets": [], "metadata": [
        {"field": "dc.title", "value": title},
        {"field": "dc.date.accessioned", "value": "2021-04-15T09:30:00Z"},
    ]}  # fmt: skip
    path.write_text(json.dumps([record]), "utf-8")
    return path


@pytest.mark.parametrize("backend", ["postgresql"])  # a PostgreSQL column setting
def test_fragments_are_stored_uncompressed_on_postgresql(
    empty_database_url: str, tmp_path: Path
) -> None:
    """Revision 0007: a store at 0006 is migrated to keep its fragments uncompressed (a
    page no longer decompresses a hundred of them); a fragment stored compressed before
    is served as it was until a load rewrites it, and the ones a load writes are stored
    as they are. A new store is made that way from the start."""
    url = empty_database_url
    title = "A title long enough for its fragment to be compressed. " * 60
    load_into(url, one_record(tmp_path / "old.json", "old", title))
    assert fragment_storage(url) == "e"
    assert stored_uncompressed(url, "old")
    engine = create_engine(url)
    config = Config()
    config.set_main_option("script_location", "oaipmh_server.store:migrations")
    with engine.begin() as conn:  # the store as revision 0006 left it
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
        conn.execute(text("UPDATE fragments SET body = body || ''::bytea"))  # stored anew
    engine.dispose()
    assert fragment_storage(url) == "x"
    assert not stored_uncompressed(url, "old")

    store = SqlStore(url)  # opening it migrates it
    assert (store.migration.before, store.migration.after) == ("0006", HEAD_REVISION)
    store.close()
    assert fragment_storage(url) == "e"
    assert not stored_uncompressed(url, "old")  # as it was, until a load rewrites it
    client = make_app(url).test_client()
    identifier = "oai:repository.example.org:old"
    root = tree(client.get(f"/oai?verb=GetRecord&metadataPrefix=oai_dc&identifier={identifier}"))
    assert [e.text for e in root.iterfind(".//dc:title", NS)] == [title]

    load_into(url, one_record(tmp_path / "new.json", "new", title))
    assert stored_uncompressed(url, "new")
    load_into(url, one_record(tmp_path / "changed.json", "old", title + "Changed."))
    assert stored_uncompressed(url, "old")


@pytest.mark.parametrize("backend", ["postgresql"])  # SQLite does not bound a VARCHAR
def test_a_bulk_write_the_database_refuses_leaves_the_store_as_it_was(database_url: str) -> None:
    """A row PostgreSQL refuses in a load's bulk write (COPY there) is the store's error,
    StoreUnavailable, never the driver's; the load's transaction is rolled back whole
    (the records written before it in the same load too) and its writer's row goes."""
    before = everything(database_url)
    store = SqlStore(database_url)
    moment = datetime(2030, 1, 1, tzinfo=UTC)

    def written(local_id: str, prefix: str) -> RecordWrite:
        return RecordWrite(local_id=local_id, datestamp=moment, deleted=False, set_specs=(),
                           fields=pack_fields(()), content_hash="0" * 64, accessioned=None,
                           fragments={prefix: ("1", b"<x/>")}, header=b"<header/>",
                           header_version="1")  # fmt: skip

    with pytest.raises(StoreUnavailable), store.loading(lambda: moment) as tx:
        tx.write([written("first", "oai_dc")], replacing=())
        tx.write([written("second", "p" * 65)], replacing=())  # prefix is VARCHAR(64)
    assert store.writers() == []
    store.close()
    assert everything(database_url) == before


def plan(database_url: str, selection: Selection, kind: str = "records") -> str:
    store = SqlStore(database_url)
    query = _page_query(kind, _shape(selection), kind != "count")
    compiled = query.compile(store.engine)
    # The plan does not depend on the values bound, only on the query's shape.
    unbound = (None,) * len(compiled.positiontup or ())
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", unbound).all()
    store.close()
    return "\n".join(row[-1] for row in rows)


UNTIL = datetime(2030, 1, 1, tzinfo=UTC)
FROM = datetime(2016, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("backend", ["sqlite"])  # EXPLAIN QUERY PLAN is SQLite's
@pytest.mark.parametrize("kind", ["records", "headers"])
@pytest.mark.parametrize("from_", [None, FROM])
def test_page_query_uses_the_datestamp_index(
    database_url: str, kind: str, from_: datetime | None
) -> None:
    text = plan(database_url, Selection(None, from_, UNTIL), kind)
    assert "ix_records_datestamp_id" in text
    assert "TEMP B-TREE" not in text


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("kind", ["records", "headers"])
@pytest.mark.parametrize("from_", [None, FROM])
def test_set_page_query_uses_the_membership_index(
    database_url: str, kind: str, from_: datetime | None
) -> None:
    text = plan(database_url, Selection("com_10722_1", from_, UNTIL), kind)
    assert "ix_memberships_set_datestamp_id" in text
    assert "TEMP B-TREE" not in text


def test_a_write_counts_the_deleted_records_on_an_index_not_the_table(tmp_path: Path) -> None:
    """Each write keeps the counts /metrics reports (records, deleted) in the transaction
    that commits it. Counting the deleted ones by reading every row made a load's final
    phase grow with the store (41 s of each load at 8,000,000 records): they are counted
    on an index of the deleted records alone, and the counts stay right."""
    url = sqlite_url(tmp_path / "oai.sqlite3")
    load_into(url, SAMPLES)
    engine = create_engine(url)
    with engine.connect() as conn:
        statements: list[tuple[str, Any]] = []

        def sent(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            statements.append((statement, parameters))

        event.listen(conn, "before_cursor_execute", sent)
        total, deleted = stored_counts(conn)
        event.remove(conn, "before_cursor_execute", sent)
        plans = [
            " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {s}", p))
            for s, p in statements
        ]
        counted = conn.execute(
            select(records_table.c.local_id, records_table.c.deleted).order_by(
                records_table.c.local_id
            )
        ).all()
    engine.dispose()
    assert (total, deleted) == (len(counted), sum(bool(d) for _, d in counted))
    assert deleted > 0
    assert plans and not [plan for plan in plans if "SCAN records" in plan and "INDEX" not in plan]
    assert any("ix_records_deleted" in plan for plan in plans), plans


def listed(store: SqlStore, selection: Selection) -> int:
    """The records a list of `selection` shows, read as one page."""
    return len(store.list_headers(selection, None, 1_000_000, "any"))


def statements_sent(store: SqlStore) -> list[str]:
    sent: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    return sent


def test_a_lists_size_is_what_its_pages_show_for_every_selection(database_url: str) -> None:
    """completeListSize (and noRecordsMatch, when it is 0) is the number of records the
    list's pages show, whether the list is the whole store (a full harvest: the count the
    writes keep) or any part of it (counted on its index): from the earliest datestamp or
    later, until the latest or earlier, a set, deleted records included."""
    store = SqlStore(database_url)
    datestamps = sorted(row[0] for row in fetch(database_url, select(records_table.c.datestamp)))
    earliest, middle, latest = datestamps[0], datestamps[len(datestamps) // 2], datestamps[-1]
    assert earliest < middle < latest and fetch(
        database_url, select(records_table.c.deleted)
    ).count((True,))
    far = datetime(2100, 1, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    selections = [
        Selection(None, None, far),
        Selection(None, None, latest),
        Selection(None, earliest, latest),
        Selection(None, earliest - second, far),
        Selection(None, earliest + second, far),
        Selection(None, middle, far),
        Selection(None, None, middle),
        Selection(None, None, latest - second),
        Selection(None, None, earliest - second),
        Selection(None, latest + second, far),
        Selection("com_10722_1", None, far),
        Selection("com_10722_1", middle, far),
    ]
    sizes = [store.count_records(selection) for selection in selections]
    assert sizes == [listed(store, selection) for selection in selections]
    assert sizes[0] == len(datestamps) and sizes[-4:-2] == [sizes[-4], 0]
    store.close()


def test_a_whole_lists_size_is_the_count_the_writes_keep(database_url: str) -> None:
    """A full harvest's first page does not count the store row by row for its
    completeListSize (at 1,000,000 records that took 50 ms on SQLite and 150 ms to 2.6 s on
    PostgreSQL, growing with the store): it reads the count the last write kept, with the
    earliest and latest datestamps that show the list is the whole store."""
    store = SqlStore(database_url)
    sent = statements_sent(store)
    whole = Selection(None, None, datetime(2100, 1, 1, tzinfo=UTC))
    size = store.count_records(whole)
    assert sent, "the statements were not seen"
    assert [s for s in sent if "count(" in s.lower()] == []
    assert size == listed(store, whole)
    store.close()


def test_the_health_check_reads_the_count_the_writes_keep(database_url: str) -> None:
    """/healthz, which load balancers and monitors ask every few seconds, answers with the
    record count every write keeps, without counting the store row by row (at 1,000,000
    records that took 11 ms on SQLite and up to seconds on a cold PostgreSQL, each probe)."""
    app = make_app(database_url)
    store = app.extensions["oaipmh"].store
    sent = statements_sent(store)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["records"] == listed(store, Selection(None, None, UNTIL))
    assert sent, "the statements were not seen"
    assert [s for s in sent if "count(" in s.lower()] == []


def test_the_stores_figures_count_no_records(database_url: str) -> None:
    """The home page's and `oaipmh-server stats`' figures (records, deleted, earliest and
    latest datestamps, per set) are right, and the records are not counted for them: the
    counts are the ones every write keeps. Counted in one statement with the earliest and
    latest datestamps, SQLite read every row of the table (377 ms at 1,000,000 records)."""
    store = SqlStore(database_url)
    sent = statements_sent(store)
    stats = store.stats()
    counted = [sql for sql in sent if "count(" in sql.lower() and "FROM records" in sql]
    rows = fetch(database_url, select(records_table.c.datestamp, records_table.c.deleted))
    store.close()
    assert counted == []
    assert (stats.records, stats.deleted) == (len(rows), sum(bool(d) for _, d in rows))
    assert (stats.earliest, stats.latest) == (
        min(d for d, _ in rows).replace(tzinfo=UTC),
        max(d for d, _ in rows).replace(tzinfo=UTC),
    )
    assert stats.sets and all(count > 0 for _, count in stats.sets.values())


def test_a_sets_size_is_the_count_the_writes_keep(database_url: str) -> None:
    """A set's harvest does not count the set's memberships for its first page's
    completeListSize (a set of 250,000 took 16 ms on SQLite, growing with the set): it
    reads the size the last write kept, with the set's earliest and latest datestamps that
    show the list is the whole set."""
    store = SqlStore(database_url)
    sent = statements_sent(store)
    whole_set = Selection("com_10722_1", None, datetime(2100, 1, 1, tzinfo=UTC))
    size = store.count_records(whole_set)
    assert sent, "the statements were not seen"
    assert [s for s in sent if "count(" in s.lower()] == []
    assert size == listed(store, whole_set) > 0
    store.close()


def test_the_home_pages_set_sizes_are_the_ones_the_writes_keep(database_url: str) -> None:
    """The home page and `oaipmh-server stats` show each set's size without counting the
    memberships (115 ms at 1,000,000 records, about 1.2 s at 10,000,000, holding a
    server's worker meanwhile): every write keeps them, as it keeps the store's counts."""
    store = SqlStore(database_url)
    sent = statements_sent(store)
    stats = store.stats()
    store.close()
    assert [sql for sql in sent if "count(" in sql.lower()] == []
    sizes = set_sizes(database_url)
    assert {spec: n for spec, (_, n) in stats.sets.items()} == {
        spec: sizes.get(spec, 0) for spec in stats.sets
    }
    assert sum(n for _, n in stats.sets.values()) > 0


def test_every_write_keeps_the_sets_sizes(database_url: str, tmp_path: Path) -> None:
    """The sizes each write keeps (deleted records included, as a set's list shows them)
    stay the sets' own through a record moved to another set, a record added, a tombstone,
    a --sync load's withdrawals and `delete`."""
    assert_set_sizes_kept(database_url)
    seed = json.loads((SAMPLES / "10722_212116.json").read_text("utf-8"))
    moved = {**seed, "sets": ["col_10722_6"]}
    added = {**seed, "id": "10722/999001", "sets": ["col_10722_20"]}
    gone = {"id": "10722/300001", "deleted": True}
    changes = tmp_path / "changes.jsonl"
    changes.write_text("".join(json.dumps(r) + "\n" for r in (moved, added, gone)), "utf-8")
    before = set_sizes(database_url)
    load_into(database_url, changes)
    assert_set_sizes_kept(database_url)
    after = set_sizes(database_url)
    assert after["col_10722_5"] == before["col_10722_5"] - 1  # moved away; the tombstone stays
    assert after["col_10722_6"] == before["col_10722_6"] + 1
    assert after["col_10722_20"] == before["col_10722_20"] + 1
    load_into(database_url, changes, sync=Sync(allow_deletes=1000))  # the rest withdrawn
    assert_set_sizes_kept(database_url)
    settings = load_settings({"database_url": database_url}, environ={})
    store = SqlStore(database_url)
    delete_records(["10722/999001"], store, settings, build_formats(settings))
    store.close()
    assert_set_sizes_kept(database_url)
    assert set_sizes(database_url)["col_10722_20"] == after["col_10722_20"]


# Loads of a few records, each in some of these sets (a community and its collection, or
# others), live or a tombstone: any sequence of them moves records between sets.
SIZED_SETS = st.lists(st.sampled_from(["col_1_1", "col_1_2", "com_1_9", "col_2_1"]),
                      max_size=2, unique=True)  # fmt: skip
SIZED_LOAD = st.lists(st.tuples(st.integers(0, 5), SIZED_SETS, st.booleans()),
                      min_size=1, max_size=6, unique_by=lambda r: r[0])  # fmt: skip


@settings(max_examples=15, deadline=None)
@given(loads=st.lists(SIZED_LOAD, min_size=1, max_size=4))
def test_the_sizes_kept_follow_any_sequence_of_loads(
    tmp_path_factory: pytest.TempPathFactory, loads: list[list[tuple[int, list[str], bool]]]
) -> None:
    """Whatever a sequence of loads does to the records' sets (moved, added, taken out,
    made tombstones and back), the sizes the last write kept are the sets' sizes."""
    folder = tmp_path_factory.mktemp("sizes")
    url = sqlite_url(folder / "oai.sqlite3")
    for number, load in enumerate(loads):
        path = folder / f"load{number}.jsonl"
        lines = []
        for n, specs, deleted in load:
            metadata = [{"field": "dc.title", "value": f"Record {n}"},
                        {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"}]  # fmt: skip
            record = {"id": f"10722/{n}", "sets": specs, "deleted": deleted}
            lines.append(json.dumps({**record, "metadata": [] if deleted else metadata}))
        path.write_text("\n".join(lines) + "\n", "utf-8")
        load_into(url, path)
        assert_set_sizes_kept(url)


def test_set_sizes_kept_before_another_versions_write_are_counted_again(
    database_url: str,
) -> None:
    """A write by a version that does not keep the sets' sizes (an operator went back to
    it for a while) changes sets without changing the kept sizes: they name the write that
    kept them, and sizes kept by an earlier write than the last are not read but counted,
    until the next write keeps them again."""
    engine = create_engine(database_url)
    with engine.begin() as conn:  # an older version's write: a record leaves its set
        conn.execute(
            text("DELETE FROM memberships WHERE set_spec = 'col_10722_5' AND local_id = :id"),
            {"id": "10722/300001"},
        )
        conn.execute(text("UPDATE meta SET value = 'later' WHERE key = 'last_write'"))
    engine.dispose()
    sizes = set_sizes(database_url)
    store = SqlStore(database_url)
    whole_set = Selection("col_10722_5", None, datetime(2100, 1, 1, tzinfo=UTC))
    assert store.count_records(whole_set) == listed(store, whole_set) == sizes["col_10722_5"]
    assert store.stats().sets["col_10722_5"][1] == sizes["col_10722_5"]
    store.close()


@pytest.mark.parametrize("kept", [None, "", "many 3"])
def test_a_store_without_kept_counts_counts_its_lists(database_url: str, kept: str | None) -> None:
    """A store whose counts are missing (last written before 1.0.0, which began keeping
    them) or not numbers counts its whole list, and /metrics its records, until its next
    write keeps them."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM meta WHERE key = 'counts'"))
        if kept is not None:
            conn.execute(insert(meta_table).values(key="counts", value=kept))
    engine.dispose()
    store = SqlStore(database_url)
    whole = Selection(None, None, datetime(2100, 1, 1, tzinfo=UTC))
    assert store.count_records(whole) == listed(store, whole) > 0
    assert store.figures(datetime.now(UTC)).records == listed(store, whole)  # /metrics too
    assert store.count_all() == listed(store, whole)  # and /healthz
    assert store.stats().records == listed(store, whole)  # and the home page
    store.close()


@pytest.mark.parametrize("backend", ["sqlite"])  # SQLite's trace shows every statement
@pytest.mark.parametrize(("prefix", "reads"), [("oai_dc", 1), ("qdc", 2)])
def test_get_record_reads_a_record_once(database_url: str, prefix: str, reads: int) -> None:
    """GetRecord in a stored format is one statement: the record with its stored
    rendering. A format rendered on request (qdc) reads the record's fields once more,
    for its rendering and for whether it has anything to say of the record."""
    app = make_app(database_url)
    sent: list[str] = []

    @event.listens_for(app.extensions["oaipmh"].store.engine, "connect")
    def _traced(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(sent.append)

    app.extensions["oaipmh"].store.engine.dispose()  # connections opened from now on
    identifier = "oai:repository.example.org:10722/212116"
    query = {"verb": "GetRecord", "metadataPrefix": prefix, "identifier": identifier}
    client = app.test_client()
    client.get("/oai", query_string=query)  # the connection opened, the secret read
    sent.clear()
    response = client.get("/oai", query_string=query)
    assert tree(response).find("oai:GetRecord/oai:record/oai:metadata", NS) is not None
    selects = [s for s in sent if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == reads, selects
    assert len([s for s in selects if "fields" in s]) == reads - 1


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("from_", [None, FROM])
def test_a_sets_size_is_counted_on_the_membership_index_alone(
    database_url: str, from_: datetime | None
) -> None:
    """A set's memberships carry the datestamp: its size needs no look-up of each record
    (that made counting a set of 250,000 records 200 ms instead of 16)."""
    text = plan(database_url, Selection("com_10722_1", from_, UNTIL), "count")
    assert "COVERING INDEX ix_memberships_set_datestamp_id" in text
    assert "records" not in text
