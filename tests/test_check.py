"""`oaipmh-server check`: each store rule catches what it names (a record made to fail it,
and one that passes); the command's report and exit status on the sample store; the
endpoint check rates this server clean, live, and catches each fault it names in an
endpoint broken for that rule."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from oaipmh_server import datestamps
from oaipmh_server.check import endpoint
from oaipmh_server.check.endpoint import Result, check_endpoint, http_fetch
from oaipmh_server.check.rules import PROFILES, RULES, rules_of
from oaipmh_server.check.store import check_records, render_json, render_text
from oaipmh_server.config import load_settings
from oaipmh_server.ingest import drafts
from oaipmh_server.record_source import Field
from oaipmh_server.store.schema import records_table

from . import xsd
from .cli import Ran, invoke
from .conftest import LOADED, ROOT, SAMPLES, Databases, LiveServer, load_into, make_app
from .db import fetch
from .test_hostile_exports import write_jsonl

# What these tests show depends on the store: they run on SQLite and PostgreSQL, except
# those marked same_on_every_store (what the identity rule and the reachable-id rule say is
# the same whichever store `check` reads: its reading of each store is shown by
# test_check_of_the_sample_store).
pytestmark = pytest.mark.store_behaviour

BASE: list[tuple[str, str]] = [
    ("dc.title", "A title"),
    ("dc.contributor.author", "Doe, Jane"),
    ("dc.date.issued", "2020-05"),
    ("dc.date.accessioned", "2020-06-01T10:00:00Z"),
    ("dc.identifier.uri", "https://hdl.handle.net/10722/1"),
    ("dc.type", "Article"),
    ("dc.language.iso", "en"),
    ("dc.identifier", "https://repo.example.org/bitstream/10722/1/paper.pdf"),
]


def failures(metadata: list[tuple[str, str]], local_id: str = "10722/1") -> dict[str, str]:
    """Rule → detail for every rule a record fails."""
    settings = load_settings(environ={})
    fields = tuple(Field(name, value) for name, value in metadata)
    with check_records([(local_id, fields)], settings, None) as report:
        return {rule: detail for _, rule, detail in map(json.loads, report.failures)}


def without(*names: str) -> list[tuple[str, str]]:
    return [(n, v) for n, v in BASE if n not in names]


def replaced(name: str, value: str) -> list[tuple[str, str]]:
    return [(n, value if n == name else v) for n, v in BASE]


# rule → (a record that fails it, the words its detail must hold)
CASES: dict[str, tuple[list[tuple[str, str]], str]] = {
    "openaire-title": (without("dc.title"), "no dc.title"),
    "openaire-resource-type": (
        replaced("dc.type", "Frobnication"),
        "'Frobnication' maps to no COAR",
    ),
    "openaire-publication-date": (without("dc.date.issued"), "no dc.date.issued"),
    "openaire-identifier": (without("dc.identifier.uri"), "no dc.identifier.uri"),
    "openaire-embargo-end": (
        [*BASE, ("dcterms.accessRights", "embargoed access")],
        "without an embargo end",
    ),
    "openaire-creator": (without("dc.contributor.author"), "no dc.contributor.author"),
    "openaire-language": (without("dc.language.iso"), "no dc.language"),
    "coar-terms": (
        [*BASE, ("dc.type.version", "sort of final")],
        "dc.type.version 'sort of final'",
    ),
    "iso639-language": (replaced("dc.language.iso", "English"), "'English': not an ISO 639"),
    "iso8601-date": (
        replaced("dc.date.issued", "May 2020"),
        "dc.date.issued 'May 2020': not an ISO 8601",
    ),
    "oval-minimal-dc": (
        without("dc.type", "dc.contributor.author"),
        "oai_dc has no dc:type, dc:creator",
    ),
    "base-landing-page": (
        without("dc.identifier.uri", "dc.identifier"),
        "no dc:identifier is an http(s) URL",
    ),
    "driver-type": (replaced("dc.type", "Frobnication"), "no dc:type that maps"),
    "core-full-text": (without("dc.identifier"), "no direct link to a full text"),
    "placeholder-handle": (
        replaced("dc.identifier.uri", "http://hdl.handle.net/123456789/5"),
        "placeholder handle",
    ),
}


def test_the_base_record_passes_every_rule() -> None:
    assert failures(BASE) == {}


@pytest.mark.parametrize("rule", CASES)
def test_each_store_rule_catches_what_it_names(rule: str) -> None:
    metadata, words = CASES[rule]
    found = failures(metadata)
    assert rule in found, found
    assert words in found[rule]


def test_access_rights_rule() -> None:
    """With no default access right, a record without an access field fails; with one that
    maps (the info:eu-repo form), it passes."""
    settings = load_settings({"openaire_default_access_right": ""}, environ={})

    def failed(metadata: list[tuple[str, str]]) -> set[str]:
        fields = tuple(Field(n, v) for n, v in metadata)
        with check_records([("1", fields)], settings, "openaire") as report:
            return {rule for _, rule, _ in map(json.loads, report.failures)}

    assert "openaire-access-rights" in failed(BASE)
    assert "openaire-access-rights" not in failed(
        [*BASE, ("dc.rights", "info:eu-repo/semantics/openAccess")]
    )


def test_every_rule_has_a_case() -> None:
    """openaire-access-rights needs a setting: test_access_rights_rule; reachable-id an id:
    test_an_id_whose_page_would_lead_elsewhere_fails_in_every_profile."""
    assert set(CASES) | {"openaire-access-rights", "reachable-id"} == {r.id for r in RULES}


def test_profiles_choose_their_rules() -> None:
    assert [r.id for r in rules_of("core")] == [
        "base-landing-page",
        "core-full-text",
        "placeholder-handle",
        "reachable-id",
    ]
    assert {r.weight("core") for r in rules_of("core")} == {"mandatory", "recommended"}
    assert len(rules_of(None)) == len(RULES)


def test_reports_summary_first_then_a_line_per_failure() -> None:
    settings = load_settings(environ={})
    records = [("a/1", tuple(Field(n, v) for n, v in BASE)),
               ("a/2", tuple(Field(n, v) for n, v in without("dc.title")))]  # fmt: skip
    lines: list[str] = []
    with check_records(records, settings, "openaire") as report:
        render_text(report, lines.append)
    assert lines[0] == "2 records checked against openaire"
    assert re.fullmatch(r"rule +level +failing +example", lines[2])
    assert re.fullmatch(r"openaire-title +mandatory +1 +a/2", lines[3])
    assert lines[-1] == "a/2: openaire-title: no dc.title"
    out: list[str] = []
    with check_records(records, settings, "openaire") as report:
        render_json(report, out.append)
    document = json.loads("\n".join(out))
    assert document["failed"] is True
    assert document["failures"] == [
        {"id": "a/2", "rule": "openaire-title", "detail": "no dc.title"}
    ]


def run_check(database_url: str, *arguments: str) -> Ran:
    """`oaipmh-server check ARGUMENTS`, in process (tests/cli.py): its output and exit
    status are the command's, which no process boundary changes."""
    return invoke("check", *arguments, env={"OAIPMH_DATABASE_URL": database_url})


def test_check_of_the_sample_store(database_url: str) -> None:
    """On both backends: every live sample record read (keyset batches), the CSV's
    UUID-only item named, exit 1 for a mandatory failure, JSON for scripts."""
    done = run_check(database_url, "--profile", "openaire")
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "46 records checked against openaire"
    assert (
        "0b4e7c2a-91f3-4d8e-a6b5-3c2d1e0f9a8b: openaire-identifier: no dc.identifier.uri or dc.identifier.doi"
        in lines
    )
    assert "Traceback" not in done.stderr
    as_json = run_check(database_url, "--profile", "base", "--format", "json")
    document = json.loads(as_json.stdout)
    assert document["records"] == 46
    assert {r["rule"] for r in document["rules"]} == {r.id for r in rules_of("base")}


@pytest.mark.same_on_every_store
def test_the_aggregators_page_shows_what_check_prints(database_url: str) -> None:
    """docs/aggregators.md quotes `check --profile openaire` and `--profile base` on the
    sample records: each transcript is what the command prints there, line for line (the
    BASE one showed two blank lines before its failures where the command prints one)."""
    page = (ROOT / "docs" / "aggregators.md").read_text("utf-8")
    transcript = page[page.index("$ oaipmh-server check --profile") :]
    transcript = transcript[: transcript.index("```")]
    quoted = re.findall(r"^\$ oaipmh-server check (.+)\n((?:(?!\$ ).*\n)*)", transcript, re.M)
    assert [arguments for arguments, _ in quoted] == ["--profile openaire", "--profile base"]
    for arguments, output in quoted:
        printed = run_check(database_url, *arguments.split()).stdout
        assert printed == output, arguments


# -- the endpoint check ----------------------------------------------------------------


def dcmi_given() -> dict[str, str]:
    """DCMI's dc.xsd and dcterms.xsd, as the tests have them, given to the checker (which
    knows only the schemas it ships)."""
    xsd.schema(qualified=True)  # the qdc schema set: DCMI's files are then on disk
    urls = [
        f"http://dublincore.org/schemas/xmls/qdc/2008/02/11/{n}" for n in ("dc.xsd", "dcterms.xsd")
    ]
    return {url: str(xsd.SCHEMAS / xsd.LOCATIONS[url]) for url in urls}


def failed(results: list[Result]) -> dict[str, str]:
    return {r.rule: r.detail for r in results if r.status == "fail"}


# An identity of the repository's own: the shipped placeholders fail identify-own-identity.
OWN_IDENTITY = {
    "repository_name": "Muster University Repository",
    "repository_identifier": "oai.muster-university.de",
    "admin_emails": ["oai-admin@muster-university.de"],
}
OWN_IDENTITY_TOML = """[repository]
name = "Muster University Repository"
identifier = "oai.muster-university.de"
admin_emails = ["oai-admin@muster-university.de"]
"""


@pytest.fixture(scope="module")
def own_live_server(
    databases: Databases, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The live server (gunicorn), under an identity of its own; one per module, as the
    tests that take it only read through it (a start costs seconds). On SQLite: the check
    of each store is test_the_endpoint_on_each_store_is_rated_clean's, in process."""
    url = databases.samples("sqlite", request)
    folder = tmp_path_factory.mktemp("own")
    config = folder / "oaipmh.toml"
    config.write_text(OWN_IDENTITY_TOML)
    server = LiveServer(url, folder, workers=1, OAIPMH_PAGE_SIZE="7", OAIPMH_CONFIG=str(config))
    yield server
    server.stop()


def test_the_live_server_is_rated_clean(own_live_server: LiveServer) -> None:
    live_server = own_live_server
    results = check_endpoint(live_server.url, http_fetch(), dcmi_given(), sample=100)
    assert failed(results) == {}
    statuses = {r.rule: r.status for r in results}
    assert {r: s for r, s in statuses.items() if s != "pass"} == {}
    for prefix in ("oai_dc", "qdc", "dim", "oai_openaire"):
        assert statuses[f"format-schema:{prefix}"] == "pass"
        assert statuses[f"format-namespace:{prefix}"] == "pass"


def test_the_check_command_against_the_live_server(own_live_server: LiveServer) -> None:
    done = run_check("sqlite://", own_live_server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SKIP  format-schema:qdc: not checked: schema http://dublincore.org" in done.stdout
    assert done.stdout.splitlines()[-1].endswith("0 failed, 1 not checked")


Rewrite = Callable[[dict[str, str], bytes], bytes]


class Broken:
    """A WSGI endpoint made of this server with one fault: `query` rewrites what the server
    is asked, `body` what it answers."""

    def __init__(
        self,
        app: Any,
        query: Callable[[dict[str, str]], dict[str, str]] = lambda q: q,
        body: Rewrite = lambda q, b: b,
        status: Callable[[dict[str, str]], int] = lambda q: 200,
    ) -> None:
        self.app, self.query, self.body, self.status = app, query, body, status

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        asked = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        environ["QUERY_STRING"] = urlencode(self.query(dict(asked)))
        captured: dict[str, Any] = {}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, start))
        if environ["PATH_INFO"] == "/oai":
            body = self.body(asked, body)
        code = self.status(asked)
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        start_response(captured["status"] if code == 200 else f"{code} Broken", headers)
        return [body]


def fetch_from(wsgi: Any) -> Callable[[str], tuple[int, bytes]]:
    client = Client(wsgi)

    def fetch(url: str) -> tuple[int, bytes]:
        parts = urlsplit(url)
        response = client.get(parts.path, query_string=parts.query)
        return response.status_code, response.get_data()

    return fetch


def when(verb: str, rewrite: Callable[[bytes], bytes]) -> Rewrite:
    return lambda q, b: rewrite(b) if q.get("verb") == verb else b


def drop(
    *names: str,
    verb: str = "ListIdentifiers",
    only_if: Callable[[dict[str, str]], bool] = lambda q: True,
) -> Callable[[dict[str, str]], dict[str, str]]:
    def rewrite(q: dict[str, str]) -> dict[str, str]:
        if q.get("verb") == verb and only_if(q):
            return {k: v for k, v in q.items() if k not in names}
        return q

    return rewrite


def replace_query(
    match: Callable[[dict[str, str]], bool], new: dict[str, str]
) -> Callable[[dict[str, str]], dict[str, str]]:
    return lambda q: new if match(q) else q


SEED = "oai:oai.muster-university.de:10722/212116"
FAULTS: dict[str, dict[str, Any]] = {
    "identify-own-identity": {
        "body": when(
            "Identify",
            lambda b: b.replace(b"Muster University Repository", b"Sample DSpace Repository"),
        )
    },
    "endpoint-answers": {"status": lambda q: 500 if q.get("verb") == "Identify" else 200},
    "identify-base-url": {
        "body": when(
            "Identify",
            lambda b: b.replace(
                b"<baseURL>http://localhost/oai<", b"<baseURL>http://elsewhere.example.org/oai<"
            ),
        )
    },
    "identify-granularity": {
        "body": when(
            "Identify", lambda b: b.replace(b"YYYY-MM-DDThh:mm:ssZ", b"YYYY-MM-DDThh:mm:ss")
        )
    },
    "identify-deleted-record": {
        "body": when("Identify", lambda b: b.replace(b"persistent", b"sometimes"))
    },
    "identify-oai-identifier": {
        "body": when(
            "Identify", lambda b: re.sub(rb"<description>.*?</description>", b"", b, flags=re.S)
        )
    },
    "identify-earliest-datestamp": {
        "body": when(
            "Identify",
            lambda b: re.sub(
                rb"<earliestDatestamp>[^<]*<", b"<earliestDatestamp>2030-01-01T00:00:00Z<", b
            ),
        )
    },
    "responses-valid": {
        "body": when("Identify", lambda b: b.replace(b"</Identify>", b"<frobnicate/></Identify>"))
    },
    "list-resumption": {
        "body": when(
            "ListIdentifiers",
            lambda b: re.sub(rb'completeListSize="\d+"', b'completeListSize="999"', b),
        )
    },
    "format-namespace:qdc": {
        "body": when(
            "ListMetadataFormats",
            lambda b: b.replace(
                b"http://dspace.org/qualifieddc/</metadataNamespace>",
                b"http://purl.org/dc/terms/</metadataNamespace>",
            ),
        )
    },
    "format-schema:dim": {
        "body": lambda q, b: b.replace(b"</dim:dim>", b"<dim:frobnicate/></dim:dim>")
    },
    "format-schema:oai_openaire": {
        "body": lambda q, b: b.replace(
            b"</datacite:titles>", b"</datacite:titles><oaire:frobnicate/>"
        )
    },
    "format-schema:oai_dc": {
        "body": when(
            "ListMetadataFormats",
            lambda b: b.replace(
                b"http://localhost/schemas/dim.xsd", b"http://localhost/schemas/missing.xsd"
            ),
        )
    },
    "incremental-day": {
        "query": drop(
            "from", "until", only_if=lambda q: "from" in q and "until" in q and "T" not in q["from"]
        )
    },
    "incremental-second": {
        "query": lambda q: (
            {**q, "from": "1990-01-01T00:00:00Z", "until": "1990-01-01T00:00:00Z"}
            if "T" in q.get("until", "")
            else q
        )
    },
    "incremental-day:datestamps": {
        "body": when(
            "ListIdentifiers", lambda b: re.sub(rb"<datestamp>[^<]*<", b"<datestamp>yesterday<", b)
        )
    },
    "from-beyond-last": {"query": drop("from", only_if=lambda q: "until" not in q and "from" in q)},
    "error-bad-verb": {
        "query": replace_query(lambda q: q.get("verb") == "Frobnicate", {"verb": "ListRecords"})
    },
    "error-bad-argument": {
        "query": lambda q: {**q, "metadataPrefix": "oai_dc"} if q == {"verb": "ListRecords"} else q
    },
    "error-bad-argument-illegal": {"query": drop("frobnicate", verb="Identify")},
    "error-bad-token": {
        "query": replace_query(
            lambda q: q.get("resumptionToken") == "not-a-token-0000",
            {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from": "2099-01-01"},
        )
    },
    "error-cannot-disseminate": {
        "query": lambda q: (
            {**q, "metadataPrefix": "oai_dc"}
            if q.get("metadataPrefix") == "no_such_format_0"
            else q
        )
    },
    "error-id-does-not-exist": {
        "query": lambda q: (
            {**q, "identifier": SEED} if "no/such/record" in q.get("identifier", "") else q
        )
    },
}
# The schema fault shows in dim's rule: its advertised schema URL no longer resolves.
EXPECTED = {
    "format-schema:oai_dc": "format-schema:dim",
    "incremental-day:datestamps": "incremental-day",
}


class Remembered:
    """A WSGI app that answers each request (path and query: all a `fetch_from` request
    varies) as `app` first answered it. The check asks the same questions for every fault,
    and a server over a store nothing writes to answers them the same way (the check reads
    no responseDate), so each is answered by the server once per module; the fault is then
    made of that answer, as of a fresh one."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.answers: dict[tuple[str, str], tuple[str, list[tuple[str, str]], bytes]] = {}

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        asked = (environ["PATH_INFO"], environ.get("QUERY_STRING", ""))
        if asked not in self.answers:
            captured: dict[str, Any] = {}

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"], captured["headers"] = status, headers
                return lambda data: None

            body = b"".join(self.app(environ, start))
            self.answers[asked] = (captured["status"], captured["headers"], body)
        status, headers, body = self.answers[asked]
        start_response(status, list(headers))
        return [body]


@pytest.fixture(scope="module")
def sample_app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The sample store served (page_size 7, an identity of its own), each answer made once
    per module (`Remembered`): the tests that take it only read."""
    from .conftest import LOADED, load_into, sqlite_url

    url = sqlite_url(tmp_path_factory.mktemp("check") / "oai.sqlite3")
    load_into(url, SAMPLES, clock=lambda: LOADED)
    app = make_app(url, page_size=7, **OWN_IDENTITY)
    yield Remembered(app)
    app.extensions["oaipmh"].store.close()


def test_the_endpoint_on_each_store_is_rated_clean(database_url: str) -> None:
    """Every rule of the endpoint check (incremental lists, tokens, each format) passes on
    each store; through HTTP (gunicorn) test_the_live_server_is_rated_clean shows it."""
    app = make_app(database_url, page_size=7, **OWN_IDENTITY)
    results = check_endpoint("http://localhost/oai", fetch_from(Broken(app)), dcmi_given())
    assert failed(results) == {}
    assert {r.rule: r.status for r in results if r.status != "pass"} == {}


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"slept {seconds} s")


def test_a_list_cut_short_by_a_load_during_the_walk_is_not_called_wrong(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator checks the endpoint while the nightly load runs: records that change
    after a list began leave it (they come in the next incremental harvest), so the list
    ends short of its completeListSize. That is the endpoint keeping its promise, not
    breaking it: the rule says it could not judge, and why, instead of failing."""
    load_into(empty_database_url, SAMPLES, clock=lambda: LOADED)
    clock = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s) for s in count())
    monkeypatch.setattr(datestamps, "now", lambda: next(clock))  # each asking a second later
    monkeypatch.setattr(endpoint.time, "sleep", no_sleep)  # the endpoint's clock is asked
    ids = [local_id for (local_id,) in fetch(empty_database_url, select(records_table.c.local_id))]
    app = make_app(empty_database_url, page_size=7, **OWN_IDENTITY)
    gone = write_jsonl(tmp_path / "gone.jsonl", [{"id": i, "deleted": True} for i in ids])
    pages = 0

    def loaded_after_the_first_page(environ: dict[str, Any], start_response: Any) -> Any:
        nonlocal pages
        answer = b"".join(app(environ, start_response))
        if "verb=ListIdentifiers" in environ.get("QUERY_STRING", ""):
            pages += 1
            if pages == 1:
                load_into(empty_database_url, gone, clock=lambda: next(clock))
        return [answer]

    results = check_endpoint(
        "http://localhost/oai", fetch_from(loaded_after_the_first_page), dcmi_given()
    )

    listed = {r.rule: r for r in results}["list-resumption"]
    assert (listed.status, listed.detail) == (
        "not checked",
        "completeListSize 50, listed 9; records changed while it was walked, and such "
        "records leave a list begun before: check again when nothing loads",
    )


def test_a_format_whose_pages_hold_no_record_and_a_new_token_each_ends_the_check(
    sample_app: Any,
) -> None:
    """An endpoint whose ListRecords pages hold no record but always a new token (a
    broken one, or one built to hold validators): the format's sample is taken from the
    pages that have records, and the check ends, as the whole list's walk does."""
    asked = count()

    def empty_page_and_a_new_token(query: dict[str, str], body: bytes) -> bytes:
        if query.get("verb") != "ListRecords":
            return body
        assert next(asked) < 500, "the check kept asking"
        return re.sub(
            rb"<ListRecords>.*</ListRecords>",
            f"<ListRecords><resumptionToken>t{next(asked)}</resumptionToken></ListRecords>".encode(),
            body,
            flags=re.S,
        )

    def first_page(query: dict[str, str]) -> dict[str, str]:
        """Every ListRecords asked as its first page, which the server answers."""
        if query.get("verb") != "ListRecords":
            return query
        return {"verb": "ListRecords", "metadataPrefix": query.get("metadataPrefix", "oai_dc")}

    endpoint = Broken(sample_app, query=first_page, body=empty_page_and_a_new_token)
    results = check_endpoint("http://localhost/oai", fetch_from(endpoint), dcmi_given())
    assert "responses-valid" in failed(results)  # an empty ListRecords is not valid


def test_a_list_cut_short_with_no_change_during_the_walk_fails(sample_app: Any) -> None:
    """The other side of the test above: short of its completeListSize with nothing
    changed since it began is a wrong size."""
    endpoint = Broken(
        sample_app,
        body=when(
            "ListIdentifiers",
            lambda b: re.sub(rb'completeListSize="\d+"', b'completeListSize="60"', b),
        ),
    )
    results = check_endpoint("http://localhost/oai", fetch_from(endpoint), dcmi_given())
    assert failed(results)["list-resumption"] == "completeListSize 60, listed 50"


@pytest.mark.parametrize("rule", FAULTS)
def test_each_endpoint_rule_catches_its_fault(sample_app: Any, rule: str) -> None:
    endpoint = Broken(sample_app, **FAULTS[rule])
    results = check_endpoint("http://localhost/oai", fetch_from(endpoint), dcmi_given())
    expected = EXPECTED.get(rule, rule)
    assert expected in failed(results), [r for r in results if r.status != "pass"]


def test_every_endpoint_rule_has_a_fault(sample_app: Any) -> None:
    results = check_endpoint("http://localhost/oai", fetch_from(Broken(sample_app)), dcmi_given())
    rules = {r.rule for r in results} | {"endpoint-answers"}
    assert rules - {
        "format-namespace:oai_dc",
        "format-namespace:dim",
        "format-namespace:oai_openaire",
        "format-schema:qdc",
    } <= set(FAULTS) | set(EXPECTED.values())


@pytest.mark.same_on_every_store
def test_the_shipped_placeholders_fail_the_identity_rule(database_url: str) -> None:
    """The sample identity (as a first run serves it): each placeholder named."""
    app = make_app(database_url, base_url="https://oai.example.edu/oai")
    results = check_endpoint("https://oai.example.edu/oai", fetch_from(app))
    detail = failed(results)["identify-own-identity"]
    assert detail == (
        "placeholders: repositoryName: 'Sample DSpace Repository' is the sample repository's "
        "name; repositoryIdentifier: 'repository.example.org' is an example domain; "
        "adminEmail: 'repository-admin@example.org' at an example domain; "
        "baseURL: 'https://oai.example.edu/oai' is on an example domain"
    )


def test_an_endpoint_that_does_not_answer_fails_cleanly() -> None:
    done = run_check("sqlite://", "http://127.0.0.1:1/oai")
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL  endpoint-answers: ?verb=Identify: ")
    assert "Traceback" not in done.stderr
    refused = run_check("sqlite://", "file:///etc/passwd")
    assert refused.returncode != 0 and "is not an http(s) URL" in refused.stderr


def test_a_schema_file_that_cannot_be_read_is_refused_before_checking(tmp_path: Path) -> None:
    """`--schema URL=FILE` with a FILE that is not there (a typo): libxml2 takes a failed
    import for a warning, so the format's records were reported invalid against a schema
    that had never been read. The command says which file, and checks nothing."""
    missing = tmp_path / "dc.xsd"
    url = "http://dublincore.org/schemas/xmls/qdc/2008/02/11/dc.xsd"
    done = run_check("sqlite://", "--schema", f"{url}={missing}", "http://127.0.0.1:1/oai")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"Error: --schema {url}={missing}: no such file\n"
    folder = run_check("sqlite://", "--schema", f"{url}={tmp_path}", "http://127.0.0.1:1/oai")
    assert folder.stderr == f"Error: --schema {url}={tmp_path}: no such file\n"


@pytest.mark.parametrize("sample", ["0", "-3"])
def test_a_sample_of_no_records_is_refused(sample: str) -> None:
    """`--sample 0` (or less) validated no record and said `SKIP … no records` for every
    format of an endpoint that has records: refused as the usage mistake it is."""
    done = run_check("sqlite://", "--sample", sample, "http://127.0.0.1:1/oai")
    assert done.returncode == 2
    assert "Invalid value for '--sample'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    "option", [["--profile", "openaire"], ["--progress"], ["--no-progress"]], ids=str
)
def test_an_option_of_the_store_check_is_refused_with_url(option: list[str]) -> None:
    """`check --profile openaire URL` ran the endpoint's rules, which no profile changes,
    as if it had checked OpenAIRE's: an option of the stored records' check given with
    URL is a usage mistake, said before anything is fetched."""
    done = run_check("sqlite://", *option, "http://127.0.0.1:1/oai")
    assert done.returncode == 2
    assert f"{option[0]} applies to the stored records' check, not to URL" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("option", [["--sample", "5"], ["--schema", "u=f"]], ids=str)
def test_an_option_of_the_endpoint_check_is_refused_without_url(option: list[str]) -> None:
    """The other way round: `--sample` and `--schema` say how to check URL; without one
    they were ignored while the stored records were checked."""
    done = run_check("sqlite://", *option)
    assert done.returncode == 2
    assert f"{option[0]} applies to the check of URL, and no URL is given" in done.stderr
    assert done.stdout == ""


def test_a_rules_level_comes_from_the_profile_that_asks_for_it() -> None:
    """CORE's full-text rule is mandatory with --profile core only: a metadata-only record
    that meets every other rule passes a plain check (exit 0) and fails CORE's."""
    settings = load_settings(environ={})
    metadata_only = replaced("dc.identifier", "https://repo.example.org/handle/10722/1")
    records = [("a/1", tuple(Field(n, v) for n, v in metadata_only))]
    with check_records(records, settings, None) as report:
        outcomes = {o.rule.id: (o.weight, o.failing) for o in report.outcomes}
        assert outcomes["core-full-text"] == ("recommended", 1)
        assert outcomes["base-landing-page"][0] == "mandatory"  # base's and driver's
        assert {rule: n for rule, (_, n) in outcomes.items() if n} == {"core-full-text": 1}
        assert report.failed is False
    with check_records(records, settings, "core") as report:
        assert [(o.rule.id, o.weight) for o in report.outcomes if o.failing] == [
            ("core-full-text", "mandatory")
        ]
        assert report.failed is True


def test_an_id_whose_page_would_lead_elsewhere_fails_in_every_profile() -> None:
    for local_id in ("x/../y", "../../oai", "/abs", "x/./y"):
        found = failures(BASE, local_id=local_id)
        assert found["reachable-id"].startswith(
            f"id {local_id!r} has an empty, '.' or '..' path segment"
        ), found
    assert "reachable-id" not in failures(BASE, local_id="20.500.12800/..x")
    assert all("reachable-id" in {r.id for r in rules_of(p)} for p in PROFILES)


@pytest.mark.same_on_every_store
def test_check_lists_stored_ids_whose_pages_lead_elsewhere_and_they_are_still_served(
    empty_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ids stored before loads refused them: `check` names them; the server still answers
    for them (a load, or `delete`, removes them)."""
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"id": "x/../y", "metadata": [
        {"field": "dc.title", "value": "T"},
        {"field": "dc.date.accessioned", "value": "2015-07-21T02:23:32Z"}]}) + "\n")  # fmt: skip
    with monkeypatch.context() as older:  # a load of a version without the rule
        older.setattr(drafts, "leads_elsewhere", lambda local_id: False)
        load_into(empty_database_url, path)
    done = run_check(empty_database_url)
    assert done.returncode == 1, done.stderr
    assert any(
        line.startswith("x/../y: reachable-id: id 'x/../y'") for line in done.stdout.splitlines()
    )
    client = make_app(empty_database_url).test_client()
    identifier = "oai:repository.example.org:x/../y"
    answer = client.get("/oai", query_string={"verb": "GetRecord", "metadataPrefix": "oai_dc",
                                              "identifier": identifier})  # fmt: skip
    assert b"<dc:title>T</dc:title>" in answer.data
