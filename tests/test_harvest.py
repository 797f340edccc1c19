"""Harvesting whole lists through resumption tokens (3.5): every record exactly once,
under any page size, across restarts, and while the repository changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from oaipmh_server import datestamps

from .conftest import SAMPLES, load_into, make_app
from .db import oai_identifiers, stored_fields
from .oai import NS, error_codes, harvest, identifiers, token, tree

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store: a token is checked (verb, signature) before the store
# is read, and how it is sent (GET or POST) is the web edge's.
pytestmark = pytest.mark.store_behaviour

REPO = "oai:repository.example.org:"


@pytest.mark.parametrize("page_size", [1, 3, 10, 100])
@pytest.mark.parametrize("verb", ["ListRecords", "ListIdentifiers"])
def test_full_harvest_gets_every_record_once(database_url: str, page_size: int, verb: str) -> None:
    client = make_app(database_url, page_size=page_size).test_client()
    pages, tokens = harvest(client, verb, metadataPrefix="oai_dc")
    harvested = [i for page in pages for i in identifiers(page)]
    total = oai_identifiers(database_url)
    assert len(harvested) == len(set(harvested)) == len(total)
    assert set(harvested) == total
    if len(total) > page_size:
        # completeListSize on every page, the cursor counting what came before,
        # and an empty token closing the list.
        assert {int(t.get("completeListSize")) for t in tokens} == {len(total)}
        assert [int(t.get("cursor")) for t in tokens] == [i * page_size for i in range(len(tokens))]
        assert tokens[-1].text is None
        assert all(t.text for t in tokens[:-1])
    else:
        assert tokens == [None]


def test_records_come_in_datestamp_order(client: FlaskClient) -> None:
    pages, _ = harvest(client, "ListIdentifiers", metadataPrefix="oai_dc")
    stamps = [(h.findtext("oai:datestamp", namespaces=NS), h.findtext("oai:identifier", namespaces=NS))
              for page in pages for h in page.iterfind(".//oai:header", NS)]  # fmt: skip
    assert stamps == sorted(stamps)


def test_deleted_records_are_listed_as_such(client: FlaskClient, database_url: str) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc")
    deleted = {r.findtext("oai:header/oai:identifier", namespaces=NS)
               for page in pages for r in page.iterfind(".//oai:record", NS)
               if r.find("oai:header", NS).get("status") == "deleted"}  # fmt: skip
    assert deleted == oai_identifiers(database_url, deleted=True)
    assert deleted
    for page in pages:
        for r in page.iterfind(".//oai:record", NS):
            has_metadata = r.find("oai:metadata", NS) is not None
            assert has_metadata == (r.find("oai:header", NS).get("status") is None)


def test_parent_set_includes_its_children(client: FlaskClient) -> None:
    """A community's set holds the records of every collection and community inside it
    (the tree of sample_records/sets.json, served in DSpace's flat style)."""
    tree_ = json.loads((SAMPLES / "sets.json").read_text("utf-8"))["sets"]
    sets = [
        s.text
        for page in harvest(client, "ListSets")[0]
        for s in page.iterfind(".//oai:setSpec", NS)
    ]
    parents = [s for s in sets if any(entry.get("parent") == s for entry in tree_)]
    assert parents
    for parent in parents:
        children = [entry["spec"] for entry in tree_ if entry.get("parent") == parent]
        assert children and set(children) <= set(sets)
        in_parent = {
            i
            for p in harvest(client, "ListIdentifiers", metadataPrefix="oai_dc", set=parent)[0]
            for i in identifiers(p)
        }
        in_children = set()
        for child in children:
            in_children |= {
                i
                for p in harvest(client, "ListIdentifiers", metadataPrefix="oai_dc", set=child)[0]
                for i in identifiers(p)
            }
        assert in_parent == in_children


def test_set_harvest_lists_only_members(client: FlaskClient) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc", set="col_10722_5")
    assert any(i == REPO + "10722/212116" for p in pages for i in identifiers(p))
    for page in pages:
        for header in page.iterfind(".//oai:header", NS):
            specs = [s.text for s in header.iterfind("oai:setSpec", NS)]
            assert "col_10722_5" in specs


def test_day_granularity_is_inclusive_of_the_whole_day(client: FlaskClient) -> None:
    seed = REPO + "10722/212116"  # datestamp 2015-07-21T02:23:32Z

    def listed(**arguments: str) -> bool:
        response = client.get(
            "/oai",
            query_string={"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", **arguments},
        )
        if error_codes(response) == ["noRecordsMatch"]:
            return False
        return seed in {
            i
            for p in harvest(client, "ListIdentifiers", metadataPrefix="oai_dc", **arguments)[0]
            for i in identifiers(p)
        }

    assert listed(**{"from": "2015-07-21", "until": "2015-07-21"})
    assert listed(**{"from": "2015-07-21T02:23:32Z", "until": "2015-07-21T02:23:32Z"})
    assert not listed(**{"until": "2015-07-20"})
    assert not listed(**{"from": "2015-07-22"})
    assert not listed(**{"from": "2015-07-21T02:23:33Z"})
    assert not listed(**{"until": "2015-07-21T02:23:31Z"})


def test_tokens_survive_a_restart(database_url: str) -> None:
    """The secret is kept in the database, so a new process accepts old tokens."""
    first = make_app(database_url, page_size=5, token_secret="")
    root = tree(first.test_client().get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))
    first_page = identifiers(root)
    first.extensions["oaipmh"].store.close()
    second = make_app(database_url, page_size=5, token_secret="")
    client = second.test_client()
    rest, _ = harvest(client, "ListRecords", resumptionToken=token(root).text)
    harvested = first_page + [i for p in rest for i in identifiers(p)]
    assert sorted(harvested) == sorted(oai_identifiers(database_url))


@pytest.mark.same_on_every_store
def test_token_verb_must_match(client: FlaskClient) -> None:
    root = tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))
    value = token(root).text
    assert error_codes(
        client.get("/oai", query_string={"verb": "ListIdentifiers", "resumptionToken": value})
    ) == ["badResumptionToken"]
    assert error_codes(
        client.get("/oai", query_string={"verb": "ListSets", "resumptionToken": value})
    ) == ["badResumptionToken"]


@pytest.mark.same_on_every_store
def test_tampered_token_over_http(client: FlaskClient) -> None:
    value = token(tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))).text
    for tampered in (value[:-1], value + "x", value.replace(".", "A", 1), value[: len(value) // 2]):
        assert error_codes(
            client.get("/oai", query_string={"verb": "ListRecords", "resumptionToken": tampered})
        ) == ["badResumptionToken"]


@pytest.mark.same_on_every_store
def test_token_works_over_post(client: FlaskClient) -> None:
    value = token(tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))).text
    response = client.post("/oai", data={"verb": "ListRecords", "resumptionToken": value})
    assert error_codes(response) == []
    assert identifiers(tree(response))


def test_list_sets_pages(database_url: str) -> None:
    client = make_app(database_url, page_size=2).test_client()
    pages, tokens = harvest(client, "ListSets")
    specs = [s.text for p in pages for s in p.iterfind(".//oai:set/oai:setSpec", NS)]
    assert len(specs) == len(set(specs)) == int(tokens[0].get("completeListSize"))
    assert specs == sorted(specs)


def test_harvest_with_changes_between_pages_loses_and_duplicates_nothing(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records unchanged during a harvest come exactly once; what changed during it comes
    in the next incremental harvest, from the first page's responseDate."""
    clock = iter([datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in range(60)])
    monkeypatch.setattr(datestamps, "now", lambda: next(clock))  # each request a second later
    client = make_app(database_url, page_size=4).test_client()
    first = tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))
    started = first.findtext("oai:responseDate", namespaces=NS)
    seen = identifiers(first)
    live = sorted(oai_identifiers(database_url, deleted=False) - set(seen))
    before = oai_identifiers(database_url)

    changed_seen = seen[0].removeprefix(REPO)  # already harvested, then changed
    changed_ahead, deleted_ahead = (i.removeprefix(REPO) for i in live[-2:])  # not reached yet
    fields = stored_fields(database_url, changed_seen, changed_ahead)

    def updated(local_id: str) -> dict:
        metadata = [{"field": n, "value": v, "lang": lang} for n, v, lang in fields[local_id]]
        metadata.append({"field": "dc.description", "value": "Corrected during the harvest."})
        return {"id": local_id, "sets": ["com_10722_1:col_10722_5"], "metadata": metadata}

    changes = tmp_path / "changes.jsonl"
    changes.write_text("\n".join(json.dumps(r) for r in [
        updated(changed_seen), updated(changed_ahead), {"id": deleted_ahead, "deleted": True},
        {"id": "10722/999001", "sets": ["com_10722_1:col_10722_5"], "metadata": [
            {"field": "dc.title", "value": "New during the harvest"},
            {"field": "dc.date.accessioned", "value": "2014-01-01T00:00:00Z"}]},
    ]))  # fmt: skip
    load_into(database_url, changes, clock=lambda: next(clock))

    rest, _ = harvest(client, "ListRecords", resumptionToken=token(first).text)
    harvest_ids = seen + [i for p in rest for i in identifiers(p)]
    assert len(harvest_ids) == len(set(harvest_ids)), "duplicated within one harvest"
    unchanged = before - {REPO + changed_seen, REPO + changed_ahead, REPO + deleted_ahead}
    assert unchanged <= set(harvest_ids), "an unchanged record was skipped"

    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_dc", **{"from": started})
    incremental = {r.findtext("oai:header/oai:identifier", namespaces=NS): r
                   for p in pages for r in p.iterfind(".//oai:record", NS)}  # fmt: skip
    for local_id in (changed_seen, changed_ahead):
        assert "Corrected during the harvest." in "".join(incremental[REPO + local_id].itertext())
    assert "New during the harvest" in "".join(incremental[REPO + "10722/999001"].itertext())
    assert incremental[REPO + deleted_ahead].find("oai:header", NS).get("status") == "deleted"
