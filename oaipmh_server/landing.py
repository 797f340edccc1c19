"""What a record's landing page says, as values: no Flask, no SQL, no HTML.

A landing page is read by people, by Google Scholar (Highwire `citation_*` meta tags), by
FAIR tools and COAR Notify (Signposting links) and by search engines (schema.org JSON-LD).
All four are made here from the record's *public* fields only: the crosswalk's hidden
fields (`dc.identifier.email`, `dc.description.provenance` and the configured ones) are
dropped first, so no later step can hand them out. `pages.py` renders these values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from .crosswalk import Crosswalk
from .datestamps import format_datestamp
from .formats import MetadataFormat
from .record_source import Field, Header, SetInfo
from .settings import Settings
from .xml import xml_language

SCHEMA_ORG = "https://schema.org/"
DEFAULT_SCHEMA_TYPE = "ScholarlyArticle"
# What an OAI-PMH reply is served as (views.XML_TYPE without its charset).
OAI_MEDIA_TYPE = "text/xml"
_URL = re.compile(r"https?://[^\s<>\"]+", re.ASCII)
_DOI = re.compile(r"(?:doi:|https?://(?:dx\.)?doi\.org/)?\s*(10\.\d{4,9}/\S+)", re.I)
_ORCID = re.compile(r"(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")
_HANDLE_HOST = re.compile(r"https?://hdl\.handle\.net/", re.I)
# The bytes a record page's HTTP `Link` header may take. A proxy holds a response's
# headers in one buffer (nginx's proxy_buffer_size: 4 KB or 8 KB, one memory page) and
# answers 502 when they do not fit; with this, the Link header and the page's other
# headers (about 500 bytes) fit in 4 KB with room to spare. The page's <link> elements
# carry every link, whatever their number.
LINK_HEADER_BUDGET = 2048
# Which links the header keeps first when not all fit: the persistent identifier, the
# metadata and the type, the licence; then the files (in sequence order), then authors.
_HEADER_ORDER = ("cite-as", "describedby", "type", "license", "item", "author")
# Characters a URL may keep as they are (RFC 3986 reserved and unreserved, and `%`): the
# rest (spaces, quotes, <, >, non-ASCII) is percent-encoded, so a URL is safe inside an
# HTTP Link header's <…> and in any attribute.
_URL_SAFE = ":/?#[]@!$&'()*+,;=-._~%"
# Parts of a citation and internal keys: public, but not identifiers to show as such.
_NOT_IDENTIFIERS = frozenset(
    {"citation", "volume", "issue", "spage", "epage", "authority", "email"}
)  # fmt: skip
_IDENTIFIER_LABELS = {
    "doi": "DOI", "uri": "URI", "issn": "ISSN", "issnl": "ISSN-L", "isbn": "ISBN",
    "pmid": "PubMed", "isi": "Web of Science", "scopus": "Scopus", "other": "Other",
}  # fmt: skip


@dataclass(frozen=True)
class Value:
    """A value as shown: its text, its language (for `lang`), and a link where it is one.
    The language is given as stored (`en_US`) and kept as HTML's `lang` takes it, a
    BCP 47 tag (`en-US`; `*`: none)."""

    text: str
    lang: str | None = None
    href: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lang", xml_language(self.lang))


@dataclass(frozen=True)
class FileLink:
    """A file of the record that anonymous users may read (pages.files_of), and its link:
    None when `[files] url` makes none, so the page names the file without linking it."""

    name: str
    mime_type: str
    size: int
    url: str | None


@dataclass(frozen=True)
class Link:
    """One Signposting link (signposting.org, level 1): an HTTP `Link` header entry and a
    `<link>` element of the page."""

    href: str
    rel: str
    type: str | None = None
    profile: str | None = None

    def header_value(self) -> str | None:
        """The link as a Link header entry (RFC 8288), checked here where the header is
        written, whatever was checked before (a value stored by an older load): None for a
        target with a control character, space or `>`; a parameter with a control
        character is left out, the others quoted with `"` and `\\` escaped, so no value
        ends the header or adds a link or a parameter of its own."""
        if _HEADER_UNSAFE_URL.search(self.href):
            return None
        parts = [f"<{self.href}>"]
        for name, value in (("rel", self.rel), ("type", self.type), ("profile", self.profile)):
            if value and not _CONTROL.search(value):
                escaped = _QUOTED_PAIR.sub(r"\\\g<0>", value)
                parts.append(f'{name}="{escaped}"')
        return "; ".join(parts)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HEADER_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f<>]")
_QUOTED_PAIR = re.compile(r'["\\]')


@dataclass(frozen=True)
class FormatLink:
    prefix: str
    namespace: str
    url: str


@dataclass(frozen=True)
class RecordPage:
    local_id: str
    oai_identifier: str
    datestamp: str
    url: str
    title: Value | None
    other_titles: list[Value]
    creators: list[Value]
    contributors: list[Value]
    date: str | None
    abstracts: list[Value]
    identifiers: list[Value]
    subjects: list[Value]
    publishers: list[Value]
    citations: list[Value]
    types: list[Value]
    rights: list[Value]
    sets: list[SetInfo]
    formats: list[FormatLink]
    files: list[FileLink]
    fields: list[Field]  # every public field, in stored order
    meta: list[tuple[str, str]]  # Highwire citation_* (name, content), in order
    links: list[Link]  # Signposting
    json_ld: dict[str, Any] = field(default_factory=dict)


def public_fields(fields: Iterable[Field], crosswalk: Crosswalk) -> list[Field]:
    """The fields a page may show: never a private or configured-hidden one."""
    return [f for f in fields if crosswalk.is_public(f.name)]


def safe_url(text: str) -> str | None:
    """`text` as an http(s) link, percent-encoded where a URL may not hold a character;
    None when it is not an http(s) URL (no `javascript:` or `data:` link, ever)."""
    text = text.strip()
    if not re.match(r"https?://[^\s/?#]+", text, re.I | re.ASCII) or any(c.isspace() for c in text):
        return None
    return quote(text, safe=_URL_SAFE)


def doi_of(text: str) -> str | None:
    """The DOI in `10.…/…`, `doi:10.…`, or a doi.org URL; None when there is none."""
    match = _DOI.fullmatch(text.strip())
    return match.group(1) if match else None


def doi_url(doi: str) -> str:
    return "https://doi.org/" + quote(doi, safe="/:()._-")


def orcid_url(text: str) -> str | None:
    match = _ORCID.fullmatch(text.strip())
    return f"https://orcid.org/{match.group(1)}" if match else None


def values(fields: Iterable[Field], *names: str) -> list[Field]:
    wanted = set(names)
    return [f for f in fields if f.name in wanted]


def first_text(fields: Iterable[Field], *names: str) -> str | None:
    found = values(fields, *names)
    return found[0].value if found else None


def title_of(fields: Iterable[Field], crosswalk: Crosswalk) -> Value | None:
    """The record's title as a list of records shows it (public fields only)."""
    titles = values(public_fields(fields, crosswalk), "dc.title")
    return Value(titles[0].value, titles[0].lang) if titles else None


def getrecord_url(oai_base: str, prefix: str, oai_identifier: str) -> str:
    query = {"verb": "GetRecord", "metadataPrefix": prefix, "identifier": oai_identifier}
    return f"{oai_base}?{urlencode(query)}"


def schema_type(fields: Sequence[Field], settings: Settings) -> str:
    """The schema.org type dc.type maps to (`[pages.schema_types]`), else ScholarlyArticle."""
    table = dict(settings.schema_types)
    for f in values(fields, "dc.type"):
        mapped = table.get(f.value.strip().casefold())
        if mapped:
            return mapped
    return DEFAULT_SCHEMA_TYPE


def identifier_values(fields: Sequence[Field]) -> list[Value]:
    """Every identifier of the record, labelled, as a link where it is one: a DOI to
    doi.org, a PubMed id to PubMed, an http(s) URL (a handle's among them) to itself;
    ISSN, ISBN and the rest as text."""
    shown = []
    for f in fields:
        parts = f.name.split(".")
        if parts[:2] != ["dc", "identifier"]:
            continue
        qualifier = parts[2] if len(parts) > 2 else ""
        if qualifier in _NOT_IDENTIFIERS:
            continue
        label = _IDENTIFIER_LABELS.get(qualifier, qualifier or "Identifier")
        href = None
        if qualifier == "doi" and (doi := doi_of(f.value)):
            href = doi_url(doi)
        elif qualifier == "pmid" and f.value.strip().isdigit():
            href = f"https://pubmed.ncbi.nlm.nih.gov/{f.value.strip()}/"
        elif qualifier not in ("issn", "issnl", "isbn"):
            href = safe_url(f.value)
            if href and _HANDLE_HOST.match(href):
                label = "Handle"
        shown.append(Value(f.value, f.lang, href, label))
    return shown


def cite_as(fields: Sequence[Field]) -> str | None:
    """The persistent identifier to cite: the DOI, else the handle (Signposting cite-as)."""
    for f in values(fields, "dc.identifier.doi"):
        if doi := doi_of(f.value):
            return doi_url(doi)
    for f in values(fields, "dc.identifier.uri"):
        url = safe_url(f.value)
        if url and _HANDLE_HOST.match(url):
            return url
    return None


def licenses(fields: Sequence[Field]) -> list[str]:
    found = []
    for f in fields:
        if f.name.startswith("dc.rights") and (url := safe_url(f.value)) and url not in found:
            found.append(url)
    return found


def orcids(fields: Sequence[Field]) -> list[str]:
    found = []
    for f in fields:
        if "orcid" in f.name.casefold() and (url := orcid_url(f.value)) and url not in found:
            found.append(url)
    return found


def citation_tags(
    fields: Sequence[Field],
    mapping: Iterable[tuple[str, str]],
    specials: Mapping[str, str | None],
) -> list[tuple[str, str]]:
    """Highwire tags by the configured table (`[pages.citation]`), read as DSpace reads
    google-metadata.properties: "a | b" is the first of the fields the record has (all its
    values), "a, b" every one's values; `$page` and `$pdf` come from `specials`."""
    tags: list[tuple[str, str]] = []
    for tag, source in mapping:
        source = source.strip()
        if not source:
            continue
        if "|" in source:
            chosen: list[str] = []
            for name in (part.strip() for part in source.split("|")):
                chosen = _sourced(fields, name, specials)
                if chosen:
                    break
        else:
            chosen = [
                v for name in source.split(",") for v in _sourced(fields, name.strip(), specials)
            ]
        tags.extend((tag, _tag_value(tag, text)) for text in chosen)
    return [(tag, text) for tag, text in tags if text]


def _sourced(fields: Sequence[Field], name: str, specials: Mapping[str, str | None]) -> list[str]:
    if name.startswith("$"):
        special = specials.get(name)
        return [special] if special else []
    return [f.value.strip() for f in fields if f.name == name and f.value.strip()]


def _tag_value(tag: str, text: str) -> str:
    """Scholar wants dates as YYYY/MM/DD (or YYYY) and a DOI bare."""
    if tag in ("citation_publication_date", "citation_date", "citation_online_date"):
        match = re.match(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?", text)
        if match:
            return "/".join(part for part in match.groups() if part)
    if tag == "citation_doi":
        return doi_of(text) or text
    return text


def signposting(
    page_url: str,
    kind: str,
    fields: Sequence[Field],
    formats: Sequence[FormatLink],
    files: Sequence[FileLink],
) -> list[Link]:
    """Signposting level 1 for a landing page: cite-as, describedby (each OAI format, its
    namespace as profile), item (each open file), license, type, author (ORCIDs)."""
    links = []
    if persistent := cite_as(fields):
        links.append(Link(persistent, "cite-as"))
    links.extend(Link(f.url, "describedby", OAI_MEDIA_TYPE, f.namespace) for f in formats)
    links.extend(Link(f.url, "item", f.mime_type) for f in files if f.url)
    links.extend(Link(url, "license") for url in licenses(fields))
    links.append(Link(SCHEMA_ORG + kind, "type"))
    links.append(Link(SCHEMA_ORG + "AboutPage", "type"))
    links.extend(Link(url, "author") for url in orcids(fields))
    return links


def link_header(links: Sequence[Link], budget: int = LINK_HEADER_BUDGET) -> str:
    """The HTTP `Link` header of a page with `links`: as many as fit in `budget` bytes,
    taken in the order of `_HEADER_ORDER` (a link too long to fit is passed over, so one
    very long URL does not keep the rest out). A record with hundreds of files would
    otherwise send a header no proxy buffers; the page's <link> elements hold them all."""
    rank = {rel: i for i, rel in enumerate(_HEADER_ORDER)}
    ordered = sorted(links, key=lambda link: rank.get(link.rel, len(rank)))
    kept: list[str] = []
    used = 0
    for link in ordered:
        value = link.header_value()
        if value is None:
            continue
        cost = len(value.encode()) + (2 if kept else 0)  # ", " between links
        if used + cost <= budget:
            kept.append(value)
            used += cost
    return ", ".join(kept)


def json_ld(
    page_url: str,
    kind: str,
    fields: Sequence[Field],
    files: Sequence[FileLink],
) -> dict[str, Any]:
    """schema.org for the work (public fields only); Jinja's `tojson` escapes it for the
    <script> element."""
    data: dict[str, Any] = {"@context": "https://schema.org", "@type": kind}
    persistent = cite_as(fields)
    data["@id"] = persistent or page_url
    data["url"] = page_url
    if title := first_text(fields, "dc.title"):
        data["name"] = title
        data["headline"] = title[:110]
    authors = values(fields, "dc.contributor.author", "dc.creator")
    if authors:
        data["author"] = [{"@type": "Person", "name": a.value} for a in authors]
    if issued := first_text(fields, "dc.date.issued"):
        data["datePublished"] = issued
    if abstract := first_text(fields, "dc.description.abstract"):
        data["description"] = abstract
    keywords = [f.value for f in values(fields, "dc.subject")]
    if keywords:
        data["keywords"] = keywords
    publishers = values(fields, "dc.publisher")
    if publishers:
        data["publisher"] = {"@type": "Organization", "name": publishers[0].value}
    if language := first_text(fields, "dc.language.iso", "dc.language"):
        data["inLanguage"] = language
    same = [v.href for v in identifier_values(fields) if v.href and v.href != page_url]
    if same:
        data["sameAs"] = list(dict.fromkeys(same))
    issns = [f.value for f in values(fields, "dc.identifier.issn")]
    journal = first_text(fields, "dc.relation.ispartof")
    if journal or issns:
        periodical: dict[str, Any] = {"@type": "Periodical"}
        if journal:
            periodical["name"] = journal
        if issns:
            periodical["issn"] = issns
        data["isPartOf"] = periodical
    if isbn := first_text(fields, "dc.identifier.isbn"):
        data["isbn"] = isbn
    if found := licenses(fields):
        data["license"] = found[0] if len(found) == 1 else found
    if files:
        data["encoding"] = [
            {"@type": "MediaObject", "name": f.name,
             **({"contentUrl": f.url} if f.url else {}),
             "encodingFormat": f.mime_type, "contentSize": str(f.size)}
            for f in files
        ]  # fmt: skip
    return data


def record_page(
    header: Header,
    fields: Sequence[Field],
    sets: Sequence[SetInfo],
    *,
    settings: Settings,
    formats: Mapping[str, MetadataFormat],
    page_url: str,
    oai_base: str,
    oai_identifier: str,
    files: Sequence[FileLink] = (),
    crosswalk: Crosswalk | None = None,
) -> RecordPage:
    """Everything a live record's landing page shows, from its public fields. `formats`
    is the registry as it stands (whatever formats other modules add), each offered where
    the record can be disseminated in it."""
    crosswalk = crosswalk or Crosswalk.from_settings(settings)
    public = public_fields(fields, crosswalk)

    def shown(*names: str) -> list[Value]:
        return [Value(f.value, f.lang, safe_url(f.value)) for f in values(public, *names)]

    titles = shown("dc.title")
    offered = [
        FormatLink(prefix, f.namespace, getrecord_url(oai_base, prefix, oai_identifier))
        for prefix, f in formats.items()
        if f.disseminates(fields)
    ]
    kind = schema_type(public, settings)
    pdf = next((f.url for f in files if f.mime_type == "application/pdf" and f.url), None)
    meta = citation_tags(public, settings.citation_map, {"$page": page_url, "$pdf": pdf})
    contributors = [
        Value(f.value, f.lang, label=f.name.split(".")[2] if f.name.count(".") == 2 else None)
        for f in public
        if f.name.startswith("dc.contributor") and f.name != "dc.contributor.author"
    ]
    return RecordPage(
        local_id=header.local_id,
        oai_identifier=oai_identifier,
        datestamp=format_datestamp(header.datestamp),
        url=page_url,
        title=titles[0] if titles else None,
        other_titles=titles[1:] + shown("dc.title.alternative"),
        creators=shown("dc.contributor.author", "dc.creator"),
        contributors=contributors,
        date=first_text(public, "dc.date.issued"),
        abstracts=shown("dc.description.abstract"),
        identifiers=identifier_values(public),
        subjects=shown("dc.subject", "dc.subject.other"),
        publishers=shown("dc.publisher"),
        citations=[Value(f.value, f.lang) for f in values(public, "dc.identifier.citation")],
        types=shown("dc.type"),
        rights=shown("dc.rights", "dc.rights.uri", "dc.rights.license"),
        sets=list(sets),
        formats=offered,
        files=list(files),
        fields=public,
        meta=meta,
        links=signposting(page_url, kind, public, offered, files),
        json_ld=json_ld(page_url, kind, public, files),
    )


def example_requests(oai_base: str, sample: str | None) -> list[tuple[str, str]]:
    """(what it asks, query string) for the home page's one-click examples."""
    examples = [
        ("Identify the repository", "verb=Identify"),
        ("List the metadata formats", "verb=ListMetadataFormats"),
        ("List the sets", "verb=ListSets"),
        ("List record identifiers", "verb=ListIdentifiers&metadataPrefix=oai_dc"),
        ("Harvest records in Dublin Core", "verb=ListRecords&metadataPrefix=oai_dc"),
    ]
    if sample:
        query = urlencode({"verb": "GetRecord", "metadataPrefix": "oai_dc", "identifier": sample})
        examples.append(("Get one record", query))
    return examples
