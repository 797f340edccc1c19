"""Reading the settings: built-in defaults → the TOML file at OAIPMH_CONFIG → OAIPMH_*
environment → overrides.

The built-in defaults are oaipmh_server/defaults/oaipmh.toml itself (package data; the
top-level config/oaipmh.toml is its copy), so the documented file and the code can never
disagree. Every value is validated once
(setting_checks.py), and an error names the key and where the value came from.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .setting_checks import FROM_ENVIRONMENT, SECRETS, printable, validate
from .settings import Settings
from .virtual_set_definitions import VirtualSet

# TOML (table, key) → Settings field.
_TOML_KEYS: dict[tuple[str, str], str] = {
    ("repository", "name"): "repository_name",
    ("repository", "identifier"): "repository_identifier",
    ("repository", "admin_emails"): "admin_emails",
    ("repository", "base_url"): "base_url",
    ("store", "database_url"): "database_url",
    ("store", "database_password"): "database_password",
    ("server", "mode"): "mode",
    ("server", "max_concurrent_lists"): "max_concurrent_lists",
    ("server", "places_folder"): "places_folder",
    ("server", "trusted_proxies"): "trusted_proxies",
    ("server", "retry_after"): "retry_after",
    ("server", "paths"): "paths",
    ("harvest", "page_size"): "page_size",
    ("harvest", "max_page_bytes"): "max_page_bytes",
    ("harvest", "token_secret"): "token_secret",
    ("harvest", "previous_token_secrets"): "previous_token_secrets",
    ("datestamps", "keep_accessioned"): "keep_accessioned",
    ("datestamps", "missing_accessioned"): "missing_accessioned",
    ("load", "wait"): "load_wait",
    ("oai_dc", "hidden_fields"): "hidden_fields",
    ("oai_dc", "map"): "oai_dc_map",
    ("formats", "stored"): "stored_formats",
    ("repository", "description"): "repository_description",
    ("pages", "citation"): "citation_map",
    ("pages", "schema_types"): "schema_types",
    ("oai_openaire", "resource_types"): "openaire_resource_types",
    ("oai_openaire", "access_rights"): "openaire_access_rights",
    ("oai_openaire", "versions"): "openaire_versions",
    ("oai_openaire", "default_access_right"): "openaire_default_access_right",
    ("limits", "max_value_length"): "max_value_length",
    ("limits", "max_values"): "max_values",
    ("limits", "max_record_bytes"): "max_record_bytes",
    ("limits", "max_archive_bytes"): "max_archive_bytes",
    ("limits", "max_archive_entries"): "max_archive_entries",
    ("sets", "style"): "set_style",
    ("files", "url"): "files_url",
    ("virtual_sets", "served"): "virtual_sets_served",
    ("virtual_sets", "define"): "virtual_set_definitions",
    ("server", "host"): "host",
    ("server", "port"): "port",
    ("server", "workers"): "workers",
    ("server", "socket"): "socket",
    ("server", "metrics_allow"): "metrics_allow",
    ("pages", "enabled"): "pages_enabled",
    ("pages", "name"): "pages_name",
    ("pages", "logo_url"): "pages_logo_url",
    ("pages", "footer"): "pages_footer",
    ("pages", "accent_color"): "pages_accent_color",
    ("pages", "template_folder"): "pages_template_folder",
    ("pages", "lang"): "pages_lang",
    ("load", "sync_max_deleted"): "sync_max_deleted",
}
# Settings that are tables: a file (or overrides) adds to and changes the default table's
# keys instead of replacing the whole table.
_TABLES = frozenset(
    {
        "oai_dc_map", "citation_map", "schema_types",
        "openaire_resource_types", "openaire_access_rights", "openaire_versions",
        "virtual_set_definitions",
    }
)  # fmt: skip
BUILT_IN = "built-in config/oaipmh.toml"
# Settings field → `table.key`, as the file writes it and every message names it.
KEYS = {name: f"{table}.{key}" for (table, key), name in _TOML_KEYS.items()}

ENVIRONMENT = {
    "OAIPMH_DATABASE_URL": "database_url",
    "OAIPMH_DATABASE_PASSWORD": "database_password",
    "OAIPMH_MODE": "mode",
    "OAIPMH_BASE_URL": "base_url",
    "OAIPMH_TOKEN_SECRET": "token_secret",
    "OAIPMH_PAGE_SIZE": "page_size",
    "OAIPMH_HOST": "host",
    "OAIPMH_PORT": "port",
    "OAIPMH_WORKERS": "workers",
    "OAIPMH_SOCKET": "socket",
    "OAIPMH_PREVIOUS_TOKEN_SECRETS": "previous_token_secrets",
}
# Secrets may be files instead (a container's /run/secrets/…), or systemd's credentials
# (LoadCredential=, files of these names in $CREDENTIALS_DIRECTORY): a secret in the
# environment can be read by whoever may inspect the process. Precedence: the variable or
# its *_FILE (setting both is refused), then the credential, then the file, then the default.
SECRET_FILES = {
    "OAIPMH_TOKEN_SECRET_FILE": "token_secret",
    "OAIPMH_DATABASE_PASSWORD_FILE": "database_password",
    "OAIPMH_PREVIOUS_TOKEN_SECRETS_FILE": "previous_token_secrets",
}
CREDENTIALS = ("token_secret", "database_password", "previous_token_secrets")
MAX_SECRET_FILE = 65_536


# Every OAIPMH_* variable the server reads; any other is reported as a likely misspelling.
KNOWN_VARIABLES = frozenset({"OAIPMH_CONFIG", *ENVIRONMENT, *SECRET_FILES})


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """Warnings for variables that look meant for the server but that it does not read
    (OAIPMH_DATABSE_URL, oaipmh_page_size, OAIPHM_PAGE_SIZE): otherwise ignored in silence,
    such a variable leaves its setting at the default, the database one of them included."""
    environ = os.environ if environ is None else environ
    warnings = []
    for variable in sorted(environ):
        if variable in KNOWN_VARIABLES:
            continue
        nearest = difflib.get_close_matches(variable.upper(), KNOWN_VARIABLES, n=1, cutoff=0.8)
        if not variable.upper().startswith("OAIPMH_") and not nearest:
            continue
        hint = (
            f"did you mean {nearest[0]}?"
            if nearest
            else f"known: {', '.join(sorted(KNOWN_VARIABLES))}"
        )
        warnings.append(
            f"environment variable {printable(variable)} is not a setting, ignored; {hint}"
        )
    return warnings


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the settings in order of precedence; raise ConfigError naming key and source."""
    return validate(_read(overrides, environ), KEYS)


@dataclass(frozen=True)
class CheckedSettings:
    """What `oaipmh-server config check` reports: every mistake, and the settings as read,
    each mistaken one put back to its built-in default (None if even that cannot be had)."""

    settings: Settings | None
    sources: Mapping[str, str]
    problems: tuple[str, ...]
    defaulted: frozenset[str]


def check_settings(environ: Mapping[str, str] | None = None) -> CheckedSettings:
    """Read the settings as load_settings does, but collect every mistake instead of
    stopping at the first: a mistaken setting is put back to its built-in default and the
    rest validated again, until they pass or a mistake names no setting to put back."""
    problems: list[str] = []
    raw = _read(None, environ, problems)
    defaults = _read(None, {}, [])  # the built-in file alone
    defaulted: set[str] = set()
    settings = None
    while True:
        try:
            settings = validate(dict(raw), KEYS)
            break
        except ConfigError as e:
            if not _caused_by_defaults(e.settings, defaulted):
                problems.extend(e.problems)
            fresh = [s for s in e.settings if s not in defaulted and s in defaults]
            if not fresh:
                break
            for setting in fresh:
                raw[setting] = defaults[setting]
            defaulted.update(fresh)
    sources = {name: source for name, (_, source) in raw.items()}
    return CheckedSettings(settings, sources, tuple(dict.fromkeys(problems)), frozenset(defaulted))


# A setting checked against another one: once that one is put back to its default, a
# mistake found in this one is the default's doing (`served` naming a set the file defines,
# in a definition with a mistake, and the built-in definitions do not), not the file's.
CHECKED_AGAINST = {"virtual_sets_served": "virtual_set_definitions"}


def _caused_by_defaults(settings: tuple[str, ...], defaulted: set[str]) -> bool:
    return bool(settings) and all(CHECKED_AGAINST.get(s) in defaulted for s in settings)


def setting_source(name: str, environ: Mapping[str, str] | None = None) -> str:
    """Where the value of the setting `name` comes from (a file, a variable, the built-in
    default), for a message about a value found wrong after it was read."""
    return _read(None, environ, [])[name][1]


MASK = "********"


def describe_settings(checked: CheckedSettings) -> list[str]:
    """One line per setting, `table.key = value  # where it came from`, secrets masked:
    what `oaipmh-server config check` prints. Every field of Settings, whoever added it."""
    if checked.settings is None:
        return []
    lines = []
    for field in fields(Settings):
        value = getattr(checked.settings, field.name)
        source = checked.sources.get(field.name, BUILT_IN)
        where = "built-in default" if source == BUILT_IN else source
        if field.name in checked.defaulted:
            where = "built-in default, in place of the mistake reported below"
        key = KEYS.get(field.name, field.name)
        lines.append(f"{key} = {_displayed(field.name, value)}  # {where}")
    return sorted(lines)  # by table.key: a table's keys together


def _displayed(name: str, value: Any) -> str:
    if name in SECRETS:
        if isinstance(value, tuple):
            return "[" + ", ".join(MASK for _ in value) + "]"
        return "(not set)" if value is None else MASK
    if name == "database_url":
        return json.dumps(masked_url(value), ensure_ascii=False)
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if (
        value
        and isinstance(value, tuple)
        and all(isinstance(v, tuple) and len(v) == 2 for v in value)
    ):
        pairs = ", ".join(f"{_displayed('', k)} = {_displayed('', v)}" for k, v in value)
        return "{ " + pairs + " }"
    if isinstance(value, tuple):
        return "[" + ", ".join(_displayed("", v) for v in value) + "]"
    if isinstance(value, VirtualSet):
        return json.dumps(value.spec, ensure_ascii=False)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def masked_url(url: str) -> str:
    """A database URL with its password masked: user:password@ and a password=
    parameter (libpq's, and sslpassword)."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL urllib can split: show nothing of it
        return MASK
    if password is not None:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        url = url.replace(parts.netloc, f"{user}:{MASK}@{host}", 1)
    return re.sub(r"([?&](?:ssl)?password=)[^&]*", rf"\g<1>{MASK}", url, flags=re.IGNORECASE)


def _read(
    overrides: Mapping[str, Any] | None,
    environ: Mapping[str, str] | None,
    problems: list[str] | None = None,
) -> dict[str, tuple[Any, str]]:
    """Every setting's raw value and where it came from. A mistake raises ConfigError, or,
    given a `problems` list, is added to it and the value it concerns left out."""
    environ = os.environ if environ is None else environ

    def report(error: ConfigError) -> None:
        if problems is None:
            raise error
        problems.extend(error.problems)

    raw: dict[str, tuple[Any, str]] = {}
    default_file = resources.files("oaipmh_server.defaults").joinpath("oaipmh.toml")
    _merge_toml(raw, tomllib.loads(default_file.read_text("utf-8")), BUILT_IN, report)
    config_path = environ.get("OAIPMH_CONFIG")
    if config_path:
        try:
            _merge_toml(raw, _read_toml(config_path), config_path, report)
        except ConfigError as e:
            report(e)
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if directory:
        for name in CREDENTIALS:
            path = os.path.join(directory, name)
            if not os.path.lexists(path):
                continue  # the unit gives this one another way, or not at all
            try:
                text = _read_secret_file(path, f"credential {name} ($CREDENTIALS_DIRECTORY)")
                raw[name] = (_secret_value(name, text), f"credential {path}")
            except ConfigError as e:
                report(e)
    for variable, name in ENVIRONMENT.items():
        if variable in environ:
            value: Any = environ[variable]
            if name == "previous_token_secrets":  # several, comma-separated
                value = [s.strip() for s in value.split(",") if s.strip()]
            raw[name] = (value, f"{FROM_ENVIRONMENT}{variable}")
    for variable, name in SECRET_FILES.items():
        if variable not in environ:
            continue
        plain = variable.removesuffix("_FILE")
        try:
            if plain in environ:
                raise ConfigError(
                    f"{plain} and {variable} are both set: give {KEYS[name]} one way", (name,)
                )
            path = environ[variable]
            text = _read_secret_file(path, variable)
            raw[name] = (_secret_value(name, text), f"file {path} ({variable})")
        except ConfigError as e:
            report(e)
    for name, value in (overrides or {}).items():
        if name not in {f.name for f in fields(Settings)}:
            raise ConfigError(f"unknown setting {name!r} (overrides)")
        if name in _TABLES and isinstance(value, Mapping):
            merged = dict(raw[name][0])
            merged.update(value)
            value = merged
        raw[name] = (value, "overrides")
    return raw


def _read_toml(config_path: str) -> dict[str, Any]:
    try:
        with open(config_path, "rb") as f:
            data = f.read()
        return tomllib.loads(data.decode("utf-8"))
    except OSError as e:
        where = printable(config_path, 300)
        raise ConfigError(f"OAIPMH_CONFIG: cannot read {where}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"{config_path}:{line}: not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{config_path}: not valid TOML: {e}") from None


def _read_secret_file(path: str, what: str) -> str:
    """A secret file's text; ConfigError naming `what` and the path (never the content)."""
    where = printable(path, 300)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_FILE + 1)
    except OSError as e:
        raise ConfigError(f"{what}: cannot read {where}: {e.strerror}") from None
    if len(data) > MAX_SECRET_FILE:
        raise ConfigError(f"{what}: {where} is larger than {MAX_SECRET_FILE} bytes, not a secret")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what}: {where} is not UTF-8 text") from None


def _secret_value(name: str, text: str) -> Any:
    """A secret file's value: its text without the trailing line break (editors add one),
    or, for the list of previous token secrets, its non-empty lines."""
    if name == "previous_token_secrets":
        return [line.strip() for line in text.splitlines() if line.strip()]
    return text.rstrip("\r\n")


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some values changed (tests, the CLI's options)."""
    return replace(settings, **changes)


def _merge_toml(
    raw: dict[str, tuple[Any, str]],
    document: dict[str, Any],
    source: str,
    report: Callable[[ConfigError], None],
) -> None:
    for table, body in document.items():
        if not isinstance(body, dict):
            report(ConfigError(f"{source}: [{table}] must be a table"))
            continue
        for key, value in body.items():
            name = _TOML_KEYS.get((table, key))
            if name is None:
                report(ConfigError(f"{source}: unknown key {_nearest_key(table, key)}"))
                continue
            if name in _TABLES and name in raw:
                if not isinstance(value, dict):
                    report(ConfigError(f"{source}: {table}.{key} must be a table", (name,)))
                    continue
                merged = dict(raw[name][0])
                merged.update(value)
                value = merged
            raw[name] = (value, source)


def _nearest_key(table: str, key: str) -> str:
    """`table.key`, and the known key it most likely misspells (refused rather than
    ignored: a misspelt key would silently leave its setting at the default)."""
    given = f"{table}.{key}"
    known = [f"{t}.{k}" for t, k in _TOML_KEYS]
    nearest = difflib.get_close_matches(given, known, n=1, cutoff=0.6)
    hint = f" (did you mean {nearest[0]}?)" if nearest else ""
    return printable(given) + hint
