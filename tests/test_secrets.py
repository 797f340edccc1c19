"""Secrets kept out of the environment and the file (OAIPMH_*_FILE, systemd credentials),
and a token secret rotated without breaking the harvests in progress."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from oaipmh_server.config import KNOWN_VARIABLES, load_settings, unknown_variables
from oaipmh_server.errors import ConfigError
from oaipmh_server.store.schema import meta_table
from oaipmh_server.tokens import decode_token

from . import xsd
from .conftest import Databases, LiveServer, make_app
from .db import fetch
from .oai import NS, error_codes, token, tree

OLD, NEW = "old-secret-" + "a" * 32, "new-secret-" + "b" * 32


def secret_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_secrets_from_files_without_their_trailing_line_break(tmp_path: Path) -> None:
    settings = load_settings(environ={
        "OAIPMH_TOKEN_SECRET_FILE": secret_file(tmp_path, "token", "t0ken secret\n"),
        "OAIPMH_DATABASE_PASSWORD_FILE": secret_file(tmp_path, "password", "pa ss\r\n"),
        "OAIPMH_PREVIOUS_TOKEN_SECRETS_FILE": secret_file(tmp_path, "old", "one\n\n two \n"),
    })  # fmt: skip
    assert settings.token_secret == "t0ken secret"
    assert settings.database_password == "pa ss"
    assert settings.previous_token_secrets == ("one", "two")


def test_secrets_from_systemd_credentials(tmp_path: Path) -> None:
    """LoadCredential=NAME:… puts each in $CREDENTIALS_DIRECTORY/NAME; the deploy kit's
    unit uses these names."""
    for name, text in [("token_secret", "from credential\n"), ("database_password", "pw"),
                       ("previous_token_secrets", "a\nb\n")]:  # fmt: skip
        secret_file(tmp_path, name, text)
    settings = load_settings(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert settings.token_secret == "from credential"
    assert settings.database_password == "pw"
    assert settings.previous_token_secrets == ("a", "b")
    # A credential the unit does not give leaves its setting to the file or the default.
    os.remove(tmp_path / "database_password")
    assert load_settings(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}).database_password is None


def test_precedence_environment_then_credential_then_file(tmp_path: Path) -> None:
    config = secret_file(tmp_path, "oaipmh.toml", '[harvest]\ntoken_secret = "from the file"\n')
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    secret_file(credentials, "token_secret", "from the credential")
    environ = {"OAIPMH_CONFIG": config}
    assert load_settings(environ=environ).token_secret == "from the file"
    environ["CREDENTIALS_DIRECTORY"] = str(credentials)
    assert load_settings(environ=environ).token_secret == "from the credential"
    environ["OAIPMH_TOKEN_SECRET_FILE"] = secret_file(tmp_path, "t", "from the _FILE")
    assert load_settings(environ=environ).token_secret == "from the _FILE"
    del environ["OAIPMH_TOKEN_SECRET_FILE"]
    environ["OAIPMH_TOKEN_SECRET"] = "from the variable"
    assert load_settings(environ=environ).token_secret == "from the variable"
    # Both the variable and its _FILE: which one was meant is a guess, so neither is taken.
    environ["OAIPMH_TOKEN_SECRET_FILE"] = secret_file(tmp_path, "t", "from the _FILE")
    with pytest.raises(ConfigError, match="OAIPMH_TOKEN_SECRET and OAIPMH_TOKEN_SECRET_FILE"):
        load_settings(environ=environ)


@pytest.mark.parametrize(
    "variable",
    ["OAIPMH_TOKEN_SECRET_FILE", "OAIPMH_DATABASE_PASSWORD_FILE",
     "OAIPMH_PREVIOUS_TOKEN_SECRETS_FILE"],
)  # fmt: skip
def test_an_unreadable_secret_file_is_named_never_shown(tmp_path: Path, variable: str) -> None:
    missing = str(tmp_path / "no-such-file")
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={variable: missing})
    assert str(refused.value) == f"{variable}: cannot read {missing}: No such file or directory"
    unreadable = secret_file(tmp_path, "bytes", "")
    Path(unreadable).write_bytes(b"hunter2\xff\n")
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={variable: unreadable})
    assert str(refused.value) == f"{variable}: {unreadable} is not UTF-8 text"
    assert "hunter2" not in str(refused.value)


def test_an_unreadable_credential_is_named(tmp_path: Path) -> None:
    (tmp_path / "token_secret").mkdir()  # exists, yet cannot be read as a file
    with pytest.raises(ConfigError, match=r"credential token_secret \(\$CREDENTIALS_DIRECTORY\): "
                       f"cannot read {tmp_path}/token_secret: Is a directory"):  # fmt: skip
        load_settings(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})


def test_secret_variables_are_known() -> None:
    environ = {v: "x" for v in ("OAIPMH_TOKEN_SECRET_FILE", "OAIPMH_DATABASE_PASSWORD_FILE",
               "OAIPMH_PREVIOUS_TOKEN_SECRETS", "OAIPMH_PREVIOUS_TOKEN_SECRETS_FILE")}  # fmt: skip
    assert set(environ) <= KNOWN_VARIABLES
    assert unknown_variables(environ) == []


def test_previous_secrets_from_the_environment_comma_separated() -> None:
    environ = {"OAIPMH_PREVIOUS_TOKEN_SECRETS": " one, two,,three "}
    assert load_settings(environ=environ).previous_token_secrets == ("one", "two", "three")


def test_previous_secrets_are_never_shown_in_errors(tmp_path: Path) -> None:
    config = secret_file(tmp_path, "c.toml", '[harvest]\nprevious_token_secrets = "hunter2"\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(environ={"OAIPMH_CONFIG": config})
    assert "harvest.previous_token_secrets: expected a list, got a value of type str" in str(
        refused.value
    )
    assert "hunter2" not in str(refused.value)


def first_page(client) -> str:  # type: ignore[no-untyped-def]
    root = tree(client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc"))
    element = token(root)
    assert element is not None and element.text
    return str(element.text)


def test_a_harvest_goes_on_across_a_rotation(database_url: str) -> None:
    """Started under secret A; the server moves to B with A listed as previous: the harvest
    goes on, and its next token is signed with B alone."""
    started = first_page(make_app(database_url, page_size=3, token_secret=OLD).test_client())
    rotated = make_app(database_url, page_size=3, token_secret=NEW, previous_token_secrets=[OLD])
    root = tree(rotated.test_client().get(f"/oai?verb=ListRecords&resumptionToken={started}"))
    assert root.find("oai:error", NS) is None
    assert len(root.findall(".//oai:record", NS)) == 3
    following = token(root)
    assert following is not None and following.text
    decode_token(following.text, NEW, "ListRecords")  # signed with the new secret alone
    # Once the old secret is dropped, tokens it signed are refused.
    dropped = make_app(database_url, page_size=3, token_secret=NEW).test_client()
    refused = dropped.get(f"/oai?verb=ListRecords&resumptionToken={started}")
    assert error_codes(refused) == ["badResumptionToken"]


def test_a_rotation_through_files_on_the_live_server(database_url: str, tmp_path: Path) -> None:
    """The operator's procedure end to end: secrets in files, a restart between them."""
    old_file = secret_file(tmp_path, "old", OLD + "\n")
    before = LiveServer(database_url, tmp_path, workers=1, OAIPMH_PAGE_SIZE="3",
                        OAIPMH_TOKEN_SECRET_FILE=old_file)  # fmt: skip
    try:
        page = requests.get(f"{before.url}?verb=ListIdentifiers&metadataPrefix=oai_dc", timeout=30)
        started = token(xsd.validate(page.content)).text  # type: ignore[union-attr]
    finally:
        before.stop()
    after = LiveServer(database_url, tmp_path, workers=1, OAIPMH_PAGE_SIZE="3",
                       OAIPMH_TOKEN_SECRET_FILE=secret_file(tmp_path, "new", NEW + "\n"),
                       OAIPMH_PREVIOUS_TOKEN_SECRETS_FILE=old_file)  # fmt: skip
    try:
        page = requests.get(
            f"{after.url}?verb=ListIdentifiers&resumptionToken={started}", timeout=30
        )
        root = xsd.validate(page.content)
        assert root.find("oai:error", NS) is None
        assert len(root.findall(".//oai:header", NS)) == 3
    finally:
        after.stop()


def test_the_secret_kept_in_the_store_can_be_listed_as_a_previous_one(
    databases: Databases, request: pytest.FixtureRequest
) -> None:
    """docs/configuration.md, Rotating the token secret: a store that made its own secret
    (token_secret empty) keeps it in `meta`, where the operator reads it, lists it as a
    previous secret, and sets one of their own, without restarting harvests in progress."""
    url = databases.samples("sqlite", request)
    before = make_app(url, page_size=7, token_secret="").test_client()
    held = token(tree(before.get("/oai?verb=ListIdentifiers&metadataPrefix=oai_dc"))).text
    kept = fetch(url, select(meta_table.c.value).where(meta_table.c.key == "token_secret"))

    after = make_app(url, page_size=7, token_secret="n" * 32, previous_token_secrets=(kept[0][0],))
    resumed = tree(after.test_client().get(f"/oai?verb=ListIdentifiers&resumptionToken={held}"))

    assert resumed.find("oai:error", NS) is None
    assert len(resumed.findall(".//oai:header", NS)) == 7
