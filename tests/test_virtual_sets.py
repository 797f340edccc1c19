"""Virtual sets ([virtual_sets]): sets whose records a filter on their fields chooses, as
DSpace's driver and openaire contexts do, listed in ListSets, harvested in every format,
and dated so that incremental harvests see records enter and leave them."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from sqlalchemy import event
from sqlalchemy.engine import Engine

from oaipmh_server import datestamps
from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.formats import build_formats
from oaipmh_server.ingest.load import refresh_sets
from oaipmh_server.ingest.summary import LoadSummary
from oaipmh_server.record_source import Field, File
from oaipmh_server.store import SqlStore
from oaipmh_server.virtual_sets import VirtualSets

from .conftest import SECRET, load_into, make_app, refused_problems
from .db import assert_set_sizes_kept
from .oai import NS, harvest, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store (a record naming a virtual set is refused as it is read).
pytestmark = pytest.mark.store_behaviour
# Worker processes render a load's records and apply the filters; they never touch the
# store (the loading process writes what they send back). So a test of both ways runs
# with workers on SQLite and without on each store, not every way on every store.
WORKERS_AND_STORES = pytest.mark.parametrize(
    ("backend", "workers"), [("sqlite", 0), ("sqlite", 2), ("postgresql", 0)]
)

BOTH = {"virtual_sets_served": ["driver", "openaire"]}
START = datetime(2026, 1, 1, tzinfo=UTC)
OPEN = {"field": "dc.rights", "value": "info:eu-repo/semantics/openAccess"}
CLOSED = {"field": "dc.rights", "value": "info:eu-repo/semantics/closedAccess"}
GRANT = {"field": "dc.relation", "value": "info:eu-repo/grantAgreement/EC/H2020/123456"}


class Clock:
    """The time of loads and lists, moved on by the test."""

    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        return self.moment

    def tick(self, seconds: int = 2) -> None:
        self.moment += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moving = Clock()
    monkeypatch.setattr(datestamps, "now", moving)
    return moving


def record(local_id: str, *extra: dict[str, str], author: bool = True) -> dict[str, Any]:
    metadata = [{"field": "dc.title", "value": f"Title {local_id}"},
                {"field": "dc.type", "value": "Article"},
                {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"}]  # fmt: skip
    if author:
        metadata.append({"field": "dc.contributor.author", "value": "Wang, D"})
    return {"id": local_id, "sets": ["col_10722_5"], "metadata": metadata + list(extra)}


def refreshed(
    url: str, definitions: dict[str, Any], served: list[str], **options: Any
) -> LoadSummary:
    """`oaipmh-server refresh-sets` with these [virtual_sets] definitions, `served` served:
    every stored record's virtual sets evaluated again. `options` as refresh_sets takes them."""
    settings = load_settings(
        {"database_url": url, "virtual_set_definitions": definitions,
         "virtual_sets_served": served}, environ={})  # fmt: skip
    store = SqlStore(url, token_secret=SECRET)
    try:
        return refresh_sets(store, settings, build_formats(settings), **options)
    finally:
        store.close()


def write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    return path


# v/1 open access: driver and openaire; v/2 funded: openaire; v/3 closed, v/4 without an
# author: neither.
RECORDS = [record("v/1", OPEN), record("v/2", GRANT), record("v/3", CLOSED),
           record("v/4", OPEN, author=False)]  # fmt: skip


def local_ids(roots: list[etree._Element]) -> list[str]:
    return [
        h.findtext("oai:identifier", namespaces=NS).rsplit(":", 1)[1]
        for root in roots
        for h in root.iterfind(".//oai:header", NS)
    ]


def headers(client: Any, query: str) -> dict[str, tuple[str, list[str], str | None]]:
    """local id → (datestamp, set specs, status) of a ListIdentifiers list, whole."""
    found = {}
    pages, _ = harvest(client, "ListIdentifiers", **dict(_pairs(query)))
    for root in pages:
        for h in root.iterfind(".//oai:header", NS):
            local_id = h.findtext("oai:identifier", namespaces=NS).rsplit(":", 1)[1]
            specs = [s.text for s in h.iterfind("oai:setSpec", NS)]
            found[local_id] = (h.findtext("oai:datestamp", namespaces=NS), specs, h.get("status"))
    return found


def _pairs(query: str) -> list[tuple[str, str]]:
    return [tuple(p.split("=", 1)) for p in query.split("&") if p]  # type: ignore[misc]


def response_date(client: Any, query: str) -> str:
    root = tree(client.get(f"/oai?verb=ListIdentifiers&{query}"))
    return str(root.findtext("oai:responseDate", namespaces=NS))


# -- the filter language --------------------------------------------------------------------


def fields(*pairs: tuple[str, str]) -> list[Field]:
    return [Field(name, value) for name, value in pairs]


def test_the_default_definitions_choose_as_dspace_contexts_do() -> None:
    settings = load_settings(BOTH, environ={})
    virtual = VirtualSets(settings)
    base = (("dc.title", "T"), ("dc.contributor.author", "A"))
    open_access = ("dc.rights", "info:eu-repo/semantics/openAccess")
    cases = [
        ((("dc.type", "info:eu-repo/semantics/article"), open_access), ("driver", "openaire")),
        ((("dc.type", "Article"), ("dcterms.accessRights", "open access")),
         ("driver", "openaire")),
        ((("dc.type", "Doctoral thesis"),), ()),
        ((("dc.type", "doctoralThesis"),
          ("dc.relation.projectid", "info:eu-repo/grantAgreement/EC/FP7/1")), ("openaire",)),
        ((("dc.type", "Article"), ("dc.relation", "http://example.org/grant")), ()),
        ((("dc.type", "Book chapter"), open_access), ()),
    ]  # fmt: skip
    for given, expected in cases:
        assert virtual.of(fields(*base, *given)) == expected, given
    # No author: neither.
    assert virtual.of(fields(("dc.title", "T"), ("dc.type", "Article"), open_access)) == ()


def test_conditions_each_do_what_they_say() -> None:
    definitions = {
        "present": {"name": "P", "field": "dc.subject.*"},
        "pattern": {"name": "M", "field": "dc.type", "matches": "^Thesis$"},
        "embargoed": {"name": "E", "access_right": ["embargoed access", "restricted access"]},
        "files": {"name": "F", "has_open_file": True},
        "neither": {"name": "N", "not": {"any": [{"field": "dc.subject.*"},
                                                 {"field": "dc.type", "matches": "Thesis"}]}},
    }  # fmt: skip
    settings = load_settings(
        {"virtual_set_definitions": definitions, "virtual_sets_served": list(definitions)},
        environ={},
    )
    virtual = VirtualSets(settings, has_open_file=lambda files: "open.pdf" in files)
    assert virtual.of(fields(("dc.subject", "x"))) == ("present",)
    assert virtual.of(fields(("dc.subject.lcsh", "x"))) == ("present",)
    assert virtual.of(fields(("dc.subjectx", "x"))) == ("neither",)
    assert virtual.of(fields(("dc.type", "Thesis"))) == ("pattern",)
    assert virtual.of(fields(("dc.type", "Master Thesis"))) == ()
    assert virtual.of(fields(("dc.date.embargo", "2030-01-01"))) == ("embargoed", "neither")
    assert virtual.of(fields(), files=["open.pdf"]) == ("files", "neither")
    # By default, the files' own rule (oaipmh_server/files.py): an ORIGINAL file anyone
    # may read; a restricted one or a thumbnail does not count.
    pdf = File("a.pdf", "ORIGINAL", 10, "0" * 32, "application/pdf", 1, access="open")
    real = VirtualSets(settings)
    assert real.of(fields(), files=[pdf]) == ("files", "neither")
    # A restricted file is the record's access right too (files.access_status, as DSpace's
    # AccessStatus): restricted access, in the set of that access right.
    assert real.of(fields(), files=[pdf._replace(access="restricted")]) == ("embargoed", "neither")
    assert real.of(fields(), files=[pdf._replace(bundle="THUMBNAIL")]) == ("neither",)
    assert real.of(fields()) == ("neither",)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        pytest.param({"field": "dc.title"}, 'needs a non-empty "name"', id="no-name"),
        pytest.param({"name": "X"}, "expected exactly one of field, access_right", id="no-condition"),
        pytest.param({"name": "X", "field": "title"}, "field: 'title' is not a field name",
                     id="bad-field"),
        pytest.param({"name": "X", "field": "dc.type", "matches": "(unclosed"},
                     "matches: '(unclosed' is not a regular expression", id="bad-regex"),
        pytest.param({"name": "X", "all": [{"field": "dc.title"}, {"access_right": "open"}]},
                     "all[2].access_right: 'open' is not a COAR access right", id="bad-access"),
        pytest.param({"name": "X", "any": []}, "any: expected a list of one or more", id="empty-any"),
        pytest.param({"name": "X", "field": "dc.title", "not": {"field": "dc.type"}},
                     "expected exactly one of", id="two-conditions"),
        pytest.param({"name": "X", "has_open_file": False}, "has_open_file: only true",
                     id="has-open-file-false"),
        pytest.param({"name": "X", "not": {"feild": "dc.title"}}, "not: expected exactly one of",
                     id="misspelt-inner"),
    ],
)  # fmt: skip
def test_a_bad_definition_is_a_config_error_naming_it(
    tmp_path: Path, definition: dict[str, Any], message: str
) -> None:
    config = tmp_path / "oaipmh.toml"
    lines = ["[virtual_sets.define.mine]"]
    lines += [f"{key} = {_toml(value)}" for key, value in definition.items()]
    config.write_text("\n".join(lines) + "\n", "utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert f"{config}: virtual_sets.define.mine: " in str(caught.value)
    assert message in str(caught.value)


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def test_a_served_set_must_be_defined_and_specs_must_be_flat(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"virtual_sets\.served: 'drivr' is not a set of "
                       r"\[virtual_sets.define\] \(defined: driver, openaire\)"):  # fmt: skip
        load_settings({"virtual_sets_served": ["drivr"]}, environ={})
    config = tmp_path / "oaipmh.toml"
    config.write_text('[virtual_sets.define."com_1:x"]\nname = "X"\nfield = "dc.title"\n')
    with pytest.raises(ConfigError, match=r"virtual_sets.define.com_1:x: 'com_1:x' is not a set "
                       "spec without ':'"):  # fmt: skip
        load_settings(environ={"OAIPMH_CONFIG": str(config)})


# -- served -----------------------------------------------------------------------------------


def test_list_sets_names_the_virtual_sets(empty_database_url: str, tmp_path: Path) -> None:
    load_into(empty_database_url, write(tmp_path / "r.jsonl", RECORDS), **BOTH)
    client = make_app(empty_database_url, **BOTH).test_client()
    pages, _ = harvest(client, "ListSets")
    sets = {
        s.findtext("oai:setSpec", namespaces=NS): s.findtext("oai:setName", namespaces=NS)
        for root in pages
        for s in root.iterfind(".//oai:set", NS)
    }
    assert sets == {"col_10722_5": "col_10722_5", "driver": "Open Access DRIVERset",
                    "openaire": "OpenAIRE"}  # fmt: skip


@WORKERS_AND_STORES
def test_a_virtual_set_is_harvested_in_every_format(
    empty_database_url: str, tmp_path: Path, workers: int
) -> None:
    """Whether worker processes or the loading process apply the filters."""
    load_into(empty_database_url, write(tmp_path / "r.jsonl", RECORDS), workers=workers, **BOTH)
    client = make_app(empty_database_url, page_size=1, **BOTH).test_client()
    for prefix in build_formats(load_settings(environ={})):
        for spec, expected in (("openaire", ["v/1", "v/2"]), ("driver", ["v/1"])):
            query = {"metadataPrefix": prefix, "set": spec}
            records, _ = harvest(client, "ListRecords", **query)
            assert sorted(local_ids(records)) == expected, (prefix, spec)
            assert all(r.find(".//oai:metadata", NS) is not None
                       for root in records for r in root.iterfind(".//oai:record", NS))  # fmt: skip
            identifiers, _ = harvest(client, "ListIdentifiers", **query)
            assert sorted(local_ids(identifiers)) == expected, (prefix, spec)
    everything = headers(client, "metadataPrefix=oai_dc")
    assert {i: specs for i, (_, specs, _) in everything.items()} == {
        "v/1": ["col_10722_5", "driver", "openaire"],
        "v/2": ["col_10722_5", "openaire"],
        "v/3": ["col_10722_5"],
        "v/4": ["col_10722_5"],
    }
    # Dated by dc.date.accessioned like any record of a first load.
    assert {stamp for stamp, _, _ in everything.values()} == {"2020-01-01T00:00:00Z"}


def test_records_entering_and_leaving_are_seen_by_incremental_harvests(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    load_into(empty_database_url, write(tmp_path / "r.jsonl", RECORDS), clock=clock, **BOTH)
    client = make_app(empty_database_url, **BOTH).test_client()
    before = headers(client, "metadataPrefix=oai_dc")
    last = response_date(client, "metadataPrefix=oai_dc&set=driver")

    # v/3 becomes open access (enters driver and openaire), v/1 closed (leaves both).
    changed = [record("v/1", CLOSED), RECORDS[1], record("v/3", OPEN), RECORDS[3]]
    clock.tick()
    summary = load_into(empty_database_url, write(tmp_path / "r.jsonl", changed), clock=clock,
                        **BOTH)  # fmt: skip
    clock.tick()
    assert (summary.updated, summary.unchanged) == (2, 2)
    assert summary.virtual_moves == {"driver": [1, 1], "openaire": [1, 1]}

    entered = headers(client, f"metadataPrefix=oai_dc&set=driver&from={last}")
    assert list(entered) == ["v/3"]
    assert entered["v/3"][1] == ["col_10722_5", "driver", "openaire"]
    assert entered["v/3"][0] >= last > before["v/3"][0]
    # v/1 left: a harvest of the set no longer lists it; harvests of everything (or of
    # its collection) get it again, with a new datestamp and without the spec.
    assert list(headers(client, "metadataPrefix=oai_dc&set=driver")) == ["v/3"]
    since = headers(client, f"metadataPrefix=oai_dc&from={last}")
    assert sorted(since) == ["v/1", "v/3"]
    assert since["v/1"][1] == ["col_10722_5"] and since["v/1"][0] >= last
    assert headers(client, f"metadataPrefix=oai_dc&set=col_10722_5&from={last}") == since
    # The others kept their datestamps.
    now = headers(client, "metadataPrefix=oai_dc")
    assert now["v/2"] == before["v/2"] and now["v/4"] == before["v/4"]


def test_a_tombstone_stays_in_its_virtual_sets(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """As DSpace keeps withdrawn items in its contexts: harvesters of the set learn of it."""
    load_into(empty_database_url, write(tmp_path / "r.jsonl", RECORDS), clock=clock, **BOTH)
    tombstone = {"id": "v/1", "deleted": True, "metadata": []}
    clock.tick()
    deleted = write(tmp_path / "d.jsonl", [tombstone, *RECORDS[1:]])
    load_into(empty_database_url, deleted, clock=clock, **BOTH)
    clock.tick()
    client = make_app(empty_database_url, **BOTH).test_client()
    driver = headers(client, "metadataPrefix=oai_dc&set=driver")
    assert {i: (specs, status) for i, (_, specs, status) in driver.items()} == {
        "v/1": (["col_10722_5", "driver", "openaire"], "deleted")
    }


@pytest.mark.same_on_every_store
def test_a_record_cannot_name_a_virtual_set_as_its_own(
    empty_database_url: str, tmp_path: Path
) -> None:
    own = {**RECORDS[2], "sets": ["driver"]}
    records = write(tmp_path / "r.jsonl", [RECORDS[0], own])
    assert refused_problems(empty_database_url, records, **BOTH) == [
        f"{tmp_path / 'r.jsonl'}:2: record v/3: set driver is a virtual set ([virtual_sets]): "
        "records are in it by its filter"
    ]


def test_a_virtual_set_cannot_take_the_spec_of_a_set_of_the_records(
    empty_database_url: str, tmp_path: Path
) -> None:
    records = write(tmp_path / "r.jsonl", [{**RECORDS[0], "sets": ["openaire"]}])
    load_into(empty_database_url, records)
    assert refused_problems(empty_database_url, records, **BOTH) == [
        "[virtual_sets] served: openaire is a set of the records already (a collection, or a "
        "set records name): a virtual set needs a spec of its own"
    ]


def test_changed_definitions_are_evaluated_again_re_dating_exactly_what_moves(
    empty_database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, clock: Clock
) -> None:
    """Served sets added or taken away, a filter changed: the server serves what is
    stored and warns; the next load (or refresh-sets) evaluates every record again, in
    one write, and only records that enter or leave a set get a new datestamp."""
    records = write(tmp_path / "r.jsonl", RECORDS)
    load_into(empty_database_url, records, clock=clock, virtual_sets_served=["driver"])
    client = make_app(empty_database_url, virtual_sets_served=["driver"]).test_client()
    before = headers(client, "metadataPrefix=oai_dc")
    last = response_date(client, "metadataPrefix=oai_dc")

    with caplog.at_level(logging.WARNING, logger="oaipmh_server"):
        stale = make_app(empty_database_url, **BOTH).test_client()
    assert any("virtual sets configured ([virtual_sets]: driver, openaire) are not those"
               in r.getMessage() for r in caplog.records)  # fmt: skip
    # Meanwhile the stored memberships are served: no openaire set yet.
    assert {i: s for i, (_, s, _) in headers(stale, "metadataPrefix=oai_dc").items()} == {
        i: s for i, (_, s, _) in before.items()
    }

    # A load of other records notices, and evaluates the stored ones again.
    clock.tick()
    new = write(tmp_path / "n.jsonl", [record("v/5")])
    summary = load_into(empty_database_url, new, clock=clock, **BOTH)
    clock.tick()
    assert summary.reevaluated and summary.redated == 2
    assert summary.virtual_moves == {"openaire": [2, 0]}
    assert_set_sizes_kept(empty_database_url)  # through the records re-evaluated
    moved = headers(client, f"metadataPrefix=oai_dc&from={last}")
    assert sorted(moved) == ["v/1", "v/2", "v/5"]
    assert moved["v/2"][1] == ["col_10722_5", "openaire"] and moved["v/2"][0] >= last
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="oaipmh_server"):
        make_app(empty_database_url, **BOTH)
    assert not caplog.records

    # A narrower openaire (funded only) and no driver: refresh-sets re-dates v/1 alone.
    last = response_date(client, "metadataPrefix=oai_dc")
    funded = {"openaire": {"name": "OpenAIRE", "field": "dc.relation.*",
                           "matches": "^info:eu-repo/grantAgreement/"}}  # fmt: skip
    clock.tick()
    summary = refreshed(empty_database_url, funded, ["openaire"], clock=clock)
    clock.tick()
    assert (summary.redated, summary.virtual_moves) == (1, {"driver": [0, 1], "openaire": [0, 1]})
    assert_set_sizes_kept(empty_database_url)
    client = make_app(empty_database_url, virtual_set_definitions=funded,
                      virtual_sets_served=["openaire"]).test_client()  # fmt: skip
    assert headers(client, f"metadataPrefix=oai_dc&from={last}").keys() == {"v/1"}
    assert list(headers(client, "metadataPrefix=oai_dc&set=openaire")) == ["v/2"]
    sets = [s.findtext("oai:setSpec", namespaces=NS)
            for s in tree(client.get("/oai?verb=ListSets")).iterfind(".//oai:set", NS)]  # fmt: skip
    assert sets == ["col_10722_5", "openaire"]
    # Evaluating again with nothing changed changes nothing.
    again = refreshed(empty_database_url, funded, ["openaire"])
    assert (again.redated, again.virtual_moves) == (0, {})


def test_turning_virtual_sets_off_takes_them_away(
    empty_database_url: str, tmp_path: Path, clock: Clock
) -> None:
    records = write(tmp_path / "r.jsonl", RECORDS)
    load_into(empty_database_url, records, clock=clock, **BOTH)
    clock.tick()
    summary = load_into(empty_database_url, records, clock=clock)
    clock.tick()
    # The load's own records left the sets as they were loaded (updated, re-dated).
    assert (summary.updated, summary.unchanged) == (2, 2)
    assert summary.virtual_moves == {"driver": [0, 1], "openaire": [0, 2]}
    assert_set_sizes_kept(empty_database_url)
    client = make_app(empty_database_url).test_client()
    assert all(specs == ["col_10722_5"]
               for _, specs, _ in headers(client, "metadataPrefix=oai_dc").values())  # fmt: skip
    sets = tree(client.get("/oai?verb=ListSets")).iterfind(".//oai:setSpec", NS)
    assert [s.text for s in sets] == ["col_10722_5"]


def test_refresh_sets_with_no_virtual_sets_reads_no_record(
    empty_database_url: str, tmp_path: Path
) -> None:
    """With no virtual set served, now or before, no record can enter or leave one:
    `refresh-sets` (in a nightly cron, say) says so without reading every record's
    fields, which took 52 s at a million records."""
    load_into(empty_database_url, write(tmp_path / "r.jsonl", RECORDS))
    sent: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", seen)
    try:
        summary = refreshed(empty_database_url, {}, [])
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert (summary.redated, summary.virtual_moves) == (0, {})
    assert not [s for s in sent if "fields" in s and "records" in s]


# -- files ---------------------------------------------------------------------------------

WITH_FILE = {
    "fulltext": {"name": "Open full text", "all": [{"field": "dc.title"}, {"has_open_file": True}]}
}


def _file(name: str, access: str) -> dict[str, Any]:
    return {"name": name, "size": 10, "md5": "0" * 32, "access": access}


@WORKERS_AND_STORES
def test_a_set_of_records_with_an_open_file_reads_their_files(
    empty_database_url: str, tmp_path: Path, clock: Clock, workers: int
) -> None:
    """`has_open_file` reads the files a load gives (in the workers or the loading
    process), the stored ones when a CSV merge leaves them, and the stored ones again when
    the definitions change: only an ORIGINAL file anyone may read counts."""
    records = [
        {**record("f/1"), "files": [_file("a.pdf", "open")]},
        {**record("f/2"), "files": [_file("b.pdf", "restricted")]},
        {**record("f/3"), "files": [{**_file("c.jpg", "open"), "bundle": "THUMBNAIL"}]},
        record("f/4"),
    ]
    source = write(tmp_path / "r.jsonl", records)
    settings = {"virtual_set_definitions": WITH_FILE, "virtual_sets_served": ["fulltext"]}
    load_into(empty_database_url, source, clock=clock, workers=workers, **settings)
    client = make_app(empty_database_url, **settings).test_client()
    assert list(headers(client, "metadataPrefix=oai_dc&set=fulltext")) == ["f/1"]

    # f/2's file opened: it enters (with a new datestamp), f/1 stays.
    clock.tick()
    last = response_date(client, "metadataPrefix=oai_dc")
    records[1]["files"] = [_file("b.pdf", "open")]
    load_into(empty_database_url, write(source, records), clock=clock, workers=workers,
              **settings)  # fmt: skip
    clock.tick()
    assert sorted(headers(client, "metadataPrefix=oai_dc&set=fulltext")) == ["f/1", "f/2"]
    assert list(headers(client, f"metadataPrefix=oai_dc&from={last}")) == ["f/2"]

    # The set defined anew (a title matching "f/1"): evaluated over the stored files.
    narrower = {"fulltext": {"name": "Open full text", "all": [
        {"field": "dc.title", "matches": "f/1$"}, {"has_open_file": True}]}}  # fmt: skip
    clock.tick()
    summary = refreshed(empty_database_url, narrower, ["fulltext"], clock=clock)
    assert (summary.redated, summary.virtual_moves) == (1, {"fulltext": [0, 1]})
    client = make_app(empty_database_url, virtual_set_definitions=narrower,
                      virtual_sets_served=["fulltext"]).test_client()  # fmt: skip
    assert list(headers(client, "metadataPrefix=oai_dc&set=fulltext")) == ["f/1"]
