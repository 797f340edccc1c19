"""No change is ever lost: an incremental harvester that polls at any rate, at any moment,
`from=` the responseDate of its previous list, sees every change once it is committed,
with the datestamp the record finally has (store/writes.py says how).

Each race is held open deterministically: a load is stopped after it has written and
dated everything, just before it commits (`before_commit`), while harvests run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from lxml import etree
from sqlalchemy import insert

from oaipmh_server import datestamps
from oaipmh_server.errors import LoadBusy
from oaipmh_server.ingest import load as ingest_load
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import writers_table

from .cli import run_cli
from .conftest import SAMPLES, SECRET, LiveServer, load_into, make_app, refused_problems, sqlite_url
from .db import datestamps as stored_datestamps
from .db import everything
from .oai import NS, identifiers, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

REPO = "oai:repository.example.org:"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
WAIT = 60  # seconds: a bound on every wait for another thread or process, never a pause


class Clock:
    """The repository's clock, moved by the test (the server's and the loads')."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment

    def tick(self, seconds: int = 1) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock(START)
    monkeypatch.setattr(datestamps, "now", moving)
    return moving


def records(count: int, note: str | None = None) -> list[dict[str, Any]]:
    made = []
    for n in range(count):
        metadata = [
            {"field": "dc.title", "value": f"Item {n}", "lang": "en"},
            {"field": "dc.date.accessioned", "value": f"2015-07-{1 + n % 28:02d}T02:23:32Z"},
        ]
        if note:
            metadata.append({"field": "dc.description", "value": note})
        made.append({"id": f"10722/{n}", "sets": ["col_10722_5"], "metadata": metadata})
    return made


def write_jsonl(path: Path, values: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(v) + "\n" for v in values), "utf-8")
    return path


Poll = tuple[str, dict[str, str]]  # (responseDate, {identifier: datestamp})


def poll(get: Callable[[dict[str, str]], etree._Element], since: str | None) -> Poll:
    """One complete incremental ListIdentifiers, as an aggregator polls: from= the previous
    poll's first responseDate, every page through its resumption tokens."""
    query = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
    if since is not None:
        query["from"] = since
    root = get(query)
    first = root.findtext("oai:responseDate", namespaces=NS)
    listed: dict[str, str] = {}
    while True:
        error = root.find("oai:error", NS)
        if error is not None:
            assert error.get("code") == "noRecordsMatch", etree.tostring(error)
            break
        for header in root.iterfind(".//oai:header", NS):
            listed[header.findtext("oai:identifier", namespaces=NS)] = header.findtext(
                "oai:datestamp", namespaces=NS
            )
        token = root.find(".//oai:resumptionToken", NS)
        if token is None or not token.text:
            break
        root = get({"verb": "ListIdentifiers", "resumptionToken": token.text})
    return first, listed


def flask_get(url: str) -> Callable[[dict[str, str]], etree._Element]:
    client = make_app(url, page_size=7).test_client()
    return lambda query: tree(client.get("/oai", query_string=query))


class HeldLoad:
    """A load in a thread of its own, held after it has written and dated everything, just
    before its commit, until `release`; or, `after_records=N`, in progress: once it has
    taken its first N records and asks for the next (its transaction open, as
    tests/held_load.py holds a command's load)."""

    def __init__(self, url: str, path: Path, clock: Callable[[], datetime],
                 after_records: int | None = None, **options: Any) -> None:  # fmt: skip
        self.holding = threading.Event()
        self.released = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

        def hold() -> None:
            self.holding.set()
            assert self.released.wait(WAIT), "never released"

        read_items = ingest_load.read_items

        def read_and_hold(*args: Any, **kwargs: Any) -> Iterator[Any]:
            for number, item in enumerate(read_items(*args, **kwargs), start=1):
                yield item
                if number == after_records:
                    hold()

        if after_records is None:
            options["before_commit"] = hold

        def run() -> None:
            try:
                self.result = load_into(url, path, clock=clock, **options)
            except BaseException as e:
                self.error = e
                self.holding.set()  # wake the test: it reports the error

        self.thread = threading.Thread(target=run, daemon=True)
        if after_records is not None:  # the load takes its reader as it starts
            ingest_load.read_items = read_and_hold
        try:
            self.thread.start()
            assert self.holding.wait(WAIT), "the load did not get to where it is held"
        finally:
            ingest_load.read_items = read_items
        assert self.error is None, f"the load failed: {self.error!r}"

    def commit(self) -> Any:
        self.released.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


@pytest.fixture
def fifty(empty_database_url: str, tmp_path: Path) -> str:
    """A store of 50 records, loaded long before the harvests of the test."""
    load_into(empty_database_url, write_jsonl(tmp_path / "first.jsonl", records(50)),
              clock=lambda: START - timedelta(days=30))  # fmt: skip
    return empty_database_url


def final_datestamps(url: str) -> dict[str, str]:
    return {REPO + lid: stamp for lid, stamp in stored_datestamps(url).items()}


def test_a_harvest_polling_during_a_load_lists_every_change(
    fifty: str, tmp_path: Path, clock: Clock
) -> None:
    """Polls every second while an update of every record is written but not committed:
    they list nothing of it, their cut-off stays before the load's datestamp, and the
    first poll after the commit lists all 50 changes with their final datestamps."""
    get = flask_get(fifty)
    since, listed = poll(get, None)
    assert len(listed) == 50
    update = write_jsonl(tmp_path / "update.jsonl", records(50, note="Corrected."))
    clock.tick()
    load = HeldLoad(fifty, update, clock)
    dated = SqlStore(fifty, token_secret=SECRET)
    try:
        (writer,) = dated.writers()
    finally:
        dated.close()
    seen: dict[str, str] = {}
    for _ in range(5):
        clock.tick()
        since, listed = poll(get, since)
        seen.update(listed)
        # The list stops before what it cannot see, and says so in its responseDate.
        assert since <= datestamps.format_datestamp(writer.since)
    assert seen == {}
    assert load.commit().updated == 50
    clock.tick()
    _, listed = poll(get, since)
    seen.update(listed)
    assert seen == final_datestamps(fifty)
    assert set(seen.values()) == {datestamps.format_datestamp(writer.since)}


def test_two_server_processes_polled_in_turn_lose_nothing(
    fifty: str, tmp_path: Path, backend: str
) -> None:
    """The same race against two real server processes sharing the database, polled in
    turn with the real clock, past several seconds of a held load."""
    servers = [LiveServer(fifty, tmp_path, workers=1, OAIPMH_PAGE_SIZE="7") for _ in range(2)]
    session = requests.Session()

    def getter(server: LiveServer) -> Callable[[dict[str, str]], etree._Element]:
        def get(query: dict[str, str]) -> etree._Element:
            response = session.get(server.url, params=query, timeout=WAIT)
            assert response.status_code == 200
            return etree.fromstring(response.content)

        return get

    try:
        since, _ = poll(getter(servers[0]), None)
        load = HeldLoad(fifty, write_jsonl(tmp_path / "u.jsonl", records(50, "Corrected.")),
                        datestamps.now)  # fmt: skip
        store = SqlStore(fifty, token_secret=SECRET)
        try:
            (writer,) = store.writers()
        finally:
            store.close()
        seen: dict[str, str] = {}
        turn = 0
        # Poll in turn until the clock is two seconds past the load's datestamp (a
        # condition, bounded: the polls themselves are what is tested).
        while datestamps.now() < writer.since + timedelta(seconds=2) and turn < 10_000:
            since, listed = poll(getter(servers[turn % 2]), since)
            seen.update(listed)
            assert since <= datestamps.format_datestamp(writer.since)
            turn += 1
        assert seen == {}, "a change was listed before it was committed"
        load.commit()
        since, listed = poll(getter(servers[turn % 2]), since)
        seen.update(listed)
        assert seen == final_datestamps(fifty)
    finally:
        for server in servers:
            server.stop()


HOLDING_SCRIPT = textwrap.dedent(
    """
    import sys
    from oaipmh_server.config import load_settings
    from oaipmh_server.formats import build_formats
    from oaipmh_server.ingest.load import load_paths
    from oaipmh_server.store import SqlStore

    def hold():
        print("holding", flush=True)
        sys.stdin.readline()  # killed here

    settings = load_settings({"database_url": sys.argv[1]})
    store = SqlStore(sys.argv[1])
    load_paths([sys.argv[2]], store, settings, build_formats(settings), before_commit=hold)
    """
)


@pytest.fixture
def killed_load(fifty: str, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDING_SCRIPT, fifty,
         str(write_jsonl(tmp_path / "u.jsonl", records(50, "Never committed.")))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    for stream in (process.stdin, process.stdout):
        assert stream is not None
        stream.close()


@pytest.mark.parametrize("held", [False, True], ids=["before", "during"])
def test_a_set_harvest_answered_no_set_hierarchy_before_the_first_load_misses_none_of_it(
    empty_database_url: str, tmp_path: Path, clock: Clock, held: bool
) -> None:
    """A harvester of a set, registered before the repository's first load (or asking
    during it), is told noSetHierarchy; its next harvest, `from=` that responseDate as an
    incremental harvester asks, lists every record the first load put in the set, though
    that load keeps their dc.date.accessioned (docs/design.md, "No change is lost")."""
    get = flask_get(empty_database_url)
    query = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "set": "col_10722_5"}
    first = write_jsonl(tmp_path / "first.jsonl", records(3))
    load = HeldLoad(empty_database_url, first, clock) if held else None
    root = get(query)
    assert [e.get("code") for e in root.iterfind("oai:error", NS)] == ["noSetHierarchy"]
    since = root.findtext("oai:responseDate", namespaces=NS)
    clock.tick()
    if load is None:
        load_into(empty_database_url, first, clock=clock)
    else:
        load.commit()
    clock.tick()
    root = get({**query, "from": since})
    assert sorted(identifiers(root)) == [f"{REPO}10722/{n}" for n in range(3)]


def test_a_load_killed_before_its_commit_neither_freezes_lists_nor_lets_them_pass_it(
    fifty: str,
    killed_load: subprocess.Popen[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert killed_load.stdout is not None
    assert killed_load.stdout.readline() == "holding\n"
    before = everything(fifty)
    store = SqlStore(fifty, token_secret=SECRET)
    try:
        (writer,) = store.writers()
        later = writer.since + timedelta(hours=1)
        # While it lives, a list an hour later still stops before its datestamp.
        assert store.list_cutoff(later) == writer.since - timedelta(seconds=1)
        killed_load.send_signal(signal.SIGKILL)
        killed_load.wait(WAIT)
        # The dead writer's lease is freed by the kernel (SQLite) or when PostgreSQL ends
        # its session: lists go on from the clock, not from its row.
        for _ in range(10_000):
            if store.list_cutoff(later) == later - timedelta(seconds=1):
                break
        assert store.list_cutoff(later) == later - timedelta(seconds=1)
        assert everything(fifty) == before
        assert len(store.writers()) == 1  # left by the dead load, ignored
    finally:
        store.close()
    # The next load replaces the dead one's row; its changes come after every cut-off.
    clock = Clock(later + timedelta(seconds=5))
    monkeypatch.setattr(datestamps, "now", clock)
    update = write_jsonl(tmp_path / "after.jsonl", records(50, "Committed."))
    assert load_into(fifty, update, clock=clock).updated == 50
    loaded = datestamps.format_datestamp(clock())
    store = SqlStore(fifty, token_secret=SECRET)
    try:
        assert store.writers() == []
    finally:
        store.close()
    clock.tick()
    _, listed = poll(flask_get(fifty), datestamps.format_datestamp(later))
    assert listed == final_datestamps(fifty)
    assert set(listed.values()) == {loaded}


def test_a_clock_stepped_back_dates_nothing_before_what_was_handed_out(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """NTP steps the clock back an hour, or a host with a slower clock loads: a change is
    still dated after every cut-off already handed out and at least a second after the
    record's own datestamp, and lists never go back."""
    load_into(empty_database_url, write_jsonl(tmp_path / "a.jsonl", records(2)), clock=clock)
    get = flask_get(empty_database_url)
    clock.tick(10)
    response_date, listed = poll(get, None)
    assert response_date == "2026-03-01T12:00:10Z" and len(listed) == 2

    clock.tick(-3600)  # an hour back
    added = {"id": "10722/new", "sets": ["col_10722_5"], "metadata": [
        {"field": "dc.title", "value": "New"},
        {"field": "dc.date.accessioned", "value": "2026-03-01T11:00:00Z"}]}  # fmt: skip
    changed = write_jsonl(tmp_path / "b.jsonl", [*records(2, "Changed."), added])
    load_into(empty_database_url, changed, clock=clock)
    assert stored_datestamps(empty_database_url) == dict.fromkeys(
        ["10722/0", "10722/1", "10722/new"], "2026-03-01T12:00:10Z"
    )
    # Changed again at once, in the same second by the clock: a second later still.
    load_into(empty_database_url, write_jsonl(tmp_path / "c.jsonl", records(1, "Again.")),
              clock=clock)  # fmt: skip
    assert stored_datestamps(empty_database_url)["10722/0"] == "2026-03-01T12:00:11Z"
    # The clock still an hour behind: lists do not go back, and wait for the changes.
    again, listed = poll(get, response_date)
    assert again == response_date and listed == {}
    clock.tick(3600 + 2)
    _, listed = poll(get, response_date)
    assert listed == {
        REPO + "10722/0": "2026-03-01T12:00:11Z",
        REPO + "10722/1": "2026-03-01T12:00:10Z",
        REPO + "10722/new": "2026-03-01T12:00:10Z",
    }


def test_the_load_named_as_running_is_named_without_terminal_escapes(
    fifty: str, tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The running load is named by its command line, which holds whatever its paths are
    called: shown raw on another user's terminal, a name's escapes would drive it."""
    update = write_jsonl(tmp_path / "u.jsonl", records(50, "First."))
    other = write_jsonl(tmp_path / "o.jsonl", records(50, "Second."))
    monkeypatch.setattr(sys, "argv", ["oaipmh-server", "load", "\x1b]0;owned\x07\x1b[2J.jsonl"])
    first = HeldLoad(fifty, update, clock)
    with pytest.raises(LoadBusy) as busy:
        load_into(fifty, other, clock=clock, wait=False)
    first.commit()
    assert "\x1b" not in str(busy.value) and "\x07" not in str(busy.value)
    assert "load \\x1b]0;owned\\x07\\x1b[2J.jsonl)" in str(busy.value)


def test_a_second_load_says_who_is_loading_and_waits_or_stops(
    fifty: str, tmp_path: Path, clock: Clock
) -> None:
    update = write_jsonl(tmp_path / "u.jsonl", records(50, "First."))
    other = write_jsonl(tmp_path / "o.jsonl", records(50, "Second."))
    first = HeldLoad(fifty, update, clock)
    with pytest.raises(LoadBusy) as busy:
        load_into(fifty, other, clock=clock, wait=False)
    message = str(busy.value)
    assert message.startswith("another load is running (since 2026-03-01T12:00:00Z, host ")
    assert f"process {os.getpid()} " in message
    # The command, in process (tests/cli.py): the lease is a lock of its own connection
    # (PostgreSQL) or open file (SQLite's flock), held against this process's too.
    refused = run_cli("load", "--no-wait", str(other), env={"OAIPMH_DATABASE_URL": fifty})
    assert refused.returncode == 1
    assert "Error: another load is running (since 2026-03-01T12:00:00Z" in refused.stderr
    assert "nothing was loaded" in refused.stderr
    # Waiting: told whom it waits for, then done once the first one has committed.
    told: list[str] = []
    waiting = threading.Thread(
        target=lambda: load_into(fifty, other, clock=clock, on_wait=told.append), daemon=True
    )
    waiting.start()
    first.commit()
    waiting.join(WAIT)
    assert not waiting.is_alive()
    assert len(told) <= 1 and all(m.startswith("another load is running") for m in told)
    fields = json.dumps(everything(fifty), default=str)
    assert "Second." in fields and "First." not in fields


def test_the_same_record_twice_in_one_load_is_refused_naming_both_places(
    empty_database_url: str, tmp_path: Path
) -> None:
    """A load is one state of the repository: a record from a JSON file and again from a
    SAF item, or two CSV rows with the same handle, is an error, and nothing is loaded."""
    export = tmp_path / "export"
    export.mkdir()
    seed = Path(__file__).parent / "fixtures" / "dspace-seed"
    shutil.copytree(seed / "saf" / "item_000", export / "item_000")
    shutil.copy(Path(__file__).parent.parent / "sample_records" / "10722_212116.json", export)
    rows = (seed / "metadata-export.csv").read_text("utf-8").splitlines()
    (export / "twice.csv").write_text(
        "\n".join([rows[0], rows[1], rows[1].replace("5d6c0a1e", "5d6c0a1f")]) + "\n", "utf-8"
    )
    assert refused_problems(empty_database_url, export) == [
        f"{export}/10722_212116.json:1: record 10722/212116: the same record again at "
        f"{export}/item_000: a load holds each record once",
        f"{export}/10722_212116.json:1: record 10722/212116: the same record again at "
        f"{export}/twice.csv:2: a load holds each record once",
        f"{export}/10722_212116.json:1: record 10722/212116: the same record again at "
        f"{export}/twice.csv:3: a load holds each record once",
    ]
    assert everything(empty_database_url) == []


def test_a_writer_lease_file_that_cannot_be_opened_is_said_not_a_traceback(
    tmp_path: Path,
) -> None:
    """SQLite's writer lease is a file beside the database (`<database>-writer`); one this
    process cannot open (made 0600 by another user, `sudo oaipmh-server load` once; here a
    link that leads to itself, which root cannot open either) stops a load in one line,
    nothing loaded, and a list while a writer's row is there goes on as if that writer
    were alive (its cut-off before the writer's `since`, which loses nothing): both were
    a traceback, the list a 500."""
    database = tmp_path / "oai.sqlite3"
    url = sqlite_url(database)
    load_into(url, SAMPLES)
    lease = Path(f"{database}-writer")
    lease.unlink()
    lease.symlink_to(lease.name)
    records = tmp_path / "r.jsonl"
    records.write_text(json.dumps({"id": "1/new", "metadata": [
        {"field": "dc.title", "value": "New"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}) + "\n")  # fmt: skip
    ran = run_cli("load", str(records), env={"OAIPMH_DATABASE_URL": url})
    assert (ran.returncode, ran.stderr) == (
        1,
        f"Error: cannot open the writer lease {lease} (Too many levels of symbolic links): "
        "each write locks it, so whoever loads must be able to write it; nothing was loaded\n",
    )
    since = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    with SqlStore(url, token_secret=SECRET).engine.begin() as conn:
        conn.execute(insert(writers_table).values(id="left", since=since, holder="a load"))
    answer = make_app(url).test_client().get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc")
    assert answer.status_code == 200
    assert tree(answer).findtext("oai:responseDate", namespaces=NS) == "2026-12-01T10:00:00Z"
