"""Settings: built-in defaults → the TOML file at OAIPMH_CONFIG → OAIPMH_* environment → overrides.

The built-in defaults are `config/oaipmh.toml` itself (installed as package data), so the
documented file and the code can never disagree. Every value is validated once, here, and
an error names the key and where the value came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from importlib import resources
from typing import Any, Literal

from .errors import ConfigError
from .files import pattern_problem
from .virtual_sets import BadDefinition, VirtualSet, parse_definition
from .vocabularies import ACCESS_RIGHTS, TERMS

DC_ELEMENTS = frozenset(
    {
        "contributor", "coverage", "creator", "date", "description", "format", "identifier",
        "language", "publisher", "relation", "rights", "source", "subject", "title", "type",
    }
)  # fmt: skip

# From oai-identifier.xsd: the repositoryIdentifier is a domain-name-like string.
REPOSITORY_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)+", re.ASCII)
# From OAI-PMH.xsd (emailType).
EMAIL = re.compile(r"\S+@(\S+\.)+\S+")
# A path the OAI-PMH endpoint answers at: absolute, no query, no trailing slash.
PATH = re.compile(r"(/[A-Za-z0-9._~\-]+)+", re.ASCII)
FIELD_KEY = re.compile(
    r"[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(\.([A-Za-z][A-Za-z0-9_-]*|\*))?", re.ASCII
)


@dataclass(frozen=True)
class Settings:
    """Everything an operator can change. Values cross modules; nothing mutates them."""

    repository_name: str
    repository_identifier: str
    admin_emails: tuple[str, ...]
    base_url: str | None
    database_url: str
    database_password: str | None
    mode: Literal["development", "production"]
    max_concurrent_lists: int
    places_folder: str | None
    trusted_proxies: tuple[str, ...]
    retry_after: int
    page_size: int
    max_page_bytes: int
    token_secret: str | None
    keep_accessioned: bool
    missing_accessioned: Literal["reject", "ingest_time"]
    load_wait: bool
    hidden_fields: tuple[str, ...]
    oai_dc_map: tuple[tuple[str, str], ...]
    stored_formats: tuple[str, ...]
    # What one record may cost, checked at load (see [limits] in config/oaipmh.toml).
    max_value_length: int
    max_values: int
    max_record_bytes: int
    # What a .zip export may unpack to, in bytes and in files (zip bombs refused unread).
    max_archive_bytes: int
    max_archive_entries: int
    # The HTML pages (pages.py): the home page's description, the Highwire citation_* tags
    # (tag → DSpace-style source: "a | b" first present, "a, b" all) and dc.type → schema.org.
    repository_description: str = ""
    citation_map: tuple[tuple[str, str], ...] = ()
    schema_types: tuple[tuple[str, str], ...] = ()
    # oai_openaire: repository values (normalised) → COAR term labels, per vocabulary.
    openaire_resource_types: tuple[tuple[str, str], ...] = ()
    openaire_access_rights: tuple[tuple[str, str], ...] = ()
    openaire_versions: tuple[tuple[str, str], ...] = ()
    openaire_default_access_right: str = "metadata only access"
    set_style: Literal["dspace", "hierarchical"] = "dspace"
    paths: tuple[str, ...] = ("/oai", "/oai/request")
    # The link to a record's file (oaipmh_server/files.py), "" for none.
    files_url: str = "{base}/bitstream/handle/{handle}/{name}?sequence={sequence}"
    # Virtual sets (virtual_sets.py): every definition of [virtual_sets.define], checked,
    # and the specs of those served.
    virtual_set_definitions: tuple[VirtualSet, ...] = ()
    virtual_sets_served: tuple[str, ...] = ()
    # `load --sync`: the most of the stored records (a percentage) it may withdraw unless
    # --sync-allow-deletes says how many are expected.
    sync_max_deleted: float = 10.0


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
    ("load", "sync_max_deleted"): "sync_max_deleted",
}
LIMITS = (
    "max_value_length",
    "max_values",
    "max_record_bytes",
    "max_archive_bytes",
    "max_archive_entries",
)
# Settings that are tables: a file (or overrides) adds to and changes the default table's
# keys instead of replacing the whole table.
_TABLES = frozenset(
    {
        "oai_dc_map", "citation_map", "schema_types",
        "openaire_resource_types", "openaire_access_rights", "openaire_versions",
        "virtual_set_definitions",
    }
)  # fmt: skip
CITATION_TAG = re.compile(r"citation_[a-z_]+", re.ASCII)
CITATION_SOURCE = re.compile(r"\$[a-z_]+|" + FIELD_KEY.pattern, re.ASCII)

# Integers in the environment: ASCII digits, few enough that int() is instant (and below
# Python's 4300-digit limit); every integer setting then checks its own range.
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)
INTEGER_SETTINGS = ("page_size", "max_page_bytes", "max_concurrent_lists", "retry_after")
FROM_ENVIRONMENT = "environment variable "
# Settings whose values no message repeats.
SECRETS = frozenset({"database_password", "token_secret"})

ENVIRONMENT = {
    "OAIPMH_DATABASE_URL": "database_url",
    "OAIPMH_DATABASE_PASSWORD": "database_password",
    "OAIPMH_MODE": "mode",
    "OAIPMH_BASE_URL": "base_url",
    "OAIPMH_TOKEN_SECRET": "token_secret",
    "OAIPMH_PAGE_SIZE": "page_size",
}


# Every OAIPMH_* variable the server reads; any other is reported as a likely misspelling.
KNOWN_VARIABLES = frozenset({"OAIPMH_CONFIG", *ENVIRONMENT})


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
    environ = os.environ if environ is None else environ
    raw: dict[str, tuple[Any, str]] = {}
    default_file = resources.files("oaipmh_server.defaults").joinpath("oaipmh.toml")
    _merge_toml(raw, tomllib.loads(default_file.read_text("utf-8")), "built-in config/oaipmh.toml")
    config_path = environ.get("OAIPMH_CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as f:
                data = f.read()
            document = tomllib.loads(data.decode("utf-8"))
        except OSError as e:
            where = printable(config_path, 300)
            raise ConfigError(f"OAIPMH_CONFIG: cannot read {where}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            line = data.count(b"\n", 0, e.start) + 1
            raise ConfigError(f"{config_path}:{line}: not valid TOML: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{config_path}: not valid TOML: {e}") from None
        _merge_toml(raw, document, config_path)
    for variable, name in ENVIRONMENT.items():
        if variable in environ:
            raw[name] = (environ[variable], f"{FROM_ENVIRONMENT}{variable}")
    for name, value in (overrides or {}).items():
        if name not in {f.name for f in fields(Settings)}:
            raise ConfigError(f"unknown setting {name!r} (overrides)")
        if name in _TABLES and isinstance(value, Mapping):
            merged = dict(raw[name][0])
            merged.update(value)
            value = merged
        raw[name] = (value, "overrides")
    return _validate(raw)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of `settings` with some values changed (tests, the CLI's options)."""
    return replace(settings, **changes)


def _merge_toml(raw: dict[str, tuple[Any, str]], document: dict[str, Any], source: str) -> None:
    for table, body in document.items():
        if not isinstance(body, dict):
            raise ConfigError(f"{source}: [{table}] must be a table")
        for key, value in body.items():
            name = _TOML_KEYS.get((table, key))
            if name is None:
                raise ConfigError(f"{source}: unknown key {_nearest_key(table, key)}")
            if name in _TABLES and name in raw:
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: {table}.{key} must be a table")
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


def _validate(raw: dict[str, tuple[Any, str]]) -> Settings:
    def get(name: str, kind: type | tuple[type, ...]) -> Any:
        value, source = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = f"a value of type {type(value).__name__}" if name in SECRETS else shown(value)
            raise ConfigError(f"{source}: {name}: expected {_kind_name(kind)}, got {got}")
        return value

    def fail(name: str, message: str) -> ConfigError:
        return ConfigError(f"{raw[name][1]}: {name}: {message}")

    name = get("repository_name", str).strip()
    if not name:
        raise fail("repository_name", "must not be empty")

    identifier = get("repository_identifier", str)
    if not REPOSITORY_IDENTIFIER.fullmatch(identifier):
        raise fail(
            "repository_identifier", f"{shown(identifier)} is not a domain-name-like identifier"
        )

    emails = get("admin_emails", (list, tuple, str))
    emails = (emails,) if isinstance(emails, str) else tuple(emails)
    if not emails or not all(isinstance(e, str) and EMAIL.fullmatch(e) for e in emails):
        raise fail("admin_emails", f"expected one or more e-mail addresses, got {list(emails)!r}")

    base_url = get("base_url", str).strip() or None
    if base_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base_url):
        raise fail("base_url", f"{shown(base_url)} is not an absolute http(s) URL")

    database_url = get("database_url", str).strip()
    if not database_url:
        raise fail("database_url", "must not be empty")

    for number in INTEGER_SETTINGS:
        value, source = raw[number]
        if isinstance(value, str) and source.startswith(FROM_ENVIRONMENT):
            raw[number] = (_environment_integer(value, partial(fail, number)), source)
    page_size = get("page_size", int)
    if not 1 <= page_size <= 10_000:
        raise fail("page_size", f"must be between 1 and 10000, got {page_size}")
    max_page_bytes = get("max_page_bytes", int)
    if not 1024 <= max_page_bytes <= 1 << 30:
        raise fail("max_page_bytes", f"must be between 1024 and 1073741824, got {max_page_bytes}")
    max_lists = get("max_concurrent_lists", int)
    if not 0 <= max_lists <= 10_000:
        raise fail("max_concurrent_lists", f"must be 0 (no limit) to 10000, got {max_lists}")
    places_folder = get("places_folder", str).strip() or None
    proxies = get("trusted_proxies", (list, tuple))
    for proxy in proxies:
        try:
            if not isinstance(proxy, str):
                raise TypeError(proxy)
            ipaddress.ip_network(proxy)  # strict, as gunicorn's forwarded_allow_ips
        except (TypeError, ValueError):
            raise fail(
                "trusted_proxies", f"{proxy!r} is not an IP address or network (10.0.0.0/8)"
            ) from None
    retry_after = get("retry_after", int)
    if not 1 <= retry_after <= 86_400:
        raise fail("retry_after", f"must be between 1 and 86400 seconds, got {retry_after}")

    token_secret = get("token_secret", str) or None
    database_password = get("database_password", str) or None
    mode = get("mode", str)
    if mode not in ("development", "production"):
        raise fail("mode", f"must be 'development' or 'production', got {shown(mode)}")
    if mode == "production":
        if token_secret is None or len(token_secret) < 32:
            raise fail("token_secret", "production mode needs a token secret of 32 characters "
                       "or more (OAIPMH_TOKEN_SECRET)")  # fmt: skip
        if base_url is None:
            raise fail("base_url", "production mode needs the advertised baseURL (OAIPMH_BASE_URL)")

    keep_accessioned = get("keep_accessioned", bool)
    missing = get("missing_accessioned", str)
    if missing not in ("reject", "ingest_time"):
        raise fail(
            "missing_accessioned", f"must be 'reject' or 'ingest_time', got {shown(missing)}"
        )

    hidden = get("hidden_fields", (list, tuple))
    if not all(isinstance(h, str) and FIELD_KEY.fullmatch(h) for h in hidden):
        raise fail("hidden_fields", f"expected field names like 'dc.identifier.email': {hidden!r}")

    mapping = get("oai_dc_map", dict)
    for key, element in mapping.items():
        if not FIELD_KEY.fullmatch(key):
            raise fail("oai_dc_map", f"{key!r} is not a field name like 'dc.contributor.author'")
        if not isinstance(element, str) or (element and element not in DC_ELEMENTS):
            raise fail("oai_dc_map", f"{key!r} maps to {element!r}, not a simple DC element or ''")

    stored = get("stored_formats", (list, tuple))
    if not all(isinstance(prefix, str) for prefix in stored):
        raise fail("stored_formats", f"expected a list of metadata prefixes: {stored!r}")

    description = get("repository_description", str).strip()
    citation = get("citation_map", dict)
    for tag, source in citation.items():
        if not CITATION_TAG.fullmatch(tag) or not isinstance(source, str):
            raise fail("citation_map", f"{tag!r} = {source!r}: expected citation_… = 'dc.…'")
        for part in re.split(r"[|,]", source):
            if part.strip() and not CITATION_SOURCE.fullmatch(part.strip()):
                raise fail("citation_map", f"{tag!r}: {part.strip()!r} is not a field name")
    schema_types = get("schema_types", dict)
    if not all(isinstance(v, str) and re.fullmatch(r"[A-Z][A-Za-z]+", v) for v in
               schema_types.values()):  # fmt: skip
        raise fail("schema_types", f"expected schema.org type names: {schema_types!r}")
    openaire: dict[str, tuple[tuple[str, str], ...]] = {}
    for vocabulary, terms in TERMS.items():
        setting = f"openaire_{vocabulary}"
        table = get(setting, dict)
        for key, label in table.items():
            if not isinstance(label, str) or label not in terms:
                kind = vocabulary.replace("_", " ")
                raise fail(setting, f"{key!r} maps to {label!r}, not a label of COAR's {kind}")
        openaire[setting] = tuple(sorted(table.items()))
    default_access = get("openaire_default_access_right", str)
    if default_access and default_access not in ACCESS_RIGHTS:
        labels = ", ".join(ACCESS_RIGHTS)
        raise fail("openaire_default_access_right", f"{default_access!r} is not '' or {labels}")
    limits = {}
    for limit in LIMITS:
        limits[limit] = get(limit, int)
        if limits[limit] < 1:
            raise fail(limit, f"must be 1 or more, got {limits[limit]}")
    set_style = get("set_style", str)
    if set_style not in ("dspace", "hierarchical"):
        raise fail("set_style", f"must be 'dspace' or 'hierarchical', got {set_style!r}")

    definitions = []
    for spec, body in get("virtual_set_definitions", dict).items():
        try:
            definitions.append(parse_definition(spec, body))
        except BadDefinition as e:
            raise ConfigError(
                f"{raw['virtual_set_definitions'][1]}: virtual_sets.define.{printable(spec)}: {e}"
            ) from None
    served = get("virtual_sets_served", (list, tuple))
    defined = {d.spec for d in definitions}
    for spec in served:
        if not isinstance(spec, str) or spec not in defined:
            raise fail("virtual_sets_served", f"{spec!r} is not a set of [virtual_sets.define] "
                       f"(defined: {', '.join(sorted(defined)) or 'none'})")  # fmt: skip
    if len(set(served)) != len(served):
        raise fail("virtual_sets_served", f"a set is named twice: {served!r}")

    paths = get("paths", (list, tuple))
    if not paths or not all(isinstance(p, str) and PATH.fullmatch(p) for p in paths):
        raise fail("paths", f"expected one or more URL paths like '/oai': {paths!r}")

    files_url = get("files_url", str).strip()
    if (problem := pattern_problem(files_url)) is not None:
        raise fail("files_url", problem)

    sync_max_deleted = get("sync_max_deleted", (int, float))
    if isinstance(sync_max_deleted, bool) or not 0 <= sync_max_deleted <= 100:
        raise fail("sync_max_deleted", f"must be a percentage, 0 to 100, got {sync_max_deleted!r}")

    return Settings(
        repository_name=name,
        repository_identifier=identifier,
        admin_emails=emails,
        base_url=base_url,
        database_url=database_url,
        database_password=database_password,
        mode=mode,
        max_concurrent_lists=max_lists,
        places_folder=places_folder,
        trusted_proxies=tuple(proxies),
        retry_after=retry_after,
        page_size=page_size,
        max_page_bytes=max_page_bytes,
        token_secret=token_secret,
        keep_accessioned=keep_accessioned,
        missing_accessioned=missing,
        load_wait=get("load_wait", bool),
        hidden_fields=tuple(hidden),
        oai_dc_map=tuple(sorted(mapping.items())),
        stored_formats=tuple(stored),
        repository_description=description,
        citation_map=tuple(citation.items()),
        schema_types=tuple((k.casefold(), v) for k, v in schema_types.items()),
        openaire_resource_types=openaire["openaire_resource_types"],
        openaire_access_rights=openaire["openaire_access_rights"],
        openaire_versions=openaire["openaire_versions"],
        openaire_default_access_right=default_access,
        **limits,
        set_style=set_style,
        paths=tuple(dict.fromkeys(paths)),
        files_url=files_url,
        virtual_set_definitions=tuple(definitions),
        virtual_sets_served=tuple(served),
        sync_max_deleted=float(sync_max_deleted),
    )


def _environment_integer(value: str, fail: Callable[[str], ConfigError]) -> int:
    """An integer from the environment: ASCII digits and nothing else. Python's int() would
    also take '١٢' (Arabic-Indic digits), ' 5', '+5' and '1_000', and fail on '²' (a digit
    to str.isdigit) with a traceback; a value in any other form is a mistake to report."""
    if INTEGER.fullmatch(value):
        return int(value)
    if value.isascii() and value.isdigit():
        raise fail(f"{shown(value)} is far too large")
    raise fail(
        f"expected a whole number written with the digits 0-9 (like 100), got {shown(value)}"
    )


def printable(text: str, limit: int = 60) -> str:
    """A name as a message quotes it, unquoted: control characters escaped, shortened."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return text if len(text) <= limit else text[: limit - 1] + "…"


def shown(value: object, limit: int = 80) -> str:
    """A value as a message quotes it: repr (control characters escaped), shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a table"}  # fmt: skip
    return " or ".join(names.get(k, "a list") for k in kinds)
