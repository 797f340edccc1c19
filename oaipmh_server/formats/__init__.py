"""The metadata formats this repository disseminates: prefix → MetadataFormat.

A format is one module of this package defining `metadata_format(settings)`: its prefix,
schema, namespace and crosswalk. The registry finds the modules itself, so adding a format
is adding a module and nothing else.

The formats named in `[formats] stored` (oai_dc always) are rendered once at ingest and
stored, so a harvest only joins bytes; the others are rendered from the stored fields on
each request, which keeps loads fast. `version` says which crosswalk made a fragment, so a
changed crosswalk is never served from stale fragments.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from lxml import etree

from ..config import Settings
from ..crosswalk import Crosswalk
from ..errors import ConfigError
from ..records import Field
from ..xml import XML_LANG, clean_text, xml_language


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    version: str
    render: Callable[[Sequence[Field]], bytes]
    # Whether a record has anything to say in this format (ListMetadataFormats, GetRecord).
    disseminates: Callable[[Sequence[Field]], bool] = lambda fields: True
    # Rendered at ingest and stored (True), or rendered on each request from the fields.
    stored: bool = True


def crosswalked(
    prefix: str,
    schema: str,
    namespace: str,
    settings: Settings,
    render: Callable[[Sequence[Field], Crosswalk], bytes],
    *,
    keeps: Callable[[str], object] | None = None,
    table: object = None,
) -> MetadataFormat:
    """A format whose renderer works through the configured crosswalk (which also knows the
    private fields). `keeps(name)` says whether the format has a place for a field: a
    record with no public field it keeps cannot be disseminated in it (None: any record
    can). `table` is the format's own mapping, part of its version."""
    crosswalk = Crosswalk.from_settings(settings)

    def render_fields(fields: Sequence[Field]) -> bytes:
        try:
            return render(fields, crosswalk)
        except ValueError:
            # lxml refuses characters XML cannot carry. Ingest already replaced them, so
            # this is the rare value that came another way: replace them here too.
            return render([_cleaned(f) for f in fields], crosswalk)

    def disseminates(fields: Sequence[Field]) -> bool:
        return keeps is None or any(crosswalk.is_public(f.name) and keeps(f.name) for f in fields)

    digest = hashlib.sha256(repr((prefix, crosswalk.version, table)).encode()).hexdigest()[:16]
    return MetadataFormat(prefix, schema, namespace, digest, render_fields, disseminates)


def _cleaned(f: Field) -> Field:
    """A value, and its authority, with what XML cannot carry replaced."""
    if f.authority is None:
        return f._replace(value=clean_text(f.value))
    return f._replace(value=clean_text(f.value), authority=clean_text(f.authority))


def served_schema(settings: Settings, name: str) -> str:
    """The URL of a schema this server publishes itself (`oaipmh_server/schemas/`, at
    /schemas/NAME), for formats whose schema nobody else publishes: a harvester must be
    able to fetch every schema a repository advertises. Beside the configured baseURL
    (`https://repo.example.org/oai` → `https://repo.example.org/schemas/dim.xsd`); without
    one, root-relative (`/schemas/dim.xsd`): ListMetadataFormats makes it absolute against
    the request's URL (`resolve_schema`), and in a record it resolves against the
    document's own URL."""
    return f"{schema_root(settings.base_url or '')}/schemas/{name}"


def schema_root(base_url: str) -> str:
    """The server's root URL: the baseURL up to its `/oai` path segment (the OAI endpoint is
    `/oai`, or `/oai/…`), or the baseURL's parent; "" for no baseURL."""
    scheme, _, rest = base_url.partition("://")
    if not rest:
        return ""
    host, slash, path = rest.partition("/")
    segments = path.split("/") if slash else []
    if "oai" in segments:
        segments = segments[: len(segments) - 1 - segments[::-1].index("oai")]
    else:
        segments = segments[:-1]
    return f"{scheme}://{'/'.join([host, *segments])}"


def resolve_schema(schema: str, base_url: str) -> str:
    """An advertised schema URL, absolute: a root-relative one is put beside `base_url`."""
    return f"{schema_root(base_url)}{schema}" if schema.startswith("/") else schema


def value_element(parent: etree._Element, tag: str, value: Field) -> etree._Element:
    """A child holding one stored value, xml:lang set where the value has a language (as
    a BCP 47 tag: the stored `en_US` is `en-US`, `*` none). The value alone: its authority
    is dim's only. (A character XML cannot carry raises ValueError: see `crosswalked`.)"""
    lang = xml_language(value.lang)
    if lang:
        child = etree.SubElement(parent, tag, {XML_LANG: lang})
    else:
        child = etree.SubElement(parent, tag)
    child.text = value.value
    return child


def build_formats(settings: Settings) -> dict[str, MetadataFormat]:
    """Every format module's format, oai_dc first (the one every repository must offer),
    the others by prefix; ConfigError if `[formats] stored` names a format there is not."""
    formats = [_module(name).metadata_format(settings) for name in _module_names()]
    formats.sort(key=lambda f: (f.prefix != "oai_dc", f.prefix))
    unknown = sorted(set(settings.stored_formats) - {f.prefix for f in formats})
    if unknown:
        raise ConfigError(
            f"formats.stored: no metadata format {', '.join(unknown)} "
            f"(there are {', '.join(f.prefix for f in formats)})"
        )
    stored = {"oai_dc", *settings.stored_formats}
    return {f.prefix: replace(f, stored=f.prefix in stored) for f in formats}


def _module_names() -> Iterable[str]:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            yield info.name


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"{__name__}.{name}")
