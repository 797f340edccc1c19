"""Settings: built-in defaults → the TOML file at OAIPMH_CONFIG → OAIPMH_* environment → overrides.

The built-in defaults are `config/oaipmh.toml` itself (installed as package data), so the
documented file and the code can never disagree. Every value is validated once, here, and
an error names the key and where the value came from.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from importlib import resources
from typing import Any, Literal

from .errors import ConfigError

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
    retry_after: int
    page_size: int
    token_secret: str | None
    keep_accessioned: bool
    missing_accessioned: Literal["reject", "ingest_time"]
    load_wait: bool
    hidden_fields: tuple[str, ...]
    oai_dc_map: tuple[tuple[str, str], ...]
    stored_formats: tuple[str, ...]
    set_style: Literal["dspace", "hierarchical"] = "dspace"
    paths: tuple[str, ...] = ("/oai", "/oai/request")


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
    ("server", "retry_after"): "retry_after",
    ("server", "paths"): "paths",
    ("harvest", "page_size"): "page_size",
    ("harvest", "token_secret"): "token_secret",
    ("datestamps", "keep_accessioned"): "keep_accessioned",
    ("datestamps", "missing_accessioned"): "missing_accessioned",
    ("load", "wait"): "load_wait",
    ("oai_dc", "hidden_fields"): "hidden_fields",
    ("oai_dc", "map"): "oai_dc_map",
    ("formats", "stored"): "stored_formats",
    ("sets", "style"): "set_style",
}

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
        if name == "oai_dc_map" and isinstance(value, Mapping):
            merged = dict(raw["oai_dc_map"][0])
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
            if name == "oai_dc_map" and name in raw:
                if not isinstance(value, dict):
                    raise ConfigError(f"{source}: oai_dc.map must be a table")
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

    set_style = get("set_style", str)
    if set_style not in ("dspace", "hierarchical"):
        raise fail("set_style", f"must be 'dspace' or 'hierarchical', got {set_style!r}")

    paths = get("paths", (list, tuple))
    if not paths or not all(isinstance(p, str) and PATH.fullmatch(p) for p in paths):
        raise fail("paths", f"expected one or more URL paths like '/oai': {paths!r}")

    return Settings(
        repository_name=name,
        repository_identifier=identifier,
        admin_emails=emails,
        base_url=base_url,
        database_url=database_url,
        database_password=database_password,
        mode=mode,
        max_concurrent_lists=max_lists,
        retry_after=retry_after,
        page_size=page_size,
        token_secret=token_secret,
        keep_accessioned=keep_accessioned,
        missing_accessioned=missing,
        load_wait=get("load_wait", bool),
        hidden_fields=tuple(hidden),
        oai_dc_map=tuple(sorted(mapping.items())),
        stored_formats=tuple(stored),
        set_style=set_style,
        paths=tuple(dict.fromkeys(paths)),
    )


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "true or false", int: "an integer", str: "a string", dict: "a table"}
    return " or ".join(names.get(k, "a list") for k in kinds)
