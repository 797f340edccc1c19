"""HTTP edges a client may push on (issue 13): the documented limits are the real ones, by
the bytes actually received (chunked bodies too); bytes that are not UTF-8 are a
badArgument, not a missing verb; forwarded headers count from configured proxies only."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import requests
from flask.testing import FlaskClient

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError
from oaipmh_server.web.provider import MAX_BODY, MAX_QUERY_STRING

from .conftest import Databases, LiveServer, make_app
from .oai import NS, error_codes, request_attributes, tree

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
    live = LiveServer(url, tmp_path_factory.mktemp("server"))
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


@pytest.mark.parametrize("proxy", ["proxy.example.org", "192.168.1.1/24", "*", 10])
def test_trusted_proxies_must_be_addresses_or_networks(proxy: object) -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings({"trusted_proxies": [proxy]}, environ={})


def test_live_forwarded_proto_from_localhost_is_ignored(server: LiveServer) -> None:
    response = requests.get(server.url, params={"verb": "Identify"}, headers=FORWARDED, timeout=10)
    assert base_url(Received(response)) == server.url
