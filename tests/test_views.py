"""The HTTP face of /oai: every error condition of the specification, hostile input, and
HTTP behaviour (methods, sizes, content types). Every response is XSD-validated."""

from __future__ import annotations

import logging
import os
import re
from typing import Any
from urllib.parse import quote, quote_from_bytes

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from oaipmh_server import protocol

from .conftest import make_app
from .oai import NS, error_codes, request_attributes, tree

REPO = "oai:repository.example.org:"
SEED = REPO + "10722/212116"


@pytest.mark.parametrize(
    ("query", "code"),
    [
        # 3.6 badVerb: missing, illegal, repeated.
        pytest.param("", "badVerb", id="no-verb"),
        pytest.param("verb=Frobnicate", "badVerb", id="illegal-verb"),
        pytest.param("verb=identify", "badVerb", id="verbs-are-case-sensitive"),
        pytest.param("verb=Identify&verb=Identify", "badVerb", id="repeated-verb"),
        pytest.param("verb=Identify%00", "badVerb", id="nul-in-verb"),
        pytest.param("verb=List%ZZRecords", "badVerb", id="invalid-percent-escape"),
        pytest.param("verb=%FF%FE", "badVerb", id="invalid-utf8"),
        # badArgument: illegal, missing, repeated arguments.
        pytest.param("verb=Identify&foo=bar", "badArgument", id="unknown-argument"),
        pytest.param(
            "verb=Identify&metadataPrefix=oai_dc", "badArgument", id="argument-of-another-verb"
        ),
        pytest.param("verb=ListRecords", "badArgument", id="ListRecords-missing-prefix"),
        pytest.param("verb=ListIdentifiers", "badArgument", id="ListIdentifiers-missing-prefix"),
        pytest.param(
            "verb=GetRecord&metadataPrefix=oai_dc", "badArgument", id="GetRecord-missing-identifier"
        ),
        pytest.param(
            f"verb=GetRecord&identifier={SEED}", "badArgument", id="GetRecord-missing-prefix"
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc",
            "badArgument",
            id="repeated-argument",
        ),
        pytest.param("verb=ListRecords&metadataPrefix=", "badArgument", id="empty-prefix"),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai%20dc",
            "badArgument",
            id="prefix-outside-its-pattern",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc%00", "badArgument", id="nul-in-prefix"
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&set=a%20b",
            "badArgument",
            id="set-outside-its-pattern",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&set=a::b", "badArgument", id="set-empty-level"
        ),
        pytest.param(
            "verb=ListSets&resumptionToken=x&set=a", "badArgument", id="token-is-exclusive"
        ),
        pytest.param(
            "verb=ListRecords&resumptionToken=x&metadataPrefix=oai_dc",
            "badArgument",
            id="token-with-prefix",
        ),
        pytest.param(
            "verb=ListRecords&resumptionToken=%01", "badArgument", id="control-character-in-token"
        ),
        pytest.param(
            "verb=GetRecord&metadataPrefix=oai_dc&identifier=../../etc/passwd",
            "badArgument",
            id="identifier-path",
        ),
        pytest.param(
            "verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:x:a%20b",
            "badArgument",
            id="identifier-with-space",
        ),
        pytest.param(
            "verb=ListMetadataFormats&identifier=%3Cscript%3E",
            "badArgument",
            id="identifier-not-a-uri",
        ),
        # Dates: strict syntax, real dates, same granularity, from <= until.
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-02-30",
            "badArgument",
            id="date-does-not-exist",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-13-01", "badArgument", id="month-13"
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=0000-01-01", "badArgument", id="year-zero"
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&until=2024-01-01T24:00:00Z",
            "badArgument",
            id="hour-24",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:00%2B02:00",
            "badArgument",
            id="offset-not-Z",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00:00.5Z",
            "badArgument",
            id="fractional-seconds",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01T00:00Z",
            "badArgument",
            id="minutes-granularity",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-1-1",
            "badArgument",
            id="unpadded-date",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=%D9%A2%D9%A0%D9%A2%D9%A4-01-01",
            "badArgument",
            id="non-ascii-digits",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01%0A",
            "badArgument",
            id="trailing-newline",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=%202024-01-01",
            "badArgument",
            id="leading-space",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=", "badArgument", id="empty-from"
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-02&until=2024-01-01",
            "badArgument",
            id="from-after-until",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2024-01-01&until=2024-01-02T00:00:00Z",
            "badArgument",
            id="mixed-granularity",
        ),
        # badResumptionToken: forged, damaged, garbage.
        pytest.param(
            "verb=ListRecords&resumptionToken=garbage", "badResumptionToken", id="garbage-token"
        ),
        pytest.param(
            "verb=ListIdentifiers&resumptionToken=eyJ2IjoiTGlzdFJlY29yZHMifQ.AAAA",
            "badResumptionToken",
            id="forged-token",
        ),
        pytest.param(
            "verb=ListSets&resumptionToken=%27%3B%20DROP%20TABLE%20records%3B--",
            "badResumptionToken",
            id="sql-in-token",
        ),
        # cannotDisseminateFormat.
        pytest.param(
            "verb=ListRecords&metadataPrefix=marc21",
            "cannotDisseminateFormat",
            id="ListRecords-unknown-format",
        ),
        pytest.param(
            "verb=ListIdentifiers&metadataPrefix=mods",
            "cannotDisseminateFormat",
            id="ListIdentifiers-unknown-format",
        ),
        pytest.param(
            f"verb=GetRecord&identifier={SEED}&metadataPrefix=marc21",
            "cannotDisseminateFormat",
            id="GetRecord-unknown-format",
        ),
        # idDoesNotExist.
        pytest.param(
            f"verb=GetRecord&identifier={REPO}10722/0&metadataPrefix=oai_dc",
            "idDoesNotExist",
            id="unknown-item",
        ),
        pytest.param(
            "verb=GetRecord&identifier=oai:other.example.org:10722/212116&metadataPrefix=oai_dc",
            "idDoesNotExist",
            id="another-repository",
        ),
        pytest.param(
            f"verb=GetRecord&identifier={REPO}&metadataPrefix=oai_dc",
            "idDoesNotExist",
            id="empty-local-id",
        ),
        pytest.param(
            f"verb=GetRecord&identifier={quote(REPO + chr(39) + ';DROP-TABLE-records;--')}&metadataPrefix=oai_dc",
            "idDoesNotExist",
            id="sql-in-identifier",
        ),
        pytest.param(
            f"verb=ListMetadataFormats&identifier={REPO}10722/0",
            "idDoesNotExist",
            id="ListMetadataFormats-unknown-item",
        ),
        # noRecordsMatch.
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&from=2100-01-01",
            "noRecordsMatch",
            id="from-in-the-future",
        ),
        pytest.param(
            "verb=ListIdentifiers&metadataPrefix=oai_dc&until=1900-01-01",
            "noRecordsMatch",
            id="until-before-everything",
        ),
        pytest.param(
            "verb=ListRecords&metadataPrefix=oai_dc&set=no_such_set",
            "noRecordsMatch",
            id="unknown-set",
        ),
    ],
)
def test_error_code(reading_client: FlaskClient, query: str, code: str) -> None:
    assert error_codes(reading_client.get(f"/oai?{query}")) == [code]
    # The server stays healthy after anything.
    assert error_codes(reading_client.get("/oai?verb=Identify")) == []


@pytest.mark.parametrize(
    "query",
    [
        "verb=Frobnicate&metadataPrefix=%3Cx%3E",
        "verb=ListRecords&metadataPrefix=oai_dc&from=2024-02-30",
        "verb=Identify&%3Cscript%3E=%22%26",
    ],
)
def test_bad_verb_and_bad_argument_echo_no_attributes(
    reading_client: FlaskClient, query: str
) -> None:
    """3.2: the request element of a badVerb or badArgument answer has no attributes."""
    assert request_attributes(reading_client.get(f"/oai?{query}")) == {}


def test_other_errors_echo_the_arguments(reading_client: FlaskClient) -> None:
    response = reading_client.get("/oai?verb=ListRecords&metadataPrefix=marc21&set=a")
    assert request_attributes(response) == {
        "verb": "ListRecords",
        "metadataPrefix": "marc21",
        "set": "a",
    }


def test_echoed_values_are_escaped(reading_client: FlaskClient) -> None:
    token = "a<b>&\"c'"
    response = reading_client.get(
        "/oai", query_string={"verb": "ListSets", "resumptionToken": token}
    )
    assert error_codes(response) == ["badResumptionToken"]
    assert request_attributes(response)["resumptionToken"] == token
    assert b"a&lt;b&gt;&amp;&quot;c'" in response.data


def test_no_set_hierarchy_without_sets(empty_database_url: str, tmp_path) -> None:
    records = tmp_path / "r.json"
    records.write_text(
        '{"id": "1", "metadata": [{"field": "dc.date.accessioned", "value": "2020-01-01"}]}'
    )
    from .conftest import load_into

    load_into(empty_database_url, records)
    client = make_app(empty_database_url).test_client()
    assert error_codes(client.get("/oai?verb=ListSets")) == ["noSetHierarchy"]
    assert error_codes(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc&set=a")) == [
        "noSetHierarchy"
    ]


def test_empty_repository(empty_database_url: str) -> None:
    client = make_app(empty_database_url).test_client()
    assert error_codes(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")) == [
        "noRecordsMatch"
    ]
    assert error_codes(client.get("/oai?verb=Identify")) == []


def test_post_answers_as_get(
    client: FlaskClient, frozen_now, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(protocol, "new_harvest_id", lambda: "sameId00")  # tokens: same bytes
    query = {"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "com_10722_1"}
    get = client.get("/oai", query_string=query)
    post = client.post("/oai", data=query)
    assert post.status_code == 200
    assert post.data == get.data


def test_post_errors_like_get(reading_client: FlaskClient) -> None:
    assert error_codes(reading_client.post("/oai", data={"verb": "Nope"})) == ["badVerb"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "PROPFIND"])
def test_unsupported_methods_get_405_with_allow(reading_client: FlaskClient, method: str) -> None:
    response = reading_client.open("/oai?verb=Identify", method=method)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST", "HEAD"}
    assert b"Traceback" not in response.data


def test_head_answers_without_body(reading_client: FlaskClient) -> None:
    response = reading_client.head("/oai?verb=Identify")
    assert response.status_code == 200
    assert response.data == b""


def test_huge_query_string_is_414(reading_client: FlaskClient) -> None:
    response = reading_client.get("/oai?verb=Identify&x=" + "a" * 1_000_000)
    assert response.status_code == 414
    assert error_codes(reading_client.get("/oai?verb=Identify")) == []


def test_huge_post_body_is_413(reading_client: FlaskClient) -> None:
    response = reading_client.post("/oai", data={"verb": "Identify", "x": "a" * 1_000_000})
    assert response.status_code == 413


def test_post_that_is_not_a_form_is_415(reading_client: FlaskClient) -> None:
    response = reading_client.post(
        "/oai", data=b'{"verb": "Identify"}', content_type="application/json"
    )
    assert response.status_code == 415


def test_other_paths_are_404(reading_client: FlaskClient) -> None:
    response = reading_client.get("/oai/../../etc/passwd")
    assert response.status_code == 404
    assert b"Traceback" not in response.data


def test_many_arguments(reading_client: FlaskClient) -> None:
    query = "verb=Identify&" + "&".join(f"a{i}=1" for i in range(500))
    assert error_codes(reading_client.get(f"/oai?{query}")) == ["badArgument"]


@pytest.mark.store_behaviour
def test_database_down_is_503_with_retry_after(client: FlaskClient, app, backend, request) -> None:
    store = app.extensions["oaipmh"].store
    store.engine.dispose()
    if backend == "sqlite":
        os.remove(store.engine.url.database)
        os.mkdir(store.engine.url.database)  # unopenable now
    else:
        request.getfixturevalue("postgres").drop_database(store.engine.url.database)
    response = client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert b"sqlite" not in response.data.lower() and b"psycopg" not in response.data.lower()


def test_healthz_says_unavailable_in_json_as_it_says_ok(client: FlaskClient, app: Any) -> None:
    """A monitor reads /healthz's JSON ({"status": "ok", "records": N}): the 503 of a
    database that does not answer was plain text, which such a monitor could not parse
    just when it mattered. Its status and Retry-After are a load balancer's, as before."""
    assert client.get("/healthz").get_json()["status"] == "ok"
    store = app.extensions["oaipmh"].store
    store.engine.dispose()
    os.remove(store.engine.url.database)
    os.mkdir(store.engine.url.database)  # unopenable now
    response = client.get("/healthz")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.mimetype == "application/json"
    assert response.get_json() == {"status": "unavailable"}


@pytest.mark.parametrize("backend", ["sqlite"])
def test_database_down_is_logged_in_one_line(
    client: FlaskClient, app, caplog: pytest.LogCaptureFixture
) -> None:
    """The server's log is read line by line (journald, a log shipper, `harvests` beside
    the access lines): the driver's message ran over three lines, the last SQLAlchemy's
    "(Background on this error at: https://sqlalche.me/…)"."""
    store = app.extensions["oaipmh"].store
    store.engine.dispose()
    os.remove(store.engine.url.database)
    os.mkdir(store.engine.url.database)  # unopenable now
    caplog.set_level(logging.WARNING, logger="oaipmh_server.web.views")
    assert client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc").status_code == 503
    (said,) = [r.getMessage() for r in caplog.records if r.name == "oaipmh_server.web.views"]
    assert said.startswith("store unavailable: (sqlite3.OperationalError) unable to open")
    assert "\n" not in said and "sqlalche.me" not in said


def test_content_type_is_text_xml_utf8(reading_client: FlaskClient) -> None:
    for query in ("verb=Identify", "verb=Nope", "verb=ListSets"):
        response = reading_client.get(f"/oai?{query}")
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
        assert tree(response).tag == f"{{{NS['oai']}}}OAI-PMH"


@pytest.mark.parametrize("host", ["evil<script>", 'a"b', "x y", "\u00e9x.org", "[::1"])
def test_hostile_host_header_is_not_echoed(reading_client: FlaskClient, host: str) -> None:
    """Every hostile Host is answered (200, an Identify), and none is echoed in baseURL."""
    response = reading_client.get("/oai?verb=Identify", headers={"Host": host})
    assert response.status_code == 200, (host, response.status_code)
    base_url = tree(response).findtext("oai:Identify/oai:baseURL", namespaces=NS)
    assert base_url and host not in base_url


def test_configured_base_url_is_advertised(database_url: str) -> None:
    client = make_app(database_url, base_url="https://hub.example.org/oai").test_client()
    root = tree(client.get("/oai?verb=Identify"))
    assert root.findtext("oai:Identify/oai:baseURL", namespaces=NS) == "https://hub.example.org/oai"
    assert root.findtext("oai:request", namespaces=NS) == "https://hub.example.org/oai"


def test_random_hostile_requests_never_break(reading_client: FlaskClient) -> None:
    """A seeded fuzz over names and values crawlers send: every answer is a valid OAI
    document (the client validates it) or a deliberate HTTP status, never a 500."""
    import random

    rng = random.Random(4)
    names = ["verb", "metadataPrefix", "set", "from", "until", "identifier", "resumptionToken",
             "VERB", "", "verb[]", "\x00", "from ", "<x>", "é"]  # fmt: skip
    values = ["Identify", "ListRecords", "ListIdentifiers", "ListSets", "GetRecord",
              "ListMetadataFormats", "oai_dc", "com_10722_1", "com_10722_1:col_10722_5",
              "2015-07-21", "2015-07-21T02:23:32Z", "2024-02-30", "9999-99-99",
              "oai:repository.example.org:10722/212116", "../../etc/passwd", "' OR 1=1 --",
              "%", "%zz", "%00", "\x01\x02", "\ud7ff", "\U0001f600", "<![CDATA[", "]]>", "&amp;",
              "a" * 3000, "", " ", "\t", "null", "[]", "{}", "eyJ2IjoiTGlzdFJlY29yZHMifQ.x"]  # fmt: skip
    for _ in range(400):
        pairs = [(rng.choice(names), rng.choice(values)) for _ in range(rng.randint(0, 5))]
        if rng.random() < 0.7:
            pairs.insert(0, ("verb", rng.choice(values[:6])))
        response = (reading_client.post if rng.random() < 0.3 else reading_client.get)(
            "/oai", query_string=pairs
        )
        assert response.status_code in (200, 413, 414), (pairs, response.status_code)
        if response.status_code == 200:
            tree(response)
    assert error_codes(reading_client.get("/oai?verb=Identify")) == []


ARGUMENT_NAMES = ("verb", "metadataPrefix", "set", "from", "until", "identifier", "resumptionToken")
ARGUMENT_VALUES = (
    "Identify", "ListRecords", "ListIdentifiers", "ListSets", "GetRecord",
    "ListMetadataFormats", "oai_dc", "qdc", "dim", "oai_openaire", "com_10722_1",
    "com_10722_1:col_10722_5", "2015-07-21", "2015-07-21T02:23:32Z", "2016-12-31T23:59:60Z",
    "0000-01-01", "9999-12-31T23:59:59Z", "10000-01-01", "2015-07-21T02:23:32.5Z",
    "oai:repository.example.org:10722/212116", "oai:repository.example.org:10722/%2F",
)  # fmt: skip
# A name or value as bytes on the wire: a known one, any text, or any bytes (not UTF-8,
# NUL, controls, a surrogate's three bytes).
wire = st.one_of(
    st.text(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=12),
)
request_arguments = st.lists(
    st.tuples(
        st.one_of(st.sampled_from(ARGUMENT_NAMES).map(str.encode), wire),
        st.one_of(st.sampled_from(ARGUMENT_VALUES).map(str.encode), wire),
    ),
    max_size=5,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ARGUMENT_VALUES[:6]), request_arguments, st.booleans())
def test_any_arguments_are_answered_by_a_valid_document(
    reading_client: FlaskClient, verb: str, arguments: list[tuple[bytes, bytes]], post: bool
) -> None:
    """A verb and any arguments, by GET or as a POSTed form: a valid OAI-PMH document (the
    client validates it), whose badVerb or badArgument echoes no argument."""
    pairs = [(b"verb", verb.encode()), *arguments]
    query = "&".join(
        quote_from_bytes(name, safe="") + "=" + quote_from_bytes(value, safe="")
        for name, value in pairs
    )
    if post:
        response = reading_client.post(
            "/oai", data=query, content_type="application/x-www-form-urlencoded"
        )
    else:
        response = reading_client.get("/oai", environ_overrides={"QUERY_STRING": query})
    codes = error_codes(response)
    if {"badVerb", "badArgument"} & set(codes):
        assert request_attributes(response) == {}


@pytest.mark.parametrize(("accept", "coding"), [("gzip", "gzip"), ("deflate", "deflate"),
                                                ("gzip;q=0, deflate", "deflate"), ("br", None), ("", None)])  # fmt: skip
def test_compression_per_accept_encoding(
    reading_client: FlaskClient, accept: str, coding: str | None
) -> None:
    import gzip
    import zlib

    plain = reading_client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc").data
    response = reading_client.get(
        "/oai?verb=ListRecords&metadataPrefix=oai_dc", headers={"Accept-Encoding": accept}
    )
    assert response.headers.get("Content-Encoding") == coding
    assert "Accept-Encoding" in response.headers["Vary"]
    body = response.data
    if coding == "gzip":
        body = gzip.decompress(body)
    elif coding == "deflate":
        body = zlib.decompress(body)
    # The two answers may fall in different seconds: compare all but the clock's marks.
    assert without_clock(body) == without_clock(plain)


def without_clock(document: bytes) -> bytes:
    document = re.sub(rb"<responseDate>[^<]*<", b"<responseDate><", document)
    return re.sub(rb"(<resumptionToken[^>]*>)[^<]*<", rb"\1<", document)


def test_identify_advertises_compression(reading_client: FlaskClient) -> None:
    root = tree(reading_client.get("/oai?verb=Identify"))
    assert [e.text for e in root.iterfind("oai:Identify/oai:compression", NS)] == [
        "gzip",
        "deflate",
    ]


def test_healthz(client: FlaskClient, app) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["records"] > 40


def test_one_structured_access_line_per_request(client: FlaskClient, caplog) -> None:
    import json
    import logging

    with caplog.at_level(logging.INFO, logger="oaipmh_server.access"):
        client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc&set=com_10722_1")
        client.get("/oai?verb=Nope")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "oaipmh_server.access"]
    assert lines[0]["verb"] == "ListRecords" and lines[0]["status"] == 200
    assert lines[0]["arguments"]["set"] == "com_10722_1" and lines[0]["records"] > 0
    assert lines[1]["errors"] == ["badVerb"] and isinstance(lines[1]["ms"], float)


@pytest.mark.store_behaviour
def test_a_page_the_database_refuses_midway_is_503_with_retry_after(database_url: str) -> None:
    """A resumed page's statement runs on the driver's own cursor (store/engine.py,
    driver_rows): a database error there is a 503 like any other, not a 500, and names
    no driver."""
    app = make_app(database_url, page_size=2)
    client = app.test_client()
    first = client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc").get_data(as_text=True)
    token = re.search(r"<resumptionToken[^>]*>([^<]+)</resumptionToken>", first)
    assert token is not None
    with app.extensions["oaipmh"].store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE fragments RENAME TO fragments_gone")
    response = client.get(f"/oai?verb=ListRecords&resumptionToken={quote(token.group(1))}")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert b"sqlite" not in response.data.lower() and b"psycopg" not in response.data.lower()
