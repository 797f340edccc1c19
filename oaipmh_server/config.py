"""Settings: built-in defaults → the TOML file at OAIPMH_CONFIG → OAIPMH_* environment → overrides.

The built-in defaults are `config/oaipmh.toml` itself (installed as package data), so the
documented file and the code can never disagree. Every value is validated once, here, and
an error names the key and where the value came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError
from .files import pattern_problem
from .placeholders import placeholder_identity
from .settings import DC_ELEMENTS
from .settings import Settings as Settings  # re-exported: ingest/ imports it from here
from .virtual_set_definitions import BadDefinition, VirtualSet, parse_definition
from .vocabularies import ACCESS_RIGHTS, TERMS

# From oai-identifier.xsd: the repositoryIdentifier is a domain-name-like string.
REPOSITORY_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)+", re.ASCII)
# From OAI-PMH.xsd (emailType).
EMAIL = re.compile(r"\S+@(\S+\.)+\S+")
# A path the OAI-PMH endpoint answers at: absolute, no query, no trailing slash.
PATH = re.compile(r"(/[A-Za-z0-9._~\-]+)+", re.ASCII)
FIELD_KEY = re.compile(
    r"[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(\.([A-Za-z][A-Za-z0-9_-]*|\*))?", re.ASCII
)


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
# A colour as CSS writes it in hex (#0a5, #00aa55): nothing else can reach the stylesheet.
HEX_COLOR = re.compile(r"#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})", re.ASCII)
# A language tag as HTML's lang takes it (BCP 47: en, de-CH, zh-Hant-TW, sr-Latn).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", re.ASCII)
# A logo: an http(s) URL, or a path on this site (/logo.png), with nothing to escape.
LOGO_URL = re.compile(r"(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?/[^\s\"'<>\\]*", re.ASCII)
CITATION_TAG = re.compile(r"citation_[a-z_]+", re.ASCII)
CITATION_SOURCE = re.compile(r"\$[a-z_]+|" + FIELD_KEY.pattern, re.ASCII)

# Integers in the environment: ASCII digits, few enough that int() is instant (and below
# Python's 4300-digit limit); every integer setting then checks its own range.
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)
INTEGER_SETTINGS = ("page_size", "max_page_bytes", "max_concurrent_lists", "retry_after")
FROM_ENVIRONMENT = "environment variable "
# Settings whose values no message repeats.
SECRETS = frozenset({"database_password", "token_secret", "previous_token_secrets"})
BUILT_IN = "built-in config/oaipmh.toml"

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
    return _validate(_read(overrides, environ))


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
            settings = _validate(dict(raw))
            break
        except ConfigError as e:
            problems.extend(e.problems)
            fresh = [s for s in e.settings if s not in defaulted and s in defaults]
            if not fresh:
                break
            for setting in fresh:
                raw[setting] = defaults[setting]
            defaulted.update(fresh)
    sources = {name: source for name, (_, source) in raw.items()}
    return CheckedSettings(settings, sources, tuple(dict.fromkeys(problems)), frozenset(defaulted))


MASK = "********"


def describe_settings(checked: CheckedSettings) -> list[str]:
    """One line per setting, `table.key = value  # where it came from`, secrets masked:
    what `oaipmh-server config check` prints. Every field of Settings, whoever added it."""
    if checked.settings is None:
        return []
    keys = {name: f"{table}.{key}" for (table, key), name in _TOML_KEYS.items()}
    lines = []
    for field in fields(Settings):
        value = getattr(checked.settings, field.name)
        source = checked.sources.get(field.name, BUILT_IN)
        where = "built-in default" if source == BUILT_IN else source
        if field.name in checked.defaulted:
            where = "built-in default, in place of the mistake reported below"
        key = keys.get(field.name, field.name)
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
                    f"{plain} and {variable} are both set: give the {name} one way", (name,)
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


def _validate(raw: dict[str, tuple[Any, str]]) -> Settings:
    def get(name: str, kind: type | tuple[type, ...]) -> Any:
        value, source = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = f"a value of type {type(value).__name__}" if name in SECRETS else shown(value)
            raise ConfigError(f"{source}: {name}: expected {_kind_name(kind)}, got {got}", (name,))
        return value

    def fail(name: str, message: str) -> ConfigError:
        return ConfigError(f"{raw[name][1]}: {name}: {message}", (name,))

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
    previous_secrets = get("previous_token_secrets", (list, tuple))
    if not all(isinstance(p, str) and p.strip() for p in previous_secrets):
        raise fail("previous_token_secrets", "expected a list of non-empty strings")
    if mode == "production":
        _require_production(
            fail, token_secret, previous_secrets, base_url, name, identifier, emails
        )

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
                f"{raw['virtual_set_definitions'][1]}: virtual_sets.define.{printable(spec)}: {e}",
                ("virtual_set_definitions",),
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

    listening = _serve_settings(raw, get, fail)
    pages = _pages_settings(get, fail)

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
        **listening,
        **pages,
        previous_token_secrets=tuple(dict.fromkeys(p.strip() for p in previous_secrets)),
    )


def _serve_settings(
    raw: dict[str, tuple[Any, str]],
    get: Callable[..., Any],
    fail: Callable[[str, str], ConfigError],
) -> dict[str, Any]:
    """`serve`'s own settings: where it listens, its workers, who reads /metrics."""
    for number in ("port", "workers"):  # as INTEGER_SETTINGS
        value, source = raw[number]
        if isinstance(value, str) and source.startswith(FROM_ENVIRONMENT):
            raw[number] = (_environment_integer(value, partial(fail, number)), source)
    host = get("host", str).strip()
    if not host or any(c.isspace() or not c.isprintable() for c in host):
        raise fail("host", f"expected an address or host name like '127.0.0.1', got {shown(host)}")
    port = get("port", int)
    if not 1 <= port <= 65_535:
        raise fail("port", f"must be between 1 and 65535, got {port}")
    workers = get("workers", int)
    if not 1 <= workers <= 64:
        raise fail("workers", f"must be between 1 and 64, got {workers}")
    socket = get("socket", str).strip() or None
    if socket is not None and ("\0" in socket or len(socket.encode()) > 107):
        raise fail("socket", f"{shown(socket)} is not a Unix socket path (107 bytes at most)")
    allowed = get("metrics_allow", (list, tuple))
    for address in allowed:
        try:
            if not isinstance(address, str):
                raise TypeError(address)
            ipaddress.ip_network(address)
        except (TypeError, ValueError):
            raise fail(
                "metrics_allow", f"{address!r} is not an IP address or network (10.0.0.0/8)"
            ) from None
    return {
        "host": host,
        "port": port,
        "workers": workers,
        "socket": socket,
        "metrics_allow": tuple(allowed),
    }


def _pages_settings(
    get: Callable[..., Any], fail: Callable[[str, str], ConfigError]
) -> dict[str, Any]:
    """[pages]: on or off, and the institution's name, logo, footer, colour, templates
    and language, each checked as the page will use it."""
    logo_url = get("pages_logo_url", str).strip()
    if logo_url and not LOGO_URL.fullmatch(logo_url):
        raise fail("pages_logo_url", f"{shown(logo_url)} is not an http(s) URL or a path "
                   "on this site (/logo.svg)")  # fmt: skip
    accent = get("pages_accent_color", str).strip()
    if accent and not HEX_COLOR.fullmatch(accent):
        raise fail("pages_accent_color", f"{shown(accent)} is not a colour like #0a5 or #00aa55")
    folder = get("pages_template_folder", str).strip()
    if folder and not os.path.isdir(folder):
        raise fail("pages_template_folder", f"{shown(folder)} is not a folder")
    lang = get("pages_lang", str).strip()
    if not LANGUAGE_TAG.fullmatch(lang):
        raise fail("pages_lang", f"{shown(lang)} is not a language tag like en, de or pt-BR")
    return {
        "pages_enabled": get("pages_enabled", bool),
        "pages_name": get("pages_name", str).strip(),
        "pages_logo_url": logo_url,
        "pages_footer": get("pages_footer", str).strip(),
        "pages_accent_color": accent.lower(),
        "pages_template_folder": folder,
        "pages_lang": lang,
    }


def _require_production(
    fail: Callable[[str, str], ConfigError],
    token_secret: str | None,
    previous_secrets: list[str] | tuple[str, ...],
    base_url: str | None,
    name: str,
    identifier: str,
    emails: tuple[str, ...],
) -> None:
    """What production mode needs, every missing piece named at once: the values servers
    behind a load balancer must agree on, and an identity of the repository's own."""
    missing = []
    if token_secret is None or len(token_secret) < 32:
        missing.append(fail("token_secret", "production mode needs a token secret of 32 "
                            "characters or more (OAIPMH_TOKEN_SECRET)"))  # fmt: skip
    if any(len(p.strip()) < 32 for p in previous_secrets):
        # A previous secret still signs tokens the server accepts: as strong, then.
        missing.append(fail("previous_token_secrets", "production mode needs each previous "
                            "token secret to be of 32 characters or more"))  # fmt: skip
    if base_url is None:
        missing.append(
            fail("base_url", "production mode needs the advertised baseURL (OAIPMH_BASE_URL)")
        )
    for setting, why in placeholder_identity(name, identifier, emails, base_url):
        missing.append(fail(setting, f"{why}, a placeholder: production mode needs the "
                            "repository's own"))  # fmt: skip
    if missing:
        problems = tuple(str(e) for e in missing)
        concerned = tuple(dict.fromkeys(s for e in missing for s in e.settings))
        raise ConfigError("; ".join(problems), (*concerned, "mode"), problems)


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
    names = {bool: "true or false", int: "an integer", str: "a string", dict: "a table"}
    return " or ".join(dict.fromkeys(names.get(k, "a list") for k in kinds))  # list, tuple: once
