"""HTTP edges a client may push on (issue 13): the documented limits are the real ones, by
the bytes actually received (chunked bodies too); bytes that are not UTF-8 are a
badArgument, not a missing verb; forwarded headers count from configured proxies only."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.web.provider import MAX_BODY, MAX_QUERY_STRING
from oaipmh_server.web.serving import SMALL_ANSWER, SendBudget

from .conftest import Databases, LiveServer, free_port, make_app
from .oai import NS, error_codes, request_attributes, tree
from .xsd import validate

FORM = "application/x-www-form-urlencoded"


def chunked(client: FlaskClient, body: bytes, content_type: str = FORM) -> object:
    """A POST without Content-Length, its body ending with the stream (as gunicorn and
    Werkzeug's own server hand on a chunked body)."""
    return client.post(
        "/oai",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": content_type, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_form_over_the_body_limit_is_413(client: FlaskClient) -> None:
    response = chunked(client, b"verb=Identify&x=" + b"a" * 200_000)
    assert response.status_code == 413  # type: ignore[attr-defined]


def test_chunked_form_just_within_the_limit_is_answered(client: FlaskClient) -> None:
    body = b"verb=Identify&x=" + b"a" * (MAX_BODY - len(b"verb=Identify&x="))
    assert error_codes(chunked(client, body)) == ["badArgument"]
    assert error_codes(chunked(client, b"verb=Identify")) == []


def test_chunked_body_that_is_not_a_form_is_415(client: FlaskClient) -> None:
    response = chunked(client, b"verb=Identify", content_type="text/plain")
    assert response.status_code == 415  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"verb=Identify&foo=\xff", id="raw-byte-in-a-value"),
        pytest.param(b"verb=Identify&foo=%FF", id="escaped-byte-in-a-value"),
        pytest.param(b"verb=Identify&\xff=1", id="raw-byte-in-a-name"),
        pytest.param(
            b"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:repository.example.org:\xff",
            id="byte-in-an-argument-the-verb-takes",
        ),
        pytest.param(b"verb=ListRecords&resumptionToken=%C3%28", id="byte-in-a-token"),
    ],
)
def test_post_bytes_that_are_not_utf8_are_bad_argument(client: FlaskClient, body: bytes) -> None:
    response = client.post("/oai", data=body, content_type=FORM)
    assert error_codes(response) == ["badArgument"]
    assert request_attributes(response) == {}  # 3.2: badArgument echoes no arguments


def test_query_string_bytes_that_are_not_utf8_are_bad_argument(client: FlaskClient) -> None:
    """A raw byte in the query string (the WSGI environ carries it as latin-1)."""
    response = client.get("/oai", environ_overrides={"QUERY_STRING": "verb=Identify&foo=\xff"})
    assert error_codes(response) == ["badArgument"]
    assert request_attributes(response) == {}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/sitemaps/records.xml", "start={}"),
        ("/resources/resourcelist/oai_dc.xml", "at={}"),
        ("/resources/changelist/page.xml", "until={}"),
        ("/sets/col_10722_5", "after={}"),
        ("/oai/view", "verb=GetRecord&metadataPrefix=oai_dc&identifier={}"),
    ],
)
def test_a_raw_byte_not_utf8_in_a_pages_query_is_read_as_its_escape(
    reading_client: FlaskClient, path: str, query: str
) -> None:
    """A server hands a query's bytes on as they came (latin-1 in the environ): a byte
    that is not UTF-8 is read as Werkzeug reads an escape that is none (%E9 stays %E9),
    so the page answers as it does to the escape, never with a 500."""
    raw = reading_client.get(path, environ_overrides={"QUERY_STRING": query.format("\xe9")})
    escaped = reading_client.get(path, environ_overrides={"QUERY_STRING": query.format("%E9")})
    assert raw.status_code == escaped.status_code < 500
    assert raw.data == escaped.data


def test_bad_byte_in_the_verb_is_still_bad_verb(client: FlaskClient) -> None:
    response = client.post("/oai", data=b"verb=Identify\xff", content_type=FORM)
    assert error_codes(response) == ["badVerb"]


def test_query_string_limit_is_exact(client: FlaskClient) -> None:
    prefix = "verb=Identify&x="
    at_limit = prefix + "a" * (MAX_QUERY_STRING - len(prefix))
    assert error_codes(client.get(f"/oai?{at_limit}")) == ["badArgument"]
    assert client.get(f"/oai?{at_limit}a").status_code == 414


@pytest.fixture(scope="module")
def server(databases: Databases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One live server (SQLite: these limits are the web edge's, not the store's)."""

    class Request:  # what Databases asks of pytest's request: only PostgreSQL needs it
        def getfixturevalue(self, name: str) -> None:
            raise AssertionError(name)

    url = databases.samples("sqlite", Request())  # type: ignore[arg-type]
    live = LiveServer(url, tmp_path_factory.mktemp("server"), workers=1)
    yield live
    live.stop()


class Received:
    """A `requests` response as the readers of tests/oai.py read Flask's."""

    def __init__(self, response: requests.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content


def query_of(length: int) -> str:
    prefix = "verb=Identify&x="
    return prefix + "a" * (length - len(prefix))


def test_live_query_string_limits(server: LiveServer) -> None:
    at_limit = requests.get(f"{server.url}?{query_of(MAX_QUERY_STRING)}", timeout=10)
    assert error_codes(Received(at_limit)) == [
        "badArgument"
    ]  # answered by the app, up to the limit
    over = requests.get(f"{server.url}?{query_of(MAX_QUERY_STRING + 1)}", timeout=10)
    assert over.status_code == 414
    assert over.text == "Request-URI too long.\n"  # the app's answer, not gunicorn's page
    far_over = requests.get(f"{server.url}?{query_of(100_000)}", timeout=10)
    assert far_over.status_code == 414  # gunicorn's, past its 8,190-byte request line


def test_live_header_limits(server: LiveServer) -> None:
    identify = {"verb": "Identify"}
    long_header = {"X-Long": "b" * 8000}
    answer = requests.get(server.url, params=identify, headers=long_header, timeout=10)
    assert error_codes(Received(answer)) == []
    too_long = {"X-Long": "b" * 8200}
    assert (
        requests.get(server.url, params=identify, headers=too_long, timeout=10).status_code == 431
    )
    many = {f"X-Header-{i}": "1" for i in range(120)}
    assert requests.get(server.url, params=identify, headers=many, timeout=10).status_code == 431
    assert requests.get(server.url, params=identify, timeout=10).status_code == 200


def test_live_chunked_posts_are_held_to_the_limits(server: LiveServer) -> None:
    def body(size: int) -> Iterator[bytes]:  # requests sends a generator chunked
        yield b"verb=Identify&x="
        for _ in range(size // 1000):
            yield b"a" * 1000

    headers = {"Content-Type": FORM}
    big = requests.post(server.url, data=body(200_000), headers=headers, timeout=10)
    assert big.status_code == 413
    text = requests.post(
        server.url,
        data=iter([b"verb=Identify"]),
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert text.status_code == 415
    small = requests.post(server.url, data=iter([b"verb=Identify"]), headers=headers, timeout=10)
    assert tree(Received(small)).find("{http://www.openarchives.org/OAI/2.0/}Identify") is not None
    not_utf8 = requests.post(
        server.url, data=b"verb=Identify&foo=\xff", headers=headers, timeout=10
    )
    assert error_codes(Received(not_utf8)) == ["badArgument"]


# -- the advertised baseURL and forwarded headers ---------------------------------------

FORWARDED = {
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example.com",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/elsewhere",
}


def base_url(response: object) -> str:
    return str(tree(response).find("oai:request", NS).text)


def test_forwarded_headers_from_a_client_not_configured_as_proxy_are_ignored(
    client: FlaskClient,
) -> None:
    """The attack: a local client (127.0.0.1, trusted by gunicorn's default) choosing the
    scheme, host and path of the advertised baseURL."""
    response = client.get("/oai?verb=Identify", headers=FORWARDED)
    assert base_url(response) == "http://localhost/oai"


def test_forwarded_headers_from_another_address_than_the_proxy_are_ignored(
    database_url: str,
) -> None:
    client = make_app(database_url, trusted_proxies=["10.0.0.0/8"]).test_client()
    response = client.get("/oai?verb=Identify", headers=FORWARDED)  # from 127.0.0.1
    assert base_url(response) == "http://localhost/oai"


def test_forwarded_headers_from_a_configured_proxy_make_the_base_url(database_url: str) -> None:
    client = make_app(database_url, trusted_proxies=["127.0.0.1"]).test_client()
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "oai.example.org"}
    assert base_url(client.get("/oai?verb=Identify", headers=headers)) == (
        "https://oai.example.org/oai"
    )
    far = {"REMOTE_ADDR": "192.0.2.7"}  # not the proxy
    response = client.get("/oai?verb=Identify", headers=headers, environ_base=far)
    assert base_url(response) == "http://localhost/oai"


def test_host_header_makes_the_base_url_only_when_none_is_configured(database_url: str) -> None:
    """The documented development convenience; production mode requires base_url."""
    headers = {"Host": "evil.example.com"}
    convenient = make_app(database_url).test_client()
    assert base_url(convenient.get("/oai?verb=Identify", headers=headers)) == (
        "http://evil.example.com/oai"
    )
    configured = make_app(database_url, base_url="https://oai.example.org/oai").test_client()
    assert base_url(configured.get("/oai?verb=Identify", headers=headers)) == (
        "https://oai.example.org/oai"
    )


def answer_with_host(app: Any, path: str, **environ: str) -> tuple[int, bytes]:
    """A request whose Host (or forwarded) header is one the test client will not send (it
    makes a URL of it first), as a client's bytes reach the app through gunicorn."""
    path, _, query = path.partition("?")
    wsgi = EnvironBuilder(path=path, query_string=query).get_environ()
    wsgi.update(environ)
    status: list[str] = []
    body = b"".join(app(wsgi, lambda line, headers, *_: status.append(line)))
    return int(status[0].split()[0]), body


PAGES = ["/oai?verb=Identify", "/oai/view?verb=Identify", "/", "/records/10722/212116",
         "/sets/com_10722_1", "/sitemap.xml", "/robots.txt", "/.well-known/resourcesync",
         "/resources/resourcelist.xml", "/resources//capabilitylist.xml"]  # fmt: skip


@pytest.mark.parametrize("host", ["localhost:99999", "[::1]:65536", "localhost:-1"])
def test_a_host_header_with_a_port_out_of_range_is_not_echoed(database_url: str, host: str) -> None:
    """No base_url configured, so the URLs a response names are made from the Host header;
    one whose port no URL can have is not one to make them of: localhost stands in."""
    app = make_app(database_url)
    for path in PAGES:
        status, body = answer_with_host(app, path, HTTP_HOST=host)
        assert status in (200, 308), (path, status)
        assert host.encode() not in body
    status, body = answer_with_host(app, "/oai?verb=Identify", HTTP_HOST=host)
    assert base_url_of(body) == "http://localhost/oai"


def test_a_redirect_of_the_routing_says_where_by_path(reading_client: FlaskClient) -> None:
    """An address with a doubled slash is redirected (308) to the one without: the
    Location is the path, not a URL made of the Host header."""
    response = reading_client.get(
        "/", environ_overrides={"PATH_INFO": "/resources//capabilitylist.xml"},
        headers={"Host": "evil.example"},
    )  # fmt: skip
    assert response.status_code == 308
    assert response.headers["Location"] == "/resources/capabilitylist.xml"


def test_forwarded_values_no_url_can_have_are_not_echoed(database_url: str) -> None:
    """A configured proxy passing on what a client said (X-Forwarded-Host: $http_host):
    a port out of range, a scheme that is not http(s), are not made part of any URL."""
    app = make_app(database_url, trusted_proxies=["127.0.0.1"])
    for header, value in (("HTTP_X_FORWARDED_HOST", "oai.example.org:99999"),
                          ("HTTP_X_FORWARDED_PORT", "99999"),
                          ("HTTP_X_FORWARDED_PROTO", "\u00e9")):  # fmt: skip
        for path in PAGES:
            status, body = answer_with_host(app, path, REMOTE_ADDR="127.0.0.1", **{header: value})
            assert status in (200, 308), (header, path, status)
            assert value.encode() not in body
        status, body = answer_with_host(
            app, "/oai?verb=Identify", REMOTE_ADDR="127.0.0.1", **{header: value}
        )
        assert base_url_of(body) == "http://localhost/oai"


def base_url_of(body: bytes) -> str:
    return str(validate(body).find("oai:request", NS).text)


@pytest.mark.parametrize("proxy", ["proxy.example.org", "192.168.1.1/24", "*", 10])
def test_trusted_proxies_must_be_addresses_or_networks(proxy: object) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings({"trusted_proxies": [proxy]}, environ={})


def test_live_forwarded_proto_from_localhost_is_ignored(server: LiveServer) -> None:
    response = requests.get(server.url, params={"verb": "Identify"}, headers=FORWARDED, timeout=10)
    assert base_url(Received(response)) == server.url


# -- malformed request bodies (issue 24) ---------------------------------------------------

POST_HEAD = b"POST /oai HTTP/1.1\r\nHost: localhost\r\nContent-Type: " + FORM.encode()


@pytest.mark.parametrize(
    "framing",
    [
        pytest.param(b"\r\nTransfer-Encoding: chunked\r\n\r\n0x0\r\n\r\n", id="chunk-size-0x0"),
        pytest.param(b"\r\nTransfer-Encoding: chunked\r\n\r\n 0\r\n\r\n", id="chunk-size-space-0"),
        pytest.param(b"\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", id="chunk-size-minus-1"),
        pytest.param(
            b"\r\nTransfer-Encoding: chunked\r\n\r\nd\nverb=Identify\n0\n\n", id="bare-lf-chunk"
        ),
        pytest.param(
            b"\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nverb=IdentifyXX0\r\n\r\n",
            id="bad-chunk-terminator",
        ),
        pytest.param(
            b"\r\nTransfer-Encoding: chunked\r\n\r\nd\r\nverb=Identify\r\n0\r\n"
            b"Content-Length: 5\r\n\r\n",
            id="content-length-trailer",
        ),
        pytest.param(
            b"\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nverb=Identify\r\n0\r\n\r\n",
            id="chunk-size-not-hex",
        ),
        pytest.param(b"\r\nContent-Length: -5\r\n\r\nverb=Identify", id="negative-length"),
        pytest.param(b"\r\nContent-Length: 1x\r\n\r\nverb=Identify", id="length-not-a-number"),
        pytest.param(
            b"\r\nContent-Length: 13\r\nContent-Length: 14\r\n\r\nverb=Identify",
            id="two-lengths",
        ),
        pytest.param(
            b"\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\nverb=Identify",
            id="length-and-chunked",
        ),
        pytest.param(
            b"\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", id="gzip-transfer-coding"
        ),
        pytest.param(
            b"\r\nContent-Encoding: gzip\r\nContent-Length: 13\r\n\r\nverb=Identify",
            id="gzip-content-coding",
        ),
    ],
)
def test_live_malformed_bodies_are_4xx_and_one_log_line(server: LiveServer, framing: bytes) -> None:
    """Raw framing a client may send: a 4xx (from gunicorn or the app), never a 500 nor a
    traceback in the log, one line saying why (beside the access log's line for the
    request); the server answers the next request."""
    logged = Path(server.log.name).stat().st_size
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(POST_HEAD + framing)
        raw.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:200]
    assert requests.get(server.url, params={"verb": "Identify"}, timeout=10).status_code == 200
    server.log.flush()
    with open(server.log.name, "rb") as log:
        log.seek(logged)
        new = log.read().decode(errors="replace")
    assert "Traceback" not in new
    said = [line for line in new.splitlines() if line.strip() and not line.startswith("{")]
    assert len(said) <= 1, new


# -- clients that do not read (issue 24) -----------------------------------------------------


def test_large_answers_held_for_their_readers_are_bounded(database_url: str) -> None:
    """serve's worker wraps the app in SendBudget: answers not yet sent count against the
    worker's budget until the server closes them; a large one past it is dropped and
    answered 503 at once, while small answers always go."""
    app = make_app(database_url, retry_after=9)
    page = len(app.test_client().get("/oai?verb=ListRecords&metadataPrefix=dim").data)
    assert page > SMALL_ANSWER
    budget = SendBudget(app, 9, budget=2 * page)
    environ = EnvironBuilder("/oai", query_string="verb=ListRecords&metadataPrefix=dim")
    statuses: list[str] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
        statuses.append(status)

    def ask() -> Any:
        return budget(environ.get_environ(), start)

    first, second = ask(), ask()  # two clients that have not read their pages
    assert statuses == ["200 OK", "200 OK"] and budget.held == 2 * page
    third = ask()
    assert statuses[-1] == "503 Service Unavailable"
    assert b"try again later" in b"".join(third)
    small = budget(EnvironBuilder("/oai", query_string="verb=Identify").get_environ(), start)
    assert statuses[-1] == "200 OK"  # small answers are never held back
    small.close()
    first.close()  # sent, or the client given up on: its bytes are free again
    assert budget.held == page
    assert b"".join(ask()).startswith(b"<?xml") and statuses[-1] == "200 OK"
    second.close()


def test_live_serve_answers_through_the_send_budget(databases: Databases, tmp_path: Path) -> None:
    """`serve`'s workers wrap the app in SendBudget: with the budget at one byte, a large
    page is a 503 with Retry-After at once, a small one is answered."""

    class Request:
        def getfixturevalue(self, name: str) -> None:
            raise AssertionError(name)

    url = databases.samples("sqlite", Request())  # type: ignore[arg-type]
    port = free_port()
    code = (
        "import sys; from oaipmh_server import cli\nfrom oaipmh_server.web import serving\n"
        "serving.SEND_BUDGET = 1\n"
        f"sys.argv = ['oaipmh-server', 'serve', '--host', '127.0.0.1', '--port', '{port}',\n"
        "            '--workers', '1']\n"  # one worker: what it wraps, not how many
        "cli.main()\n"
    )
    env = {**os.environ, "OAIPMH_DATABASE_URL": url, "OAIPMH_PAGE_SIZE": "100"}
    env.pop("NOTIFY_SOCKET", None)
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        assert "listening" in process.stderr.readline()  # said once it listens
        base = f"http://127.0.0.1:{port}/oai"
        plain = {"Accept-Encoding": "identity"}  # the bytes sent are counted: not gzipped
        large = requests.get(
            f"{base}?verb=ListRecords&metadataPrefix=dim", headers=plain, timeout=30
        )
        assert len(large.content) < SMALL_ANSWER
        assert (large.status_code, large.headers["Retry-After"]) == (503, "30")
        assert requests.get(f"{base}?verb=Identify", timeout=30).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
