"""The harvest promises, tested as a model: any sequence of writes of every kind (loads
adding, changing, deleting and bringing back records, moving them between sets, `load
--sync`, `load --changes` through the API and as the command line runs it, `delete`,
virtual sets turned on, loads held in progress or before their commit, with --sync or
not), the clock moving on and stepped back, interleaved with many harvests at every stage
(started, paged, a page asked again with a token already used, an incremental chain),
served by two apps of the same store, a harvest's pages from either, through token
secrets rotated; on SQLite and PostgreSQL, with sets served in DSpace's flat style or in
OAI-PMH's hierarchy (`[sets] style`).

What is checked is what the documentation promises, in its words:

- docs/harvesting.md, "Changes during a harvest": "A list is what the repository held one
  second before its first page"; "A record that does not change during a harvest comes
  exactly once; one that changes or is deleted during it comes (again, with its new
  datestamp) in the next incremental harvest `from=` the first page's `responseDate`.
  Nothing is skipped and nothing is repeated within one list." So within one list no
  identifier comes twice, every record of the selection one second before the first page
  that is not changed before the list ends comes, and every header is dated at or before
  the cut-off (the first page's responseDate minus one second) and within `from`/`until`.
- docs/design.md, "No change is lost": "An incremental harvester asks `from=` the
  `responseDate` of its previous list. It sees every change, at least once, with the
  datestamp the record finally has". So a chain of harvests, each `from=` the previous
  one's first responseDate, ends (once the writes stop and the clock has moved on) with
  exactly the store's records: each one's final datestamp, deleted status and sets.
- docs/harvesting.md, "Tokens": "`completeListSize` (counted once, on the first page) and
  `cursor` are on every page". So completeListSize is the same on every page of a list and
  is the size of the list one second before its first page: what the list returns is at
  most that, and exactly that when nothing in it changed; `cursor` is the number of
  records the list served before the page.
- docs/loading.md and docs/harvesting.md, "Sets": a record's header lists its sets as the
  sets files placed them, in DSpace's style with every community above them (a move
  re-dates the records below it), in the hierarchical one at their paths (a record keeps
  its path until it is loaded again); a set selects the records of the sets inside it.
- docs/commands.md, `--changes`: the list names each record the load changed, once, as
  `added`, `updated`, `deleted` or `withdrawn`, and nothing else.
- docs/configuration.md, "Rotating the token secret": a token signed with a previous
  secret still listed is honoured; one signed with a secret no longer known is
  `badResumptionToken`, and the harvest starts again.
- Every response is an HTTP 200 valid against the OAI-PMH schemas (the ValidatingClient),
  every header is the record as stored when it is served, and a live record's metadata is
  the one its last load gave it.

A model of what the store holds is not kept: the store is read after each write (its
records' datestamps, deleted status and sets), and the model keeps what each harvest saw.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from lxml import etree
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from oaipmh_server import datestamps
from oaipmh_server.config import load_settings
from oaipmh_server.datestamps import end_of, format_datestamp, parse_datestamp
from oaipmh_server.errors import LoadFailed
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest import load as ingest_load
from oaipmh_server.ingest.load import delete_records, refresh_sets
from oaipmh_server.ingest.sync import Sync
from oaipmh_server.store import SqlStore
from oaipmh_server.store.schema import memberships_table, records_table, sets_table

from .cli import invoke
from .conftest import SECRET, load_into, make_app, sqlite_url
from .oai import NS, tree
from .test_changes import HeldLoad

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

REPO = "oai:repository.example.org:"
START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
IDS = [f"10722/{n}" for n in range(10)]
# A record's sets: collections (placed in a community by a sets file, or not), a community,
# and a hierarchical spec (one with ":", hierarchical in either style).
SETS = ["col_1_1", "col_1_2", "col_2_1", "com_1_9", "com_2_8:col_2_2"]
THESES = {"virtual_set_definitions": {"theses": {"name": "Theses", "field": "dc.type",
                                                 "matches": "(?i)thesis$"}},
          "virtual_sets_served": ["theses"]}  # fmt: skip
COMMUNITIES = ["com_1_9", "com_2_8"]  # a collection may be moved into either
# The sets harvested: in the hierarchical style a collection placed in a community is
# also its path (and a parent set selects the records of the sets below it).
HARVESTED_SETS = [*SETS, "com_2_8", "theses", "com_1_9:col_1_1", "com_2_8:col_1_1",
                  "com_1_9:com_2_8"]  # fmt: skip

State = tuple[
    str, bool, frozenset[str]
]  # a record as a harvester sees it: datestamp, deleted, sets


# What the runs did (printed after them, shown by `pytest -s`): how often each case came up.
TALLY: Counter[str] = Counter()


class Clock:
    """The repository's clock (the server's and the loads'), moved by the model."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


@dataclass
class Harvest:
    """One list harvest as a harvester follows it: its arguments, the cut-off its first page
    gave, what the repository held then, and what each page brought."""

    verb: str
    set_spec: str | None
    from_: datetime | None
    until: datetime | None
    response_date: str = ""
    cutoff: datetime | None = None
    held: dict[str, State] = field(default_factory=dict)  # the selection at the cut-off
    changed: set[str] = field(default_factory=set)  # records changed since the first page
    pages: list[list[tuple[str, State]]] = field(default_factory=list)
    size: int | None = None  # completeListSize, where the list gave one
    token: str | None = None  # the token for the next page; None once the list ended
    last_token: str | None = None  # the token that brought the last page, for a retry
    done: bool = False

    def seen(self) -> list[str]:
        return [identifier for page in self.pages for identifier, _ in page]


@dataclass
class Chain:
    """An incremental harvester: each list from= the previous one's first responseDate."""

    set_spec: str | None
    from_: str | None = None
    previous_from: str | None = None  # where it starts again if its list is refused
    harvest: Harvest | None = None  # the list under way
    seen: dict[str, State] = field(default_factory=dict)  # each record as last listed

    def page_taken(self) -> None:
        if self.harvest is None:
            return  # its token was refused: it starts again (HarvestPromises.resume)
        for identifier, state in self.harvest.pages[-1]:
            self.seen[identifier] = state
        if self.harvest.done:
            self.harvest = None


def state_of(header: etree._Element) -> tuple[str, State]:
    identifier = header.findtext("oai:identifier", namespaces=NS)
    datestamp = header.findtext("oai:datestamp", namespaces=NS)
    sets = frozenset(e.text for e in header.iterfind("oai:setSpec", NS))
    return identifier, (datestamp, header.get("status") == "deleted", sets)


def title_of(local_id: str, version: int) -> str:
    """A record's title in each version; the third is long (a page of 1 KiB holds one)."""
    return f"Record {local_id}, version {version}" + " and more" * 100 * (version == 2)


RECORD = st.tuples(
    st.sampled_from(IDS),
    st.booleans(),  # deleted
    st.lists(st.sampled_from(SETS), max_size=2, unique=True),
    st.integers(0, 2),  # which title: a change of metadata
    st.booleans(),  # a thesis (the virtual set's filter)
)
LOAD = st.lists(RECORD, min_size=1, max_size=5, unique_by=lambda r: r[0])
FIRST_LOAD = st.lists(RECORD, min_size=4, max_size=len(IDS), unique_by=lambda r: r[0])
# Most lists whole, the others of a set or within dates.
SOME_SET = st.sampled_from([None, None, None, *HARVESTED_SETS])
NEAR = st.tuples(st.integers(0, 30), st.sampled_from([-1, 0, 1]))  # a datestamp stored, ± 1 s
SOME_DATE = st.one_of(st.none(), st.none(), NEAR)
LATER = st.sampled_from([0, 1, 1, 2])
# How a load tells its changes: not at all, to the API's callback, or as the command line's
# `--changes FILE` or `--changes -` writes them.
REPORT = st.sampled_from(
    ["", "api", "--changes FILE", "--changes -"]
)  # a list starts so many seconds later


def guarded(step: Callable[..., None]) -> Callable[..., None]:
    """A step that fails marks the machine broken: its teardown then checks nothing more,
    so the failure reported (and shrunk) is the step's own."""

    @functools.wraps(step)
    def run(self: HarvestPromises, *arguments: Any, **named: Any) -> None:
        TALLY[step.__name__] += 1
        self.broken = True
        step(self, *arguments, **named)
        self.broken = False

    return run


class HarvestPromises(RuleBasedStateMachine):
    """Writes and harvests in any order; `new_store` makes an empty store, `dispose` drops it."""

    def __init__(self, new_store: Callable[[], str], dispose: Callable[[str], None],
                 folder: Path) -> None:  # fmt: skip
        super().__init__()
        self.broken = False
        self.url = new_store()
        self.dispose = dispose
        self.folder = folder
        self.files = count()
        self.clock = Clock(START)
        self.saved_now = datestamps.now
        datestamps.now = self.clock
        self.engine = create_engine(self.url, poolclass=NullPool)
        self.virtual: dict[str, Any] = {}
        self.style: dict[str, Any] = {}  # [sets] style, chosen by first_load
        self.page_size, self.max_page_bytes = 2, 8 << 20
        self.apps: list[Any] = []
        # The token secret, then the previous ones still accepted ([harvest]
        # previous_token_secrets); the secret each token handed out was signed with.
        self.secrets = [SECRET]
        self.signed: dict[str, str] = {}
        self.clients: list[Any] = []
        self.client = self.new_client()
        self.stored: dict[str, State] = {}
        self.members: dict[str, frozenset[str]] = {}  # the sets selecting each record
        self.has_sets = False
        self.held: HeldLoad | None = None  # a load held just before its commit
        self.held_records: list[tuple[str, bool, list[str], int, bool]] = []
        self.titles: dict[str, str] = {}  # a live record's title, as its last load gave it
        self.harvests: list[Harvest] = []
        self.chains = {spec: Chain(spec) for spec in (None, "col_1_1", "com_1_9")}
        # The tree the sets files gave (a set's flat spec → its parent's), and the sets each
        # record's last load named: where the record is served follows from them.
        self.parents: dict[str, str | None] = {}
        self.named: dict[str, frozenset[str]] = {}
        self.placed: dict[str, frozenset[str]] = {}  # the specs each header must list

    @property
    def config(self) -> dict[str, Any]:
        """The settings every load, command and app of this store is given."""
        return {**self.style, **self.virtual}

    def new_client(self) -> Any:
        """Two servers of the store (two apps, as two hosts behind a balancer would be), of
        the same settings: a harvest's pages may come from either. The first's client."""
        self.clients = []
        for _ in range(2):
            app = make_app(self.url, page_size=self.page_size,
                           max_page_bytes=self.max_page_bytes, token_secret=self.secrets[0],
                           previous_token_secrets=tuple(self.secrets[1:]),
                           **self.config)  # fmt: skip
            self.apps.append(app)
            self.clients.append(app.test_client())
        return self.clients[0]

    def teardown(self) -> None:
        try:
            if self.held is not None:
                held, self.held = self.held, None
                if self.broken:
                    held.released.set()
                    held.thread.join(60)
                else:
                    before = self.stored
                    held.commit()
                    self.after_write(before)
                    self.loaded(self.held_records)
            if not self.broken:
                self.writes_stop_and_the_chain_catches_up()
        finally:
            datestamps.now = self.saved_now
            for app in self.apps:
                app.extensions["oaipmh"].store.close()
            self.engine.dispose()
            self.dispose(self.url)

    # The store as a harvester would see it, read after each write.

    def read_store(self) -> dict[str, State]:
        with self.engine.connect() as conn:
            rows = list(conn.execute(select(records_table.c.local_id, records_table.c.datestamp,
                                            records_table.c.deleted,
                                            records_table.c.set_specs)))  # fmt: skip
            members = list(
                conn.execute(select(memberships_table.c.local_id, memberships_table.c.set_spec))
            )
            self.has_sets = conn.execute(select(sets_table.c.spec).limit(1)).first() is not None
        sets: dict[str, set[str]] = {}
        for local_id, spec in members:
            sets.setdefault(local_id, set()).add(spec)
        # The sets that select a record (its memberships: in the hierarchical style its
        # specs' ancestors too), besides the specs its header lists.
        self.members = {REPO + lid: frozenset(sets.get(lid, ())) for lid, *_ in rows}
        return {
            REPO + lid: (format_datestamp(ds), bool(deleted), frozenset(specs.split()))
            for lid, ds, deleted, specs in rows
        }

    def after_write(self, before: dict[str, State]) -> None:
        self.stored = self.read_store()
        changed = {i for i in self.stored if before.get(i) != self.stored[i]}
        assert set(before) <= set(self.stored), "a record vanished from the store"
        for harvest in [*self.harvests, *(c.harvest for c in self.chains.values())]:
            if harvest is not None:
                harvest.changed |= changed
        for identifier in changed:  # datestamps never go backwards
            if identifier in before:
                assert before[identifier][0] < self.stored[identifier][0], (identifier, before)

    # Writes.

    def write_load(self, records: list[tuple[str, bool, list[str], int, bool]]) -> Path:
        lines = []
        for local_id, deleted, specs, title, thesis in records:
            n = int(local_id.rsplit("/", 1)[1])
            metadata = [
                {"field": "dc.title", "value": title_of(local_id, title)},
                {"field": "dc.date.accessioned", "value": f"2020-01-{1 + n:02d}T00:00:00Z"},
                {"field": "dc.type", "value": "Thesis" if thesis else "Article"},
            ]
            record = {"id": local_id, "sets": specs, "deleted": deleted,
                      "metadata": [] if deleted else metadata}  # fmt: skip
            lines.append(json.dumps(record))
        path = self.folder / f"load{next(self.files)}.jsonl"
        path.write_text("\n".join(lines) + "\n", "utf-8")
        return path

    def loaded(self, records: list[tuple[str, bool, list[str], int, bool]]) -> None:
        for local_id, deleted, specs, title, _ in records:
            if not deleted:
                self.titles[REPO + local_id] = title_of(local_id, title)
            if deleted and not specs and REPO + local_id in self.named:
                continue  # a bare tombstone stays in its sets (as they are served)
            self.named[REPO + local_id] = frozenset(specs)
            self.placed[REPO + local_id] = self.served_in(frozenset(specs))
        self.check_placed()

    @staticmethod
    def above(spec: str, tree: dict[str, str | None]) -> list[str]:
        """The sets above `spec` in `tree`, DSpace's flat style."""
        found = []
        while ":" not in spec and (parent := tree.get(spec)) is not None:
            found.append(parent)
            spec = parent
        return found

    def path(self, spec: str) -> str:
        """A set's path in the hierarchical style: its parents' specs before its own."""
        parent = self.parents.get(spec)
        return spec if parent is None else f"{self.path(parent)}:{spec}"

    def served_in(self, named: frozenset[str]) -> frozenset[str]:
        """The specs the header of a record naming `named` lists, as the sets files so far
        place them: DSpace's style, each named set and every community above it; the
        hierarchical one, each named set's path (a spec with ":" is a path already)."""
        if self.style["set_style"] == "hierarchical":
            return frozenset(spec if ":" in spec else self.path(spec) for spec in named)
        served = set()
        for spec in named:
            while spec is not None:
                served.add(spec)
                spec = self.parents.get(spec) if ":" not in spec else None
        return frozenset(served)

    def check_placed(self) -> None:
        """Every header lists the specs its record's sets are placed at (besides a virtual
        set's), and every set above them selects the record (its memberships)."""
        for identifier, (_, _, specs) in self.stored.items():
            assert specs - {"theses"} == self.placed[identifier], (identifier, specs)
            above = {":".join(s.split(":")[:n]) for s in specs for n in range(1, s.count(":") + 2)}
            assert self.members[identifier] == above, (identifier, self.members[identifier])

    @initialize(records=FIRST_LOAD, page_size=st.integers(1, 3), small_pages=st.booleans(),
                start=st.sampled_from(["load", "load", "harvest, then load", "empty"]),
                style=st.sampled_from(["dspace", "hierarchical"]))  # fmt: skip
    def first_load(self, records: list[tuple[str, bool, list[str], int, bool]], page_size: int,
                   small_pages: bool, start: str, style: str) -> None:  # fmt: skip
        """The repository's first load (its records keep their dc.date.accessioned, unless
        a harvest of the empty repository was handed a cut-off after them), served in pages
        of a few records, or of fewer where a long record fills a page's bytes; or an empty
        repository, whose first load is one of the steps (a held one, maybe). Its sets are
        served in DSpace's flat style or OAI-PMH's hierarchy (`[sets] style`)."""
        TALLY[f"style {style}"] += 1
        self.style = {"set_style": style}
        self.page_size, self.max_page_bytes = page_size, 1024 if small_pages else 8 << 20
        self.client = self.new_client()
        if start == "harvest, then load":
            self.incremental_harvest("ListIdentifiers", 0)
        if start != "empty":
            self.load(records, sync=False, report="api")

    @precondition(lambda self: self.held is None)
    @rule(records=LOAD, sync=st.booleans(), report=REPORT)
    @guarded
    def load(self, records: list[tuple[str, bool, list[str], int, bool]], sync: bool,
             report: str) -> None:  # fmt: skip
        """A load of records new, changed, unchanged, deleted or brought back; with --sync
        every record it does not hold is withdrawn; with --changes it tells each change,
        told through the API or the command line's FILE or standard output."""
        path = self.write_load(records)
        told: list[tuple[str, str]] = []
        before = self.stored
        if report.startswith("--changes"):
            told = self.load_command(path, sync, report.removeprefix("--changes "))
        else:
            try:
                load_into(self.url, path, clock=self.clock, workers=0,
                          sync=Sync(allow_deletes=len(IDS)) if sync else None,
                          changes=(lambda kind, lid: told.append((kind, lid))) if report else None,
                          **self.config)  # fmt: skip
            except LoadFailed:
                assert self.read_store() == before, "a failed load changed the store"
                raise
        self.after_write(before)
        self.loaded(records)
        if report:
            self.check_told(told, before, records)

    def check_told(self, told: list[tuple[str, str]], before: dict[str, State],
                   records: list[tuple[str, bool, list[str], int, bool]]) -> None:  # fmt: skip
        """docs/commands.md, `--changes`: a line per record the load changed, `added`,
        `updated`, `deleted` (and `withdrawn` with `--sync`), and nothing else: each id the
        store holds otherwise than before the load, once, of the kind its change is."""
        ids = [REPO + lid for _, lid in told]
        assert len(ids) == len(set(ids)), f"told twice: {told}"
        changed = {i for i in self.stored if before.get(i) != self.stored[i]}
        assert set(ids) == changed, (told, changed)
        in_load = {REPO + lid: deleted for lid, deleted, *_ in records}
        for kind, identifier in zip((k for k, _ in told), ids, strict=True):
            if identifier not in in_load:  # withdrawn by --sync: a live record before
                expected = "withdrawn" if not before[identifier][1] else "?"
            elif in_load[identifier]:
                expected = "deleted"
            else:
                expected = "added" if identifier not in before else "updated"
            assert kind == expected, (kind, identifier, before.get(identifier))
            TALLY[f"--changes told {kind}"] += 1

    def load_command(self, path: Path, sync: bool, changes_to: str) -> list[tuple[str, str]]:
        """`oaipmh-server load [--sync] --changes FILE|- PATH`, in this process (tests/cli.py),
        its configuration a file of the store's settings, at the model's clock. What it
        says: the changes it lists, from FILE or standard output."""
        config = self.folder / f"oaipmh{next(self.files)}.toml"
        lines = [f'[sets]\nstyle = "{self.style["set_style"]}"']
        if self.virtual:
            lines.append('[virtual_sets]\nserved = ["theses"]\n[virtual_sets.define.theses]\n'
                         'name = "Theses"\nfield = "dc.type"\nmatches = "(?i)thesis$"')  # fmt: skip
        config.write_text("\n".join(lines) + "\n", "utf-8")
        target = "-" if changes_to == "-" else str(self.folder / f"changes{next(self.files)}")
        args = ["load", *(["--sync", "--sync-allow-deletes", str(len(IDS))] if sync else []),
                "--changes", target, str(path)]  # fmt: skip
        env = {"OAIPMH_CONFIG": str(config), "OAIPMH_DATABASE_URL": self.url}
        at_the_clock = functools.partial(ingest_load.load_paths, clock=self.clock)
        saved, ingest_load.load_paths = ingest_load.load_paths, at_the_clock  # type: ignore[assignment]
        try:
            ran = invoke(*args, env=env)
        finally:
            ingest_load.load_paths = saved  # type: ignore[assignment]
        assert ran.returncode == 0, ran.stderr
        said = ran.stdout if target == "-" else Path(target).read_text("utf-8")
        if target == "-":
            assert "Loaded" in ran.stderr, ran.stderr  # the summary, out of the list's way
        told = [tuple(line.split(" ")) for line in said.splitlines()]
        assert all(len(line) == 2 for line in told), said
        return told  # type: ignore[return-value]

    @precondition(lambda self: self.held is None)
    @rule(records=LOAD, sync=st.booleans(), midway=st.booleans())
    @guarded
    def load_held(self, records: list[tuple[str, bool, list[str], int, bool]], sync: bool,
                  midway: bool) -> None:  # fmt: skip
        """A load held while harvests go on and the clock moves (tests/test_changes.py
        holds one the same way): after it has written and dated everything, just before
        its commit, or `midway`, in progress once it has taken its first record; with
        --sync, withdrawing at its end every record it does not hold."""
        self.held = HeldLoad(self.url, self.write_load(records), self.clock,
                             after_records=1 if midway else None, workers=0,
                             sync=Sync(allow_deletes=len(IDS)) if sync else None,
                             **self.config)  # fmt: skip
        self.held_records = records
        TALLY["harvests open when a load was held"] += bool(self.harvests)
        TALLY[f"loads held {'midway' if midway else 'before their commit'}"] += 1

    @precondition(lambda self: self.held is not None)
    @rule()
    @guarded
    def held_load_commits(self) -> None:
        assert self.held is not None
        held, self.held = self.held, None
        before = self.stored
        held.commit()
        self.after_write(before)
        self.loaded(self.held_records)

    @precondition(lambda self: self.held is None)
    @rule(collection=st.sampled_from(SETS[:3]), community=st.sampled_from(COMMUNITIES),
          nested=st.booleans())  # fmt: skip
    @guarded
    def move_collection(self, collection: str, community: str, nested: bool) -> None:
        """A sets file giving a collection its community, or moving it to another, the
        second community inside the first or not: in DSpace's style its records are served
        in their new communities, re-dated by the load; in the hierarchical one a record
        keeps its path until it is loaded again (docs/loading.md)."""
        tree: list[dict[str, Any]] = [{"spec": c, "name": f"Community {c}"} for c in COMMUNITIES]
        if nested:
            tree[1]["parent"] = COMMUNITIES[0]
        tree.append({"spec": collection, "name": f"Collection {collection}", "parent": community})
        path = self.folder / f"sets{next(self.files)}.json"
        path.write_text(json.dumps({"sets": tree}), "utf-8")
        before = self.stored
        load_into(self.url, path, clock=self.clock, workers=0, **self.config)
        old_tree = dict(self.parents)
        self.parents.update((s["spec"], s.get("parent")) for s in tree)
        if self.style["set_style"] == "dspace":
            # A stored record's own sets are what its header lists but the communities
            # above them, in the old tree or the new: one that named a community and a
            # collection inside it is in the community no longer once the collection
            # moves out of it (the store keeps the specs served, not those named).
            for identifier, served in self.placed.items():
                above = {a for s in served for t in (old_tree, self.parents)
                         for a in self.above(s, t)}  # fmt: skip
                self.named[identifier] = frozenset(s for s in served if s not in above) or served
            self.placed = {i: self.served_in(named) for i, named in self.named.items()}
        self.after_write(before)
        self.check_placed()

    @precondition(lambda self: self.held is None and bool(self.stored))
    @rule(data=st.data())
    @guarded
    def delete(self, data: st.DataObject) -> None:
        """`oaipmh-server delete` of stored records (live or tombstones already)."""
        chosen = data.draw(st.lists(st.sampled_from(sorted(self.stored)), min_size=1,
                                    max_size=3, unique=True))  # fmt: skip
        settings = load_settings({"database_url": self.url, **self.config}, environ={})
        store = SqlStore(self.url, token_secret=SECRET)
        before = self.stored
        try:
            delete_records([i.removeprefix(REPO) for i in chosen], store, settings,
                           build_formats(settings), clock=self.clock)  # fmt: skip
        finally:
            store.close()
        self.after_write(before)
        for identifier in chosen:
            assert self.stored[identifier][1], identifier
        self.check_placed()

    @precondition(lambda self: not self.virtual and self.held is None)
    @rule()
    @guarded
    def turn_on_virtual_sets(self) -> None:
        """A virtual set served from now on (a new configuration: the server restarted,
        `refresh-sets` run)."""
        self.virtual = THESES
        settings = load_settings({"database_url": self.url, **self.config}, environ={})
        store = SqlStore(self.url, token_secret=SECRET)
        before = self.stored
        try:
            refresh_sets(store, settings, build_formats(settings), clock=self.clock)
        finally:
            store.close()
        self.client = self.new_client()
        self.after_write(before)
        self.check_placed()

    @rule(seconds=st.sampled_from([1, 1, 1, 2, 5, 3600, 86400, -1, -2, -3600]))
    @guarded
    def clock_moves(self, seconds: int) -> None:
        """The clock moves on, or is stepped back (NTP, a host's clock set by hand)."""
        self.clock.moment += timedelta(seconds=seconds)

    # Harvests.

    def ask(self, query: dict[str, str], server: int = 0) -> etree._Element:
        response = self.clients[server].get("/oai", query_string=query)
        return tree(response)  # an HTTP 200, text/xml, valid against the schemas

    def some_date(self, choice: tuple[int, int], by_day: bool) -> str:
        """A date near one of the stored datestamps (or the clock), at either granularity."""
        index, offset = choice
        known = sorted({s[0] for s in self.stored.values()} | {format_datestamp(self.clock())})
        moment = parse_datestamp(known[index % len(known)])[0] + timedelta(seconds=offset)
        return moment.strftime("%Y-%m-%d" if by_day else "%Y-%m-%dT%H:%M:%SZ")

    @precondition(lambda self: len(self.harvests) < 4)
    @rule(verb=st.sampled_from(["ListIdentifiers", "ListRecords"]),
          spec=SOME_SET, from_=SOME_DATE, until=SOME_DATE, by_day=st.booleans(),
          after=LATER)  # fmt: skip
    @guarded
    def start_harvest(self, verb: str, spec: str | None, from_: tuple[int, int] | None,
                      until: tuple[int, int] | None, by_day: bool, after: int) -> None:  # fmt: skip
        """A list: whole, of one set, with from and until near the stored datestamps,
        `after` seconds."""
        self.clock.moment += timedelta(seconds=after)
        query = {"verb": verb, "metadataPrefix": "oai_dc"}
        harvest = Harvest(verb, spec, None, None)
        if spec is not None:
            query["set"] = spec
        if from_ is not None:
            query["from"] = self.some_date(from_, by_day)
            harvest.from_ = parse_datestamp(query["from"])[0]
        if until is not None:
            query["until"] = self.some_date(until, by_day)
            harvest.until = end_of(*parse_datestamp(query["until"]))
        root = self.ask(query)
        if harvest.from_ and harvest.until and harvest.from_ > harvest.until:
            assert self.errors(root) == ["badArgument"], etree.tostring(root)
            return
        self.first_page(harvest, query, root)
        if not harvest.done:
            self.harvests.append(harvest)

    def errors(self, root: etree._Element) -> list[str]:
        return [e.get("code") for e in root.iterfind("oai:error", NS)]

    def first_page(self, harvest: Harvest, query: dict[str, str], root: etree._Element) -> None:
        """The first page: the cut-off it gives is one second before its responseDate, and
        the list is the selection of what the store holds at it."""
        harvest.response_date = root.findtext("oai:responseDate", namespaces=NS)
        harvest.cutoff = parse_datestamp(harvest.response_date)[0] - timedelta(seconds=1)
        harvest.held = {i: s for i, s in self.stored.items() if self.selects(harvest, i, s)}
        self.take_page(harvest, root, used=None)

    def selects(self, harvest: Harvest, identifier: str, state: State) -> bool:
        """Whether the list selects the record as stored now (its set by membership: in
        the hierarchical style a parent set selects the records of the sets below it)."""
        moment = parse_datestamp(state[0])[0]
        assert harvest.cutoff is not None
        return (
            moment <= harvest.cutoff
            and (harvest.from_ is None or harvest.from_ <= moment)
            and (harvest.until is None or moment <= harvest.until)
            and (harvest.set_spec is None or harvest.set_spec in self.members[identifier])
        )

    def take_page(self, harvest: Harvest, root: etree._Element, used: str | None) -> None:
        """A page: its headers are the records as stored now, in the list's selection; its
        cursor counts the records served before it; completeListSize never changes."""
        if self.errors(root):
            expected = (
                "noSetHierarchy" if harvest.set_spec and not self.has_sets else "noRecordsMatch"
            )
            assert self.errors(root) == [expected], etree.tostring(root)
            page: list[tuple[str, State]] = []
            harvest.token = None
        else:
            page = [state_of(h) for h in root.iterfind(f"oai:{harvest.verb}//oai:header", NS)]
            for identifier, state in page:
                assert state == self.stored[identifier], (identifier, state)
                assert self.selects(harvest, identifier, state), (identifier, state, harvest)
            if harvest.verb == "ListRecords":
                self.check_metadata(root)
            element = root.find(f"oai:{harvest.verb}/oai:resumptionToken", NS)
            cursor = sum(len(p) for p in harvest.pages)
            if element is None:
                assert used is None, "a resumed page without a resumptionToken"
                harvest.token = None
                harvest.size = len(page)
            else:
                size = int(element.get("completeListSize"))
                assert harvest.size in (None, size), (harvest.size, size)
                harvest.size = size
                assert int(element.get("cursor")) == cursor, (element.get("cursor"), cursor)
                harvest.token = element.text or None
                if harvest.token is not None:
                    self.signed[harvest.token] = self.secrets[0]
        harvest.pages.append(page)
        harvest.last_token = used
        if used is None:
            # The first page: the list is the store's selection at its cut-off.
            assert harvest.size in (None, len(harvest.held)), (harvest.size, harvest.held)
            if not page:
                assert not harvest.held, harvest.held
        if harvest.token is None:
            self.list_ended(harvest)

    def check_metadata(self, root: etree._Element) -> None:
        for record in root.iterfind(".//oai:record", NS):
            identifier = record.findtext("oai:header/oai:identifier", namespaces=NS)
            titles = [e.text for e in record.iterfind(".//dc:title", NS)]
            if self.stored[identifier][1]:
                assert record.find("oai:metadata", NS) is None, identifier
            else:
                assert titles == [self.titles[identifier]], (identifier, titles)

    def list_ended(self, harvest: Harvest) -> None:
        """Nothing repeated, nothing unchanged skipped, no more than completeListSize."""
        harvest.done = True
        seen = harvest.seen()
        TALLY["lists"] += 1
        TALLY["lists of several pages"] += len(harvest.pages) > 1
        TALLY["lists ended by noRecordsMatch on the first page"] += not harvest.pages[0]
        TALLY["lists whose records changed during them"] += bool(
            harvest.changed & set(harvest.held)
        )
        TALLY["lists that returned fewer than completeListSize"] += len(seen) < (harvest.size or 0)
        TALLY["lists ended by noRecordsMatch after a token"] += (
            len(harvest.pages) > 1 and not harvest.pages[-1]
        )
        assert len(seen) == len(set(seen)), f"repeated within one list: {seen}"
        assert set(seen) <= set(harvest.held), f"not in the list: {set(seen) - set(harvest.held)}"
        unchanged = {i for i in harvest.held if i not in harvest.changed}
        assert unchanged <= set(seen), f"skipped: {unchanged - set(seen)}"
        assert harvest.size is None or len(seen) <= harvest.size, (seen, harvest.size)
        if not harvest.changed & set(harvest.held):
            assert harvest.size is None or len(seen) == harvest.size, (seen, harvest.size)
        if harvest in self.harvests:
            self.harvests.remove(harvest)

    def resume(self, harvest: Harvest, token: str, server: int = 0) -> None:
        """The next page, from either server; a token signed with a secret no longer
        accepted is badResumptionToken, and the harvester starts its list again (docs/
        configuration.md, "Rotating the token secret")."""
        root = self.ask({"verb": harvest.verb, "resumptionToken": token}, server)
        if self.signed[token] in self.secrets:
            self.take_page(harvest, root, used=token)
            return
        assert self.errors(root) == ["badResumptionToken"], etree.tostring(root)
        TALLY["lists refused for a secret no longer accepted"] += 1
        harvest.done = True
        if harvest in self.harvests:
            self.harvests.remove(harvest)
        for chain in self.chains.values():
            if chain.harvest is harvest:
                chain.harvest, chain.from_ = None, chain.previous_from

    @precondition(lambda self: bool(self.harvests))
    @rule(which=st.integers(0, 3), server=st.integers(0, 1))
    @guarded
    def next_page(self, which: int, server: int) -> None:
        harvest = self.harvests[which % len(self.harvests)]
        assert harvest.token is not None
        self.resume(harvest, harvest.token, server)

    @precondition(lambda self: any(h.last_token for h in self.harvests))
    @rule(which=st.integers(0, 3), server=st.integers(0, 1))
    @guarded
    def page_asked_again(self, which: int, server: int) -> None:
        """A harvester that lost a response asks with the same token again (of either
        server): it keeps the second answer, in place of the first."""
        again = [h for h in self.harvests if h.last_token]
        harvest = again[which % len(again)]
        assert harvest.last_token is not None
        harvest.pages.pop()
        self.resume(harvest, harvest.last_token, server)

    @rule(keep=st.booleans())
    @guarded
    def rotate_token_secret(self, keep: bool) -> None:
        """Both servers restarted with a new token secret, the old ones kept as previous
        secrets (tokens handed out are honoured) or, `keep` false, dropped (the harvests
        that hold one start again)."""
        self.secrets = [f"secret-{len(self.signed)}-{self.clock.moment:%s}-" + "s" * 32,
                        *(self.secrets if keep else [])]  # fmt: skip
        self.client = self.new_client()

    # Incremental chains: each harvest from= the previous one's first responseDate, of the
    # whole repository or of one set.

    @precondition(lambda self: any(c.harvest is None for c in self.chains.values()))
    @rule(verb=st.sampled_from(["ListIdentifiers", "ListRecords"]), which=st.integers(0, 2),
          after=LATER)  # fmt: skip
    @guarded
    def incremental_harvest(self, verb: str, which: int, after: int = 0) -> None:
        self.clock.moment += timedelta(seconds=after)
        idle = [c for c in self.chains.values() if c.harvest is None]
        chain = idle[which % len(idle)]
        query = {"verb": verb, "metadataPrefix": "oai_dc"}
        harvest = Harvest(verb, chain.set_spec, None, None)
        if chain.set_spec is not None:
            query["set"] = chain.set_spec
        if chain.from_ is not None:
            query["from"] = chain.from_
            harvest.from_ = parse_datestamp(chain.from_)[0]
        chain.harvest, chain.previous_from = harvest, chain.from_
        self.first_page(harvest, query, self.ask(query))
        chain.from_ = harvest.response_date
        chain.page_taken()

    @precondition(lambda self: any(c.harvest is not None for c in self.chains.values()))
    @rule(which=st.integers(0, 2), server=st.integers(0, 1))
    @guarded
    def incremental_next_page(self, which: int, server: int = 0) -> None:
        going = [c for c in self.chains.values() if c.harvest is not None]
        chain = going[which % len(going)]
        assert chain.harvest is not None and chain.harvest.token is not None
        self.resume(chain.harvest, chain.harvest.token, server)
        chain.page_taken()

    @precondition(lambda self: bool(self.stored))
    @rule(data=st.data())
    @guarded
    def get_record(self, data: st.DataObject) -> None:
        identifier = data.draw(st.sampled_from([*sorted(self.stored), REPO + "10722/404"]))
        root = self.ask({"verb": "GetRecord", "identifier": identifier,
                         "metadataPrefix": "oai_dc"})  # fmt: skip
        if identifier not in self.stored:
            assert self.errors(root) == ["idDoesNotExist"]
            return
        assert state_of(root.find(".//oai:header", NS)) == (identifier, self.stored[identifier])
        self.check_metadata(root)

    # The end: the writes stop, the clock moves on, the harvests finish.

    def writes_stop_and_the_chain_catches_up(self) -> None:
        """Once the writes stop and the clock has moved on, an incremental chain of the whole
        repository holds every record as stored; one of a set, every record in the set (a
        record that left it is not listed there: docs/virtual-sets.md, "Leaving has no
        signal in OAI-PMH")."""
        for harvest in list(self.harvests):
            while not harvest.done:
                assert harvest.token is not None
                self.resume(harvest, harvest.token)
        self.clock.moment = max(self.clock.moment, START) + timedelta(days=2)
        for chain in self.chains.values():
            while chain.harvest is not None:
                assert chain.harvest.token is not None
                self.resume(chain.harvest, chain.harvest.token)
                chain.page_taken()
        final = self.read_store()
        for n, chain in enumerate(self.chains.values()):
            self.incremental_harvest("ListIdentifiers", n)
            while chain.harvest is not None:
                self.incremental_next_page(0)
            expected = {
                i: s for i, s in final.items() if chain.set_spec in (None, *self.members[i])
            }
            found = {i: s for i, s in chain.seen.items() if i in expected}
            assert found == expected, {
                i: (found.get(i), expected.get(i))
                for i in set(found) | set(expected)
                if found.get(i) != expected.get(i)
            }
            if chain.set_spec is None:
                assert set(chain.seen) == set(final)


def run_model(backend: str, request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory, examples: int) -> None:  # fmt: skip
    """Run the model on `backend`, a new empty store per example."""
    names = count()
    if backend == "sqlite":

        def new_store() -> str:
            return sqlite_url(tmp_path_factory.mktemp("promises") / "oai.sqlite3")

        def dispose(url: str) -> None:
            pass

    else:
        cluster = request.getfixturevalue("postgres")

        def new_store() -> str:
            return str(cluster.create_database(f"promises_{next(names)}"))

        def dispose(url: str) -> None:
            cluster.drop_database(url.rsplit("/", 1)[1])

    folder = tmp_path_factory.mktemp("loads")
    # Looking for new cases (docs/development.md): TEST_PROMISES_SHRINK=0 reports the first
    # failure as found, without the minutes shrinking a long sequence takes;
    # TEST_PROMISES_STEPS=N makes sequences of up to N steps.
    shrink = os.environ.get("TEST_PROMISES_SHRINK") != "0"
    phases = [p for p in Phase if shrink or p is not Phase.shrink]
    TALLY.clear()
    run_state_machine_as_test(
        lambda: HarvestPromises(new_store, dispose, folder),
        settings=settings(
            max_examples=examples,
            stateful_step_count=int(os.environ.get("TEST_PROMISES_STEPS", "30")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            phases=phases,
        ),
    )
    print(backend, dict(sorted(TALLY.items())))


def test_harvests_keep_their_promises_through_any_sequence_of_writes(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Any writes interleaved with any harvests: within a list nothing is repeated and no
    unchanged record skipped, completeListSize and cursor are what the list returns, and
    an incremental chain ends with exactly what the store holds (the module's docstring)."""
    # A few seconds in the suite: an example costs ≈1.5 s of CPU on SQLite, more on
    # PostgreSQL (a database made and migrated for each). The long runs that look for new
    # cases: TEST_PROMISES_EXAMPLES=N (on each backend), `--hypothesis-profile=explore
    # --hypothesis-seed=S`, TEST_PROMISES_SHRINK and TEST_PROMISES_STEPS (run_model).
    default = 4 if backend == "sqlite" else 2
    examples = int(os.environ.get("TEST_PROMISES_EXAMPLES", default))
    run_model(backend, request, tmp_path_factory, examples)
