"""Wrong settings, as an operator meets them at the command line: one clear message naming
the variable (or file and key) and what is expected, exit status 1, never a traceback."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from oaipmh_server.config import KNOWN_VARIABLES, load_settings, unknown_variables
from oaipmh_server.errors import ConfigError
from oaipmh_server.store.failures import cannot_open

from .cli import Ran, run_cli
from .postgres import Cluster


def refused(done: Ran | subprocess.CompletedProcess[str], *expected: str) -> None:
    """Exit status 1, one message holding every expected part, no traceback."""
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for part in expected:
        assert part in done.stderr, done.stderr


def memory(tmp_path: Path) -> dict[str, str]:
    """A database no test leaves behind."""
    return {"OAIPMH_DATABASE_URL": f"sqlite:///{tmp_path / 'oai.sqlite3'}"}


DIGITS_ONLY = "expected a whole number written with the digits 0-9 (like 100)"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("²", DIGITS_ONLY, id="superscript-two"),  # str.isdigit, not int()
        pytest.param("١٢", DIGITS_ONLY, id="arabic-indic-digits"),  # int() takes them
        pytest.param(" 5", DIGITS_ONLY, id="leading-space"),
        pytest.param("5\n", DIGITS_ONLY, id="trailing-newline"),
        pytest.param("1e3", DIGITS_ONLY, id="exponent"),
        pytest.param("+5", DIGITS_ONLY, id="sign"),
        pytest.param("1_000", DIGITS_ONLY, id="underscore"),
        pytest.param("10.0", DIGITS_ONLY, id="decimal-point"),
        pytest.param("", DIGITS_ONLY, id="empty"),
        pytest.param("-1", DIGITS_ONLY, id="negative"),
        pytest.param("9" * 5000, "far too large", id="5000-digits"),  # int() refuses > 4300
        pytest.param("0", "must be between 1 and 10000, got 0", id="zero"),
        pytest.param("10001", "must be between 1 and 10000, got 10001", id="too-big"),
    ],
)
def test_page_size_from_the_environment_must_be_ascii_digits(value: str, message: str) -> None:
    """In process, each form; test_every_command_refuses… shows the CLI's exit."""
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_PAGE_SIZE": value})
    assert str(caught.value).startswith(
        "environment variable OAIPMH_PAGE_SIZE: harvest.page_size: "
    )
    assert message in str(caught.value)
    assert len(str(caught.value)) < 200  # the 5000 digits are not printed back


@pytest.mark.parametrize(
    "command", [["stats"], ["load", "/no/such/records"], ["delete", "x"], ["serve"]]
)
def test_every_command_refuses_a_bad_environment_value(tmp_path: Path, command: list[str]) -> None:
    done = run_cli(*command, env={**memory(tmp_path), "OAIPMH_PAGE_SIZE": "²"})
    refused(done, "OAIPMH_PAGE_SIZE", DIGITS_ONLY)


def test_plain_digits_are_accepted() -> None:
    assert load_settings(environ={"OAIPMH_PAGE_SIZE": "0042"}).page_size == 42


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OAIPMH_MODE",
            "Production",
            ": server.mode: must be 'development' or 'production', got 'Production'",
        ),
        ("OAIPMH_MODE", "production\x1b[2J", r"got 'production\x1b[2J'"),  # escaped, not run
        (
            "OAIPMH_BASE_URL",
            "example.org/oai",
            ": repository.base_url: 'example.org/oai' is not an absolute",
        ),
        ("OAIPMH_DATABASE_URL", " ", ": store.database_url: must not be empty"),
        ("OAIPMH_CONFIG", "/no/such/file.toml", "cannot read /no/such/file.toml"),
    ],
)
def test_other_environment_values_name_the_variable(
    tmp_path: Path, variable: str, value: str, message: str
) -> None:
    done = run_cli("stats", env={**memory(tmp_path), variable: value})
    refused(done, variable, message)
    assert "\x1b" not in done.stderr


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[harvest]\npage_size = '10'\n", ": harvest.page_size: expected an integer, got '10'"),
        ("[harvest]\npage_size = 1.5\n", ": harvest.page_size: expected an integer, got 1.5"),
        ("[harvest]\npage_size = true\n", ": harvest.page_size: expected an integer, got True"),
        ("[server]\nretry_after = 0\n", ": server.retry_after: must be between 1 and 86400"),
        (
            "[harvest]\nmax_page_bytes = 1000\n",
            ": harvest.max_page_bytes: must be between 1024 and",
        ),
        ("[harvest]\nmax_page_bytes = '8 MB'\n", ": harvest.max_page_bytes: expected an integer"),
        ("[server]\nmax_concurrent_lists = -1\n", ": server.max_concurrent_lists: must be 0"),
        (
            "[server]\nmax_concurrent_lists = 100000000000000000000\n",
            ": server.max_concurrent_lists: ",
        ),
        ("[server]\nmode = 3\n", ": server.mode: expected a string, got 3"),
        ("[repository]\nname = ' '\n", ": repository.name: must not be empty"),
        (
            "[repository]\nadmin_emails = 'x'\n",
            ": repository.admin_emails: expected one or more e-mail",
        ),
        (
            "[store]\ndatabase_password = 1234\n",
            ": store.database_password: expected a string, got a value of type int",
        ),
        (
            "[harvest]\ntoken_secret = 1234\n",
            ": harvest.token_secret: expected a string, got a value of type int",
        ),
        (
            "[datestamps]\nkeep_accessioned = 'no'\n",
            ": datestamps.keep_accessioned: expected true or false",
        ),
        ("[oai_dc]\nhidden_fields = 'dc.title'\n", ": oai_dc.hidden_fields: expected a list"),
        ("[oai_dc]\nmap = 1\n", "oai_dc.map must be a table"),
        ("[formats]\nstored = [1]\n", ": formats.stored: expected a list of metadata prefixes"),
        ("harvest = 1\n", "[harvest] must be a table"),
        ("[harvest]\npage_size = 5 # caf\xe9\n", ":2: not valid TOML: not UTF-8 text"),
        ("[harvest\n", "not valid TOML"),
    ],
)
def test_file_values_name_the_file_and_key(tmp_path: Path, body: str, message: str) -> None:
    config = tmp_path / "site.toml"
    config.write_bytes(body.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert str(caught.value).startswith(str(config))
    assert message in str(caught.value)
    assert "1234" not in str(caught.value)  # secrets are never repeated


@pytest.mark.parametrize(
    "body",
    ["[harvest]\npage_size = '10'\n", "[repository]\nname = 'caf\xe9'\n", "[harvest\n"],
    ids=["wrong-type", "not-utf-8", "not-toml"],
)
def test_the_cli_refuses_a_bad_file_in_one_line(tmp_path: Path, body: str) -> None:
    config = tmp_path / "site.toml"
    config.write_bytes(body.encode("latin-1"))
    done = run_cli("stats", env={**memory(tmp_path), "OAIPMH_CONFIG": str(config)})
    refused(done, f"Error: {config}")
    assert len(done.stderr.splitlines()) == 1


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"OAIPMH_CONFIG: cannot read {tmp_path}: Is a directory"):
        load_settings(environ={"OAIPMH_CONFIG": str(tmp_path)})


@pytest.mark.parametrize(
    "command",
    [["stats"], ["load", "/no/such/records"], ["delete", "x"], ["serve", "--port", "0"]],
    ids=["stats", "load", "delete", "serve"],
)
def test_a_misspelt_variable_is_named_with_the_nearest_known_one(
    tmp_path: Path, command: list[str]
) -> None:
    env = {**memory(tmp_path), "OAIPMH_DATABSE_URL": "postgresql://db.example.org/oai"}
    if command[0] == "serve":
        env["OAIPMH_PAGE_SIZE"] = "0"  # so that it stops after the warning instead of serving
    done = run_cli(*command, env=env)
    assert (
        "warning: environment variable OAIPMH_DATABSE_URL is not a setting, ignored; "
        "did you mean OAIPMH_DATABASE_URL?"
    ) in done.stderr
    assert "postgresql://" not in done.stderr  # a name, never its value (it may be a secret)


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("oaipmh_page_size", "did you mean OAIPMH_PAGE_SIZE?"),  # names are case-sensitive
        ("OAIPHM_PAGE_SIZE", "did you mean OAIPMH_PAGE_SIZE?"),  # the prefix misspelt
        ("OAIPMH_TOKEN_SECRETS", "did you mean OAIPMH_TOKEN_SECRET?"),
        ("OAIPMH_THREADS", "known: OAIPMH_BASE_URL, OAIPMH_CONFIG,"),  # (WORKERS is known)
        ("OAIPMH_\x1b[2J", "known:"),
    ],
)
def test_unknown_variables(variable: str, nearest: str) -> None:
    (warning,) = unknown_variables({variable: "1", "OAIPMH_PAGE_SIZE": "5", "HOME": "/root"})
    assert warning.endswith(nearest) or nearest in warning
    assert "\x1b" not in warning


def test_known_and_unrelated_variables_are_not_reported() -> None:
    environ = {name: "x" for name in KNOWN_VARIABLES} | {"PATH": "/bin", "OAI_HOME": "/srv"}
    assert unknown_variables(environ) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "[harvest]\npage_sise = 5\n",
            "unknown key harvest.page_sise (did you mean harvest.page_size?)",
        ),
        (
            "[harvset]\npage_size = 5\n",
            "unknown key harvset.page_size (did you mean harvest.page_size?)",
        ),
        (
            "[store]\ndatabase = 'x'\n",
            "unknown key store.database (did you mean store.database_url?)",
        ),
        ("[frobnicate]\nfoo = 1\n", "unknown key frobnicate.foo\n"),
    ],
)
def test_a_misspelt_key_in_the_file_is_refused_naming_the_nearest(
    tmp_path: Path, body: str, message: str
) -> None:
    config = tmp_path / "site.toml"
    config.write_text(body)
    done = run_cli("stats", env={**memory(tmp_path), "OAIPMH_CONFIG": str(config)})
    refused(done, f"{config}: {message}")


# -- the database URL: what could not be opened, and why ------------------------------------


def free_port() -> int:
    """A port nothing listens on (bound, then closed, by this process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


EVERY_COMMAND = (["stats"], ["load", "/no/such/records"], ["delete", "x"], ["serve"])


def database_refused(
    url: str, *expected: str, password: str = "pw-Secret-1", commands: Any = (["stats"],)
) -> None:
    for command in commands:
        env = {"OAIPMH_DATABASE_URL": url, "OAIPMH_DATABASE_PASSWORD": password}
        done = run_cli(*command, env=env)
        refused(done, *expected)
        assert "OperationalError" not in done.stderr
        assert password not in done.stderr and "sekrit" not in done.stderr


def test_sqlite_in_a_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "oai.sqlite3"
    database_refused(
        f"sqlite:///{path}",
        f"cannot open the SQLite database {path}: the folder {path.parent} does not exist",
        commands=EVERY_COMMAND,
    )


def test_sqlite_path_with_terminal_escapes_is_printed_escaped(tmp_path: Path) -> None:
    path = tmp_path / "a\x1b[2Jb" / "oai.sqlite3"
    done = run_cli("stats", env={"OAIPMH_DATABASE_URL": f"sqlite:///{path}"})
    refused(done, str(path).replace("\x1b", "\\x1b"), "does not exist")
    assert "\x1b" not in done.stderr


def test_sqlite_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "oai.sqlite3"
    database_refused(f"sqlite:///{path}", f"{path}: {tmp_path / 'file'} is not a folder")


def test_sqlite_path_is_a_folder(tmp_path: Path) -> None:
    database_refused(f"sqlite:///{tmp_path}", f"{tmp_path}: it is a folder, not a file")


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_text("not a database, but plenty of text in it " * 100)
    database_refused(f"sqlite:///{path}", f"{path}: the file is not an SQLite database")
    assert path.read_text().startswith("not a database")  # left as it was


def test_postgresql_where_nothing_listens() -> None:
    port = free_port()
    database_refused(
        f"postgresql+psycopg://oai:sekrit@127.0.0.1:{port}/oai",
        f"cannot connect to PostgreSQL at 127.0.0.1:{port} (database oai, user oai): "
        "connection refused",
        commands=EVERY_COMMAND,
    )


def test_postgresql_database_that_does_not_exist(postgres: Cluster) -> None:
    database_refused(
        postgres.url("no_such_database"),
        f"cannot connect to PostgreSQL at 127.0.0.1:{postgres.port} (database no_such_database,"
        ' user postgres): the database "no_such_database" does not exist',
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("frobdb://oai:sekrit@db/oai", "cannot open frobdb://oai:***@db/oai: unknown kind of "
         "database 'frobdb' (supported: sqlite, postgresql+psycopg)"),
        ("postgresql+frob://oai:sekrit@db/oai", "unknown driver 'frob' for postgresql"),
        ("not a url sekrit", "the database URL is not one SQLAlchemy reads (like sqlite:///"),
        ("postgresql://oai:sekrit@db:port/oai", "the database URL is not one SQLAlchemy reads"),
    ],
)  # fmt: skip
def test_database_url_that_names_nothing_usable(url: str, message: str) -> None:
    database_refused(url, message)


def test_missing_driver_says_what_to_install() -> None:
    assert importlib.util.find_spec("pg8000") is None  # the driver this test relies on lacking
    database_refused(
        "postgresql+pg8000://oai:sekrit@db.example.org/oai",
        "cannot open postgresql+pg8000://oai:***@db.example.org/oai: its Python driver pg8000 "
        "is not installed: pip install -e '.[postgresql]' (psycopg 3) and use postgresql+psycopg://",
    )


@pytest.mark.parametrize(
    ("driver_message", "reason"),
    [
        ("failed to resolve host 'db.example.org': [Errno -2] Name or service not known",
         "the host name db.example.org is unknown"),
        ('connection to server at "10.0.0.5", port 5432 failed: FATAL:  password authentication '
         'failed for user "oai"', "password authentication failed (OAIPMH_DATABASE_PASSWORD)"),
        ("connection to server failed: fe_sendauth: no password supplied",
         "the server asks for a password (set OAIPMH_DATABASE_PASSWORD)"),
        ("connection timeout expired", "no answer (timed out)"),
        ("something new said about pw-Secret-1\n\tand more", "something new said about *** and more"),
    ],
)  # fmt: skip
def test_what_postgresql_answered(driver_message: str, reason: str) -> None:
    error = OperationalError(None, None, Exception(driver_message))
    sentence = cannot_open("postgresql+psycopg://oai@db.example.org/oai", error, "pw-Secret-1")
    assert sentence == (
        f"cannot connect to PostgreSQL at db.example.org:5432 (database oai, user oai): {reason}"
    )


# Every key of the built-in file, as [table] key: a wrong value of each is named by its
# table and key (formats.stored), never by its bare key (stored) or the setting's name in
# the code (stored_formats), which leave the operator to guess the table.
BUILT_IN = tomllib.loads((Path(__file__).parents[1] / "config" / "oaipmh.toml").read_text())
FILE_KEYS = [(table, key) for table, body in BUILT_IN.items() for key in body]


@pytest.mark.parametrize(("table", "key"), FILE_KEYS, ids=[f"{t}.{k}" for t, k in FILE_KEYS])
def test_a_wrong_value_of_each_key_names_its_table_and_the_file(
    tmp_path: Path, table: str, key: str
) -> None:
    config = tmp_path / "site.toml"
    is_table = isinstance(BUILT_IN[table][key], dict)
    config.write_text(f"[{table}]\n{key} = {'1' if is_table else '{ wrong = 1 }'}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    said = f"{config}: {table}.{key} must be a table" if is_table else f"{config}: {table}.{key}: "
    assert str(caught.value).startswith(said)


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [("OAIPMH_PAGE_SIZE", "x", "harvest.page_size"), ("OAIPMH_PORT", "0", "server.port"),
     ("OAIPMH_MODE", "x", "server.mode"), ("OAIPMH_BASE_URL", "x", "repository.base_url"),
     ("OAIPMH_DATABASE_URL", "x", "store.database_url"), ("OAIPMH_WORKERS", "x", "server.workers"),
     ("OAIPMH_HOST", " ", "server.host")],
)  # fmt: skip
def test_a_wrong_variable_names_the_key_it_sets(variable: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={variable: value})
    assert str(caught.value).startswith(f"environment variable {variable}: {key}: ")


def test_an_unknown_stored_format_names_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text('[formats]\nstored = ["oai_dc", "marc21"]\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"OAIPMH_CONFIG": str(config)})
    assert str(caught.value) == (
        f"{config}: formats.stored: no metadata format marc21 (there are oai_dc, dim, "
        "oai_openaire, qdc)"
    )


def test_a_secret_given_two_ways_names_its_key(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("s" * 40)
    environ = {"OAIPMH_TOKEN_SECRET": "t" * 40, "OAIPMH_TOKEN_SECRET_FILE": str(secret)}
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ)
    assert str(caught.value) == (
        "OAIPMH_TOKEN_SECRET and OAIPMH_TOKEN_SECRET_FILE are both set: give "
        "harvest.token_secret one way"
    )


@pytest.mark.parametrize("command", [["stats"], ["check"]])
def test_a_command_that_only_reads_refuses_a_database_file_that_is_not_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """`stats` and `check` read the store. Run in a folder holding none (the default URL,
    `sqlite:///oaipmh.sqlite3`, is relative to it) or with a mistyped path, they made an
    empty store there and reported its 0 records, as if the repository were empty."""
    named = run_cli(*command, env=memory(tmp_path))
    refused(
        named,
        f"no database at {tmp_path / 'oai.sqlite3'}",
        "environment variable OAIPMH_DATABASE_URL: store.database_url",
        "oaipmh-server load",
    )
    monkeypatch.chdir(tmp_path)
    for variable in ("OAIPMH_DATABASE_URL", "OAIPMH_CONFIG"):
        monkeypatch.delenv(variable, raising=False)
    default = run_cli(*command, env={})
    refused(default, f"no database at {tmp_path / 'oaipmh.sqlite3'}", "store.database_url")
    assert list(tmp_path.iterdir()) == []
