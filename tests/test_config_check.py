"""`oaipmh-server config check`: the configuration read as `serve` reads it, each setting
with where it came from, secrets masked, and every mistake named before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from oaipmh_server.cli import main
from oaipmh_server.config import masked_url
from oaipmh_server.settings import Settings

# What these tests show depends on the store: they run on SQLite and PostgreSQL.
pytestmark = pytest.mark.store_behaviour

SECRETS = ("token-s3cret-" + "t" * 32, "db-pa55word", "previous-s3cret", "url-pa55")


def check(**environ: str) -> Result:
    return CliRunner().invoke(main, ["config", "check"], env=environ)


def settings_lines(result: Result) -> dict[str, str]:
    """key → 'value  # source', from the lines on stdout."""
    return dict(line.split(" = ", 1) for line in result.stdout.splitlines())


def write(tmp_path: Path, text: str, name: str = "oaipmh.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_pass_and_every_setting_is_shown() -> None:
    result = check()
    assert result.exit_code == 0, result.output
    lines = settings_lines(result)
    assert len(lines) == len(fields(Settings))  # a setting added later shows by itself
    assert lines["harvest.page_size"] == "100  # built-in default"
    assert lines["repository.identifier"] == '"repository.example.org"  # built-in default'
    assert lines["repository.base_url"] == "(not set)  # built-in default"
    assert lines["harvest.token_secret"] == "(not set)  # built-in default"
    assert result.stderr.splitlines()[-1] == "configuration OK"


def test_each_setting_says_where_it_came_from(tmp_path: Path) -> None:
    config = write(tmp_path, "[harvest]\npage_size = 50\n[server]\nretry_after = 60\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    write(credentials, SECRETS[1] + "\n", "database_password")
    result = check(
        OAIPMH_CONFIG=config,
        OAIPMH_PAGE_SIZE="20",
        OAIPMH_TOKEN_SECRET_FILE=write(tmp_path, SECRETS[0] + "\n", "token"),
        CREDENTIALS_DIRECTORY=str(credentials),
    )
    assert result.exit_code == 0, result.output
    lines = settings_lines(result)
    assert lines["harvest.page_size"] == "20  # environment variable OAIPMH_PAGE_SIZE"
    assert lines["server.retry_after"] == f"60  # {config}"
    assert lines["harvest.token_secret"] == (
        f"********  # file {tmp_path}/token (OAIPMH_TOKEN_SECRET_FILE)"
    )
    assert lines["store.database_password"] == (
        f"********  # credential {credentials}/database_password"
    )
    assert lines["server.mode"] == '"development"  # built-in default'


def test_secrets_are_masked_wherever_they_are(tmp_path: Path) -> None:
    result = check(
        OAIPMH_TOKEN_SECRET=SECRETS[0],
        OAIPMH_DATABASE_PASSWORD=SECRETS[1],
        OAIPMH_PREVIOUS_TOKEN_SECRETS=f"{SECRETS[2]},{SECRETS[2]}2",
        OAIPMH_DATABASE_URL=f"postgresql+psycopg://oai:{SECRETS[3]}@db.example.org/oai",
    )
    assert result.exit_code == 0, result.output
    for secret in SECRETS:
        assert secret not in result.output
    lines = settings_lines(result)
    assert lines["harvest.previous_token_secrets"].startswith("[********, ********]  # ")
    assert lines["store.database_url"].startswith(
        '"postgresql+psycopg://oai:********@db.example.org/oai"  # '
    )


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///oaipmh.sqlite3", "sqlite:///oaipmh.sqlite3"),
        ("postgresql://oai@db/oai", "postgresql://oai@db/oai"),
        ("postgresql://oai:p%40ss@db:5432/oai", "postgresql://oai:********@db:5432/oai"),
        ("postgresql://db/oai?user=oai&password=x&sslmode=require",
         "postgresql://db/oai?user=oai&password=********&sslmode=require"),
        ("postgresql://[::1/oai", "********"),  # not splittable: nothing of it shown
    ],
)  # fmt: skip
def test_a_database_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert masked_url(url) == shown


@pytest.mark.parametrize(
    "url", ["nonsense", "sqlite:/oaipmh.sqlite3", "postgresql//oai:p4ssw0rd@db/oai", "://x"]
)
def test_a_database_url_no_database_reads_is_a_mistake_not_ok(url: str) -> None:
    """Every command would refuse it (the store cannot even parse it): the check says so,
    without showing it (it may hold a password)."""
    result = check(OAIPMH_DATABASE_URL=url)
    assert result.exit_code == 1, result.output
    assert (
        "error: environment variable OAIPMH_DATABASE_URL: store.database_url: the database URL is "
        "not one SQLAlchemy reads (like sqlite:////var/lib/oai/oai.sqlite3 or "
        "postgresql+psycopg://user@host/db)"
    ) in result.stderr
    assert "p4ssw0rd" not in result.output


def test_every_mistake_is_named_not_only_the_first(tmp_path: Path) -> None:
    config = write(tmp_path, '[server]\nmode = "prod"\n[harvest]\npage_size = "100"\n')
    result = check(OAIPMH_CONFIG=config, OAIPMH_DATABASE_PASSWORD=SECRETS[1])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {config}: harvest.page_size: expected an integer, got '100'",
        f"error: {config}: server.mode: must be 'development' or 'production', got 'prod'",
        "2 mistake(s); serve would refuse to start",
    ]
    lines = settings_lines(result)  # the rest is still shown, the mistakes at their defaults
    assert lines["harvest.page_size"].startswith("100  # built-in default, in place of")
    assert SECRETS[1] not in result.output


def test_a_mistaken_virtual_set_is_one_mistake_not_two(tmp_path: Path) -> None:
    """A definition in [virtual_sets.define] with a mistake is put back to the built-in
    definitions to check the rest, which do not define the set `served` names: that is the
    putting back's doing, not a second mistake of the file. A set `served` names that the
    file defines nowhere is still one."""
    config = write(
        tmp_path,
        '[virtual_sets]\nserved = ["theses"]\n[virtual_sets.define.theses]\n'
        'name = "Theses"\nall = [{ field = "dc.type", is = "Thesis" }]\n',
    )
    result = check(OAIPMH_CONFIG=config)
    assert result.exit_code == 1
    [mistake, summary] = result.stderr.splitlines()
    assert mistake.startswith(f"error: {config}: virtual_sets.define.theses: all[1]: ")
    assert summary == "1 mistake(s); serve would refuse to start"
    lines = settings_lines(result)
    assert lines["virtual_sets.served"].startswith("[]  # built-in default, in place of")
    unknown = write(tmp_path, '[virtual_sets]\nserved = ["theses"]\n', "unknown.toml")
    result = check(OAIPMH_CONFIG=unknown)
    assert result.stderr.splitlines()[0] == (
        f"error: {unknown}: virtual_sets.served: 'theses' is not a set of "
        "[virtual_sets.define] (defined: driver, openaire)"
    )


def test_an_unknown_key_and_a_mistake_after_it(tmp_path: Path) -> None:
    config = write(tmp_path, "[harvest]\npage_sise = 10\n[server]\nretry_after = 0\n")
    result = check(OAIPMH_CONFIG=config)
    assert result.exit_code == 1
    assert f"error: {config}: unknown key harvest.page_sise (did you mean harvest.page_size?)" in (
        result.stderr
    )
    assert f"error: {config}: server.retry_after: must be between 1 and 86400 seconds, got 0" in (
        result.stderr
    )


def test_a_file_that_is_not_toml(tmp_path: Path) -> None:
    config = write(tmp_path, "[harvest\npage_size = 10\n")
    result = check(OAIPMH_CONFIG=config, OAIPMH_PAGE_SIZE="0")
    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"error: {config}: not valid TOML: ")
    # The environment is still checked, over the defaults.
    assert errors[1] == (
        "error: environment variable OAIPMH_PAGE_SIZE: harvest.page_size: must be between 1 and 10000, got 0"
    )
    assert "Traceback" not in result.output


def test_production_mistakes_are_named_together_with_the_others(tmp_path: Path) -> None:
    config = write(tmp_path, '[server]\nmode = "production"\n[harvest]\npage_size = 0\n')
    result = check(OAIPMH_CONFIG=config, OAIPMH_TOKEN_SECRET="short")
    assert result.exit_code == 1
    named = {line.split(": ")[2] for line in result.stderr.splitlines()[:-1]}
    assert named == {"harvest.page_size", "harvest.token_secret", "repository.base_url",
                     "repository.name", "repository.identifier",
                     "repository.admin_emails"}  # fmt: skip
    assert "short" not in result.output


def test_secret_files_that_cannot_be_read(tmp_path: Path) -> None:
    missing = str(tmp_path / "nothing")
    result = check(OAIPMH_TOKEN_SECRET_FILE=missing, OAIPMH_DATABASE_PASSWORD_FILE=missing)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[:2] == [
        f"error: OAIPMH_TOKEN_SECRET_FILE: cannot read {missing}: No such file or directory",
        f"error: OAIPMH_DATABASE_PASSWORD_FILE: cannot read {missing}: No such file or directory",
    ]


def test_a_format_that_does_not_exist(tmp_path: Path) -> None:
    """The formats `[formats] stored` names exist, checked with the other settings: the
    mistake names the file, and the setting is put back to its default to go on."""
    config = write(tmp_path, '[formats]\nstored = ["oai_dc", "marc21"]\n')
    result = check(OAIPMH_CONFIG=config)
    assert result.exit_code == 1
    assert f"error: {config}: formats.stored: no metadata format marc21" in result.stderr
    assert settings_lines(result)["formats.stored"] == (
        '["oai_dc"]  # built-in default, in place of the mistake reported below'
    )


def test_check_opens_no_database(tmp_path: Path) -> None:
    database = tmp_path / "oai.sqlite3"
    result = check(OAIPMH_DATABASE_URL=f"sqlite:///{database}")
    assert result.exit_code == 0, result.output
    assert not database.exists()


def test_the_installed_command_exits_1_without_a_traceback(tmp_path: Path) -> None:
    """As an operator runs it before `systemctl reload`: its own process, exit status 1."""
    config = write(tmp_path, '[harvest]\npage_size = "100"\n')
    done = subprocess.run(
        [sys.executable, "-m", "oaipmh_server", "config", "check"],
        env={**os.environ, "OAIPMH_CONFIG": config}, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"error: {config}: harvest.page_size: expected an integer, got '100'" in done.stderr
    assert "harvest.page_size = 100  # built-in default, in place of" in done.stdout
