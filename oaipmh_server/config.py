"""Settings: built-in defaults → the TOML file at OAIPMH_CONFIG → OAIPMH_* environment → overrides.

The built-in defaults are `config/oaipmh.toml` itself (installed as package data), so the
documented file and the code can never disagree. Every value is validated once, here, and
an error names the key and where the value came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any, Literal

from .errors import ConfigError
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
    ("harvest", "page_size"): "page_size",
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
}
LIMITS = ("max_value_length", "max_values", "max_record_bytes")
# Settings that are tables: a file (or overrides) adds to and changes the default table's
# keys instead of replacing the whole table.
_TABLES = frozenset(
    {
        "oai_dc_map", "citation_map", "schema_types",
        "openaire_resource_types", "openaire_access_rights", "openaire_versions",
    }
)  # fmt: skip
CITATION_TAG = re.compile(r"citation_[a-z_]+", re.ASCII)
CITATION_SOURCE = re.compile(r"\$[a-z_]+|" + FIELD_KEY.pattern, re.ASCII)

ENVIRONMENT = {
    "OAIPMH_DATABASE_URL": "database_url",
    "OAIPMH_DATABASE_PASSWORD": "database_password",
    "OAIPMH_MODE": "mode",
    "OAIPMH_BASE_URL": "base_url",
    "OAIPMH_TOKEN_SECRET": "token_secret",
    "OAIPMH_PAGE_SIZE": "page_size",
}


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
                document = tomllib.load(f)
        except OSError as e:
            raise ConfigError(f"OAIPMH_CONFIG: cannot read {config_path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{config_path}: not valid TOML: {e}") from None
        _merge_toml(raw, document, config_path)
    for variable, name in ENVIRONMENT.items():
        if variable in environ:
            raw[name] = (environ[variable], f"environment variable {variable}")
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
                raise ConfigError(f"{source}: unknown key {table}.{key}")
            if name in _TABLES and name in raw:
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: {table}.{key} must be a table")
                merged = dict(raw[name][0])
                merged.update(value)
                value = merged
            raw[name] = (value, source)


def _validate(raw: dict[str, tuple[Any, str]]) -> Settings:
    def get(name: str, kind: type | tuple[type, ...]) -> Any:
        value, source = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ConfigError(f"{source}: {name}: expected {_kind_name(kind)}, got {value!r}")
        return value

    def fail(name: str, message: str) -> ConfigError:
        return ConfigError(f"{raw[name][1]}: {name}: {message}")

    name = get("repository_name", str).strip()
    if not name:
        raise fail("repository_name", "must not be empty")

    identifier = get("repository_identifier", str)
    if not REPOSITORY_IDENTIFIER.fullmatch(identifier):
        raise fail("repository_identifier", f"{identifier!r} is not a domain-name-like identifier")

    emails = get("admin_emails", (list, tuple, str))
    emails = (emails,) if isinstance(emails, str) else tuple(emails)
    if not emails or not all(isinstance(e, str) and EMAIL.fullmatch(e) for e in emails):
        raise fail("admin_emails", f"expected one or more e-mail addresses, got {list(emails)!r}")

    base_url = get("base_url", str).strip() or None
    if base_url is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", base_url):
        raise fail("base_url", f"{base_url!r} is not an absolute http(s) URL")

    database_url = get("database_url", str).strip()
    if not database_url:
        raise fail("database_url", "must not be empty")

    for number in ("page_size", "max_concurrent_lists", "retry_after"):
        value, source = raw[number]
        if isinstance(value, str) and value.strip().isdigit():  # from the environment
            raw[number] = (int(value), source)
    page_size = get("page_size", int)
    if not 1 <= page_size <= 10_000:
        raise fail("page_size", f"must be between 1 and 10000, got {page_size}")
    max_lists = get("max_concurrent_lists", int)
    if max_lists < 0:
        raise fail("max_concurrent_lists", f"must be 0 (no limit) or more, got {max_lists}")
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
        raise fail("mode", f"must be 'development' or 'production', got {mode!r}")
    if mode == "production":
        if token_secret is None or len(token_secret) < 32:
            raise fail("token_secret", "production mode needs a token secret of 32 characters "
                       "or more (OAIPMH_TOKEN_SECRET)")  # fmt: skip
        if base_url is None:
            raise fail("base_url", "production mode needs the advertised baseURL (OAIPMH_BASE_URL)")

    keep_accessioned = get("keep_accessioned", bool)
    missing = get("missing_accessioned", str)
    if missing not in ("reject", "ingest_time"):
        raise fail("missing_accessioned", f"must be 'reject' or 'ingest_time', got {missing!r}")

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
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "true or false", int: "an integer", str: "a string", dict: "a table"}
    return " or ".join(names.get(k, "a list") for k in kinds)
