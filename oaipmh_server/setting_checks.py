"""Each setting's value checked and made into `Settings`: the raw values (each with where
it came from) in, Settings out, or a ConfigError naming the key, its source and the
mistake. config.py gathers the raw values.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from .errors import ConfigError
from .files import pattern_problem
from .formats import unknown_formats
from .placeholders import placeholder_identity
from .settings import DC_ELEMENTS, Settings
from .virtual_set_definitions import BadDefinition, parse_definition
from .vocabularies import ACCESS_RIGHTS, TERMS

# From oai-identifier.xsd: the repositoryIdentifier is a domain-name-like string.
REPOSITORY_IDENTIFIER = re.compile(r"[a-zA-Z][a-zA-Z0-9\-]*(\.[a-zA-Z][a-zA-Z0-9\-]*)+", re.ASCII)
# From OAI-PMH.xsd (emailType).
EMAIL = re.compile(r"\S+@(\S+\.)+\S+")
# What SQLAlchemy's make_url reads at all, the kind of database and "://" (sqlalchemy.engine
# .url): anything else no command could open, which `config check` says before one tries.
DATABASE_URL = re.compile(r"[\w+]+://")
URL_EXAMPLES = "sqlite:////var/lib/oai/oai.sqlite3 or postgresql+psycopg://user@host/db"
NOT_A_DATABASE_URL = f"the database URL is not one SQLAlchemy reads (like {URL_EXAMPLES})"
# A path the OAI-PMH endpoint answers at: absolute, no query, no trailing slash.
PATH = re.compile(r"(/[A-Za-z0-9._~\-]+)+", re.ASCII)
FIELD_KEY = re.compile(
    r"[a-z][a-z0-9]*\.[A-Za-z][A-Za-z0-9_-]*(\.([A-Za-z][A-Za-z0-9_-]*|\*))?", re.ASCII
)


LIMITS = (
    "max_value_length",
    "max_values",
    "max_record_bytes",
    "max_archive_bytes",
    "max_archive_entries",
)
# The largest limit: a count or size the reading code hands to C (the CSV reader's field
# limit, a file read's length), which takes no more than a 64-bit signed integer.
MAX_LIMIT = 2**62
# A colour as CSS writes it in hex (#0a5, #00aa55): nothing else can reach the stylesheet.
HEX_COLOR = re.compile(r"#([0-9A-Fa-f]{3}|[0-9A-Fa-f]{6})", re.ASCII)
# A language tag as HTML's lang takes it (BCP 47: en, de-CH, zh-Hant-TW, sr-Latn).
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*", re.ASCII)
# A logo: an http(s) URL, or a path on this site (/logo.png), with nothing to escape.
LOGO_URL = re.compile(r"(https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?)?/[^\s\"'<>\\]*", re.ASCII)
CITATION_TAG = re.compile(r"citation_[a-z_]+", re.ASCII)
CITATION_SOURCE = re.compile(r"\$[a-z_]+|" + FIELD_KEY.pattern, re.ASCII)

FROM_ENVIRONMENT = "environment variable "
# Settings whose values no message repeats.
SECRETS = frozenset({"database_password", "token_secret", "previous_token_secrets"})

# Integers in the environment: ASCII digits, few enough that int() is instant (and below
# Python's 4300-digit limit); every integer setting then checks its own range.
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)
INTEGER_SETTINGS = ("page_size", "max_page_bytes", "max_concurrent_lists", "retry_after")


def validate(raw: dict[str, tuple[Any, str]], keys: Mapping[str, str] | None = None) -> Settings:
    """`keys`: each setting's key as the file writes it, `table.key` (config.py's), which
    every message names: `stored` alone, or the code's `stored_formats`, leaves the
    operator to guess the table."""
    keys = keys or {}

    def get(name: str, kind: type | tuple[type, ...]) -> Any:
        value, source = raw[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            got = f"a value of type {type(value).__name__}" if name in SECRETS else shown(value)
            raise ConfigError(
                f"{source}: {keys.get(name, name)}: expected {_kind_name(kind)}, got {got}",
                (name,),
            )
        return value

    def fail(name: str, message: str) -> ConfigError:
        return ConfigError(f"{raw[name][1]}: {keys.get(name, name)}: {message}", (name,))

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
    if not DATABASE_URL.match(database_url):  # not shown: it may hold a password
        raise fail("database_url", NOT_A_DATABASE_URL)

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
    if (unknown := unknown_formats(stored)) is not None:
        raise fail("stored_formats", unknown)

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
        if limits[limit] > MAX_LIMIT:  # "no limit" written as a huge number
            raise fail(limit, f"must be between 1 and {MAX_LIMIT:_}, got {limits[limit]}")
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
        **listening,
        **pages,
        previous_token_secrets=tuple(dict.fromkeys(p.strip() for p in previous_secrets)),
        sync_max_deleted=float(sync_max_deleted),
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
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
             dict: "a table"}  # fmt: skip
    return " or ".join(dict.fromkeys(names.get(k, "a list") for k in kinds))  # list, tuple: once
