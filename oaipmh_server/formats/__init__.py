"""The metadata formats this repository disseminates: prefix → MetadataFormat.

A format is one module of this package defining `metadata_format(settings)`: its prefix,
schema, namespace and crosswalk. The registry finds the modules itself, so adding a format
is adding a module and nothing else.

The formats named in `[formats] stored` (oai_dc always) are rendered once at ingest and
stored, so a harvest only joins bytes; the others are rendered from the stored fields on
each request, which keeps loads fast. `version` says which crosswalk made a fragment, so a
changed crosswalk is never served from stale fragments.

A format that shows a record's files (oai_dc's `dc:format`, oai_openaire's `oaire:file`)
is rendered with them: `render(fields, files)`, the files being the record's content
(ORIGINAL bundle) each with its link (files.py), made by `render_record`, which every
caller uses. The store reads files only for such formats (`carries_files`), so the others'
harvests never pay for them.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from lxml import etree

from ..crosswalk import Crosswalk
from ..errors import ConfigError
from ..files import LinkedFile, Linker
from ..links import linker_of, schema_root
from ..record_source import Field, File
from ..settings import Settings
from ..xml import XML_LANG, clean_text, xml_language

Render = Callable[[Sequence[Field], Sequence[LinkedFile]], bytes]


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str
    version: str
    render: Render
    # Whether a record has anything to say in this format (ListMetadataFormats, GetRecord).
    disseminates: Callable[[Sequence[Field]], bool] = lambda fields: True
    # Rendered at ingest and stored (True), or rendered on each request from the fields.
    stored: bool = True
    # How the record's files are linked, for a format that shows them (None: it does not).
    linker: Linker | None = None
    # Whether `disseminates` may say no (a format with a place for some fields only).
    selective: bool = False

    @property
    def carries_files(self) -> bool:
        return self.linker is not None

    def render_record(
        self, local_id: str, fields: Sequence[Field], files: Sequence[File] = ()
    ) -> bytes:
        """The record's fragment: its fields and, for a format that shows them, its
        content files with their links."""
        linked = self.linker.linked(local_id, files) if self.linker is not None and files else ()
        return self.render(fields, linked)


def crosswalked(
    prefix: str,
    schema: str,
    namespace: str,
    settings: Settings,
    render: Callable[..., bytes],
    *,
    keeps: Callable[[str], object] | None = None,
    table: object = None,
    carries_files: bool = False,
) -> MetadataFormat:
    """A format whose renderer works through the configured crosswalk (which also knows the
    private fields): `render(fields, crosswalk)`, or for a format that `carries_files`,
    `render(fields, crosswalk, files)`. `keeps(name)` says whether the format has a place
    for a field: a record with no public field it keeps cannot be disseminated in it
    (None: any record can). `table` is the format's own mapping, part of its version (a
    format that puts links in its fragments puts `[files] url` there)."""
    crosswalk = Crosswalk.from_settings(settings)
    linker = linker_of(settings) if carries_files else None

    def render_fields(fields: Sequence[Field], files: Sequence[LinkedFile] = ()) -> bytes:
        extra = (files,) if carries_files else ()
        try:
            return render(fields, crosswalk, *extra)
        except ValueError:
            # lxml refuses characters XML cannot carry. Ingest already replaced them, so
            # this is the rare value that came another way: replace them here too.
            cleaned = [_cleaned(f) for f in fields]
            if carries_files:
                extra = ([_cleaned_file(f) for f in files],)
            return render(cleaned, crosswalk, *extra)

    def disseminates(fields: Sequence[Field]) -> bool:
        return keeps is None or any(crosswalk.is_public(f.name) and keeps(f.name) for f in fields)

    version = (prefix, crosswalk.version, table) + (("files",) if carries_files else ())
    digest = hashlib.sha256(repr(version).encode()).hexdigest()[:16]
    return MetadataFormat(
        prefix, schema, namespace, digest, render_fields, disseminates, linker=linker,
        selective=keeps is not None,
    )  # fmt: skip


def _cleaned_file(linked: LinkedFile) -> LinkedFile:
    file = linked.file
    return linked._replace(
        file=file._replace(
            name=clean_text(file.name),
            mime=clean_text(file.mime),
            description=clean_text(file.description) if file.description else None,
        )
    )


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


def resolve_schema(schema: str, base_url: str) -> str:
    """An advertised schema URL, absolute: a root-relative one is put beside `base_url`."""
    return f"{schema_root(base_url)}{schema}" if schema.startswith("/") else schema


def schema_located(fragment: bytes, schema: str, base_url: str) -> bytes:
    """A record's fragment with its root-relative schema (a format this server publishes
    the schema of, without a configured baseURL: `/schemas/dim.xsd`) made the URL
    ListMetadataFormats gives for it, against the request's baseURL: a harvester validating
    a record fetches the schema the repository advertised. The fragment is stored, so the
    host is only known now; the root element's xsi:schemaLocation holds the schema's first
    occurrence (`NAMESPACE /schemas/dim.xsd`)."""
    return fragment.replace(
        b" " + schema.encode(), b" " + resolve_schema(schema, base_url).encode(), 1
    )


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
    if (unknown := unknown_formats(settings.stored_formats)) is not None:
        raise ConfigError(f"formats.stored: {unknown}", ("stored_formats",))
    stored = {"oai_dc", *settings.stored_formats}
    return {f.prefix: replace(f, stored=f.prefix in stored) for f in formats}


def unknown_formats(stored: Iterable[str]) -> str | None:
    """What is wrong with `[formats] stored` naming a format there is not, or None: the
    settings' check says it (naming the file), and build_formats for settings made
    without that check."""
    prefixes = sorted((_module(name).PREFIX for name in _module_names()),
                      key=lambda p: (p != "oai_dc", p))  # fmt: skip
    unknown = sorted(set(stored) - set(prefixes))
    if not unknown:
        return None
    return f"no metadata format {', '.join(unknown)} (there are {', '.join(prefixes)})"


def _module_names() -> Iterable[str]:
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            yield info.name


def _module(name: str):  # type: ignore[no-untyped-def]
    return importlib.import_module(f"{__name__}.{name}")
