"""oai_openaire: the OpenAIRE Guidelines for Literature Repositories v4 application profile.

The record is an `oaire:resource` mixing Dublin Core, DataCite kernel 4 and OpenAIRE's own
elements. Every property DSpace-style qualified DC can feed is filled from it, property by
property (the docstring of each `_property` function names the guideline it follows);
COAR terms come through the configured vocabularies (`[oai_openaire.*]`), so a value no
table maps is left out rather than guessed, and `oaipmh-server check` names it.

Files (`oaire:file`, "File Location", mandatory if applicable): one per content file
(ORIGINAL bundle) that anonymous users may read and that has a link (`[files] url`), with
its MIME type, its COAR access right (files.file_status: open access, a file anyone may
read) and
`objectType="fulltext"` (an ORIGINAL bitstream is the item's content; DSpace's own xsl
cannot tell either and leaves objectType out). Unlike DSpace, whose xsl links every
ORIGINAL bitstream, a file anonymous users may not read is never listed: its link would
only lead to a login.

Access Rights (`datacite:rights`) is the record's files' access status (files.py, as
DSpace's AccessStatus plugin works it out: open, embargoed with its end date, restricted,
metadata only) for a record with content files; one without them (a JSON record that
gives no "files") keeps the access fields of its metadata, else the configured default.
An embargo's end is shown as `datacite:date dateType="Available"`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple
from urllib.parse import unquote

from lxml import etree

from ..crosswalk import Crosswalk
from ..files import ACCESS_RULE, OPEN_ACCESS, AccessStatus, LinkedFile, is_open
from ..links import schema_root_of
from ..meanings import (
    VERSION_FIELDS,
    RecordFields,
    access_right,
    embargo_end,
    files_status,
    publication_type,
    vocabularies_of,
    w3cdtf,
)
from ..record_source import Field, File
from ..settings import Settings
from ..vocabularies import (
    ACCESS_RIGHT_URI,
    ACCESS_RIGHTS,
    Vocabularies,
    iso639_3,
    resource_type_general,
)
from ..xml import SCHEMA_LOCATION, XML_LANG, XSI_NS, xml_language
from . import MetadataFormat, crosswalked

PREFIX = "oai_openaire"
NAMESPACE = "http://namespace.openaire.eu/schema/oaire/"
SCHEMA = "https://www.openaire.eu/schema/repo-lit/4.0/openaire.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
DATACITE_NS = "http://datacite.org/schema/kernel-4"
_NSMAP = {
    "oaire": NAMESPACE,
    "datacite": DATACITE_NS,
    "dc": DC_NS,
    "dcterms": DCTERMS_NS,
    "xsi": XSI_NS,
}
ORCID = re.compile(r"(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])", re.IGNORECASE)
# info:eu-repo/grantAgreement/Funder/FundingProgram/ProjectID/[Jurisdiction]/[Title]/[Acronym]
GRANT = re.compile(
    r"info:eu-repo/grantAgreement/([^/]+)/([^/]*)/([^/]+)(?:/([^/]*))?(?:/([^/]*))?(?:/([^/]*))?"
)
# Funders of the info:eu-repo/grantAgreement vocabulary: code → name, Crossref Funder ID.
FUNDERS: dict[str, tuple[str, str | None]] = {
    "EC": ("European Commission", "http://doi.org/10.13039/501100000780"),
    "WT": ("Wellcome Trust", None),
    "FCT": ("Fundação para a Ciência e a Tecnologia", None),
    "NSF": ("National Science Foundation", None),
    "ARC": ("Australian Research Council", None),
    "NHMRC": ("National Health and Medical Research Council", None),
    "SNSF": ("Swiss National Science Foundation", None),
    "FWF": ("Austrian Science Fund", None),
    "NWO": ("Netherlands Organisation for Scientific Research", None),
    "UKRI": ("UK Research and Innovation", None),
}
# Where the record's own identifiers go: qualifier → alternateIdentifierType, or None when
# the value is no identifier of the resource itself (parts of a citation, the journal's
# ISSN: a related identifier, the primary `uri`, authority keys).
ALTERNATE_TYPES: dict[str, str | None] = {
    "doi": "DOI",
    "pmid": "PMID",
    "pmcid": "PMCID",
    "isbn": "ISBN",
    "arxiv": "arXiv",
    "urn": "URN",
    "handle": "Handle",
    "isi": "WOS",
    "scopus": "Scopus",
    "other": "Local",
    "uri": None,
    "citation": None,
    "volume": None,
    "issue": None,
    "spage": None,
    "epage": None,
    "authority": None,
    "orcid": None,
    "issn": None,
    "eissn": None,
    "issnl": None,
}
# The journal's identifiers: qualifier → relatedIdentifierType (relation: IsPartOf).
SERIAL_TYPES = {"issn": "ISSN", "eissn": "EISSN", "issnl": "LISSN"}
RELATION_TYPES = {
    "ispartof": "IsPartOf",
    "ispartofseries": "IsPartOf",
    "haspart": "HasPart",
    "isversionof": "IsVersionOf",
    "hasversion": "HasVersion",
    "isreferencedby": "IsReferencedBy",
    "references": "References",
    "requires": "Requires",
    "isrequiredby": "IsRequiredBy",
    "replaces": "IsNewVersionOf",
    "isreplacedby": "IsPreviousVersionOf",
    "isformatof": "IsVariantFormOf",
    "hasformat": "IsOriginalFormOf",
    "isbasedon": "IsDerivedFrom",
    "uri": "References",
}
CONTRIBUTOR_TYPES = {"advisor": "Supervisor", "supervisor": "Supervisor", "editor": "Editor"}
TITLE_TYPES = {"alternative": "AlternativeTitle", "subtitle": "Subtitle",
               "translated": "TranslatedTitle"}  # fmt: skip
SUBJECT_SCHEMES = {
    "ddc": ("DDC", "http://dewey.info/"),
    "lcsh": ("LCSH", "http://id.loc.gov/authorities/subjects"),
    "mesh": ("MeSH", "http://id.nlm.nih.gov/mesh"),
    "udc": ("UDC", "http://udcdata.info/"),
    "jel": ("JEL", "https://www.aeaweb.org/econlit/jelCodes.php"),
}
# oaire.citation.* (DSpace 7's openaire4 fields) and DSpace-style equivalents, in preference.
CITATION = {
    "citationTitle": ("oaire.citation.title", "dc.relation.ispartof", "dc.citation.title"),
    "citationVolume": ("oaire.citation.volume", "dc.identifier.volume", "dc.citation.volume"),
    "citationIssue": ("oaire.citation.issue", "dc.identifier.issue", "dc.citation.issue"),
    "citationStartPage": ("oaire.citation.startPage", "dc.identifier.spage",
                          "dc.citation.spage"),
    "citationEndPage": ("oaire.citation.endPage", "dc.identifier.epage", "dc.citation.epage"),
    "citationEdition": ("oaire.citation.edition", "dc.description.edition"),
    "citationConferencePlace": ("oaire.citation.conferencePlace",),
    "citationConferenceDate": ("oaire.citation.conferenceDate",),
}  # fmt: skip
LICENSE_FIELDS = ("dc.rights.uri", "dcterms.license", "dc.rights.license", "dc.rights")


class FileLink(NamedTuple):
    """A file of the record as `oaire:file` shows it: the link to it, its MIME type, its
    access (a COAR access right URI) and what it is (fulltext, dataset, software, other)."""

    url: str
    mime_type: str | None = None
    access_right_uri: str | None = None
    object_type: str = "fulltext"


OPEN_ACCESS_URI = ACCESS_RIGHT_URI + ACCESS_RIGHTS[OPEN_ACCESS]


def file_links(files: Sequence[LinkedFile]) -> list[FileLink]:
    """The `oaire:file`s of a record's content files: those anyone may read, linked (open
    access, as files.file_status says)."""
    return [
        FileLink(linked.url, linked.file.mime, OPEN_ACCESS_URI)
        for linked in files
        if linked.url is not None and is_open(linked.file)
    ]


def render(
    fields: Sequence[Field],
    crosswalk: Crosswalk,
    vocabularies: Vocabularies,
    files: Sequence[FileLink] = (),
    content_files: Sequence[File] = (),
) -> bytes:
    """The <oaire:resource> of a record: properties in the order of the application profile.
    `files`: its oaire:file links; `content_files`: its files, which decide its access."""
    record = RecordFields(fields, crosswalk)
    root = etree.Element(f"{{{NAMESPACE}}}resource", nsmap=_NSMAP)
    root.set(SCHEMA_LOCATION, f"{NAMESPACE} {SCHEMA}")
    status = files_status(content_files)
    access = access_right(record, vocabularies, content_files, status)
    _titles(root, record)
    _people(root, record)
    _funding(root, record)
    _alternate_identifiers(root, record)
    _related_identifiers(root, record)
    _dates(root, record, status)
    for code in dict.fromkeys(filter(None, (iso639_3(f.value) for f in _languages(record)))):
        _add(root, DC_NS, "language", code)
    for f in record.values("dc.publisher"):
        _add(root, DC_NS, "publisher", f.value, lang=f.lang)
    resource_type = publication_type(record, vocabularies)
    if resource_type is not None:
        _add(root, NAMESPACE, "resourceType", resource_type.label,
             resourceTypeGeneral=resource_type_general(resource_type.label),
             uri=resource_type.uri)  # fmt: skip
    for f in record.matching(_is_description):
        _add(root, DC_NS, "description", f.value, lang=f.lang)
    for f in record.values("dc.format", "dc.format.mimetype", "dc.format.medium"):
        _add(root, DC_NS, "format", f.value)
    identifier = resource_identifier(record)
    if identifier is not None:
        _add(root, DATACITE_NS, "identifier", identifier[0], identifierType=identifier[1])
    if access is not None:
        _add(root, DATACITE_NS, "rights", access.label, rightsURI=access.uri)
    for f in record.matching(lambda name: name.startswith("dc.source")):
        _add(root, DC_NS, "source", f.value, lang=f.lang)
    _subjects(root, record)
    sizes = record.values("dc.format.extent")
    if sizes:
        container = _add(root, DATACITE_NS, "sizes")
        for f in sizes:
            _add(container, DATACITE_NS, "size", f.value)
    _license(root, record, vocabularies)
    _version(root, record, vocabularies)
    for file in files:
        attributes = {"mimeType": file.mime_type, "accessRightsURI": file.access_right_uri,
                      "objectType": file.object_type}  # fmt: skip
        _add(root, NAMESPACE, "file", file.url, **attributes)
    for element, names in CITATION.items():
        citation = record.first(*names)
        if citation is not None and not _is_identifier(citation.value):
            _add(root, NAMESPACE, element, citation.value)
    for f in record.values("dcterms.audience", "dc.audience"):
        _add(root, DCTERMS_NS, "audience", f.value, lang=f.lang)
    for f in record.matching(lambda name: name.startswith("dc.coverage")):
        _add(root, DC_NS, "coverage", f.value, lang=f.lang)
    return etree.tostring(root, encoding="UTF-8")


def _add(
    parent: etree._Element, ns: str, tag: str, text: str | None = None, *,
    lang: str | None = None, **attributes: str | None,
) -> etree._Element:  # fmt: skip
    element = etree.SubElement(parent, f"{{{ns}}}{tag}")
    for name, value in attributes.items():
        if value:
            element.set(name, value)
    if lang and (language := xml_language(lang)):  # the stored `en_US` as the tag `en-US`
        element.set(XML_LANG, language)
    if text is not None:
        element.text = text.strip()
    return element


def _qualifier(name: str) -> str | None:
    parts = name.split(".")
    return parts[2] if len(parts) > 2 else None


def _titles(root: etree._Element, record: RecordFields) -> None:
    """Title (M): dc.title; dc.title.alternative, .subtitle, .translated carry their titleType."""
    titles = record.matching(lambda name: name == "dc.title" or name.startswith("dc.title."))
    if not titles:
        return
    container = _add(root, DATACITE_NS, "titles")
    for f in titles:
        qualifier = _qualifier(f.name)
        title_type = TITLE_TYPES.get(qualifier, "Other") if qualifier else None
        _add(container, DATACITE_NS, "title", f.value, lang=f.lang, titleType=title_type)


def _is_creator(name: str) -> bool:
    return name == "dc.contributor.author" or name == "dc.creator" or name.startswith("dc.creator.")


def _people(root: etree._Element, record: RecordFields) -> None:
    """Creator (MA) and Contributor (MA): one name each, "family, given" as DSpace keeps it,
    with an ORCID nameIdentifier where the record gives one for that name."""
    orcids = _orcids(record)
    creators = record.matching(_is_creator)
    if creators:
        container = _add(root, DATACITE_NS, "creators")
        for f in creators:
            creator = _add(container, DATACITE_NS, "creator")
            _add(creator, DATACITE_NS, "creatorName", f.value)
            _name_identifier(creator, orcids.get(f.value.strip()) or _authority_orcid(f))
    contributors = record.matching(
        lambda name: name.startswith("dc.contributor") and not _is_creator(name)
    )
    if contributors:
        container = _add(root, DATACITE_NS, "contributors")
        for f in contributors:
            kind = CONTRIBUTOR_TYPES.get(_qualifier(f.name) or "", "Other")
            contributor = _add(container, DATACITE_NS, "contributor", contributorType=kind)
            _add(contributor, DATACITE_NS, "contributorName", f.value)
            _name_identifier(contributor, orcids.get(f.value.strip()) or _authority_orcid(f))


def _orcids(record: RecordFields) -> dict[str, str]:
    """Name → ORCID from `dc.identifier.orcid` values "Name=ORCID" or "Name: ORCID" (as the
    seed's `dc.identifier.authority` pairs names with keys); a bare ORCID belongs to the
    only creator, if there is one."""
    found: dict[str, str] = {}
    creators = record.matching(_is_creator)
    for f in record.values("dc.identifier.orcid", "dc.contributor.orcid"):
        value = f.value.strip()
        bare = ORCID.fullmatch(value)
        if bare is not None:
            if len(creators) == 1:
                found[creators[0].value.strip()] = bare.group(1)
            continue
        pair = re.fullmatch(r"(.+?)\s*[=:]\s*(\S+)", value)
        orcid = ORCID.fullmatch(pair.group(2)) if pair else None
        if pair and orcid:
            found[pair.group(1)] = orcid.group(1)
    return found


def _authority_orcid(f: Field) -> str | None:
    """A value's authority key (DSpace's `value::authority::confidence`, a SAF dcvalue's
    `authority`), when it is an ORCID (bare or as its https://orcid.org/ URL), as DSpace's
    ORCID authority keeps it."""
    match = ORCID.fullmatch(f.authority.strip()) if f.authority else None
    return match.group(1) if match else None


def _name_identifier(parent: etree._Element, orcid: str | None) -> None:
    if orcid:
        _add(parent, DATACITE_NS, "nameIdentifier", f"https://orcid.org/{orcid}",
             nameIdentifierScheme="ORCID", schemeURI="https://orcid.org")  # fmt: skip


def _funding(root: etree._Element, record: RecordFields) -> None:
    """Funding Reference (MA), from the project identifiers of earlier guidelines
    (info:eu-repo/grantAgreement/EC/H2020/643410/EU/Title/Acronym) in any dc.relation."""
    grants = [
        (GRANT.fullmatch(f.value.strip()), f)
        for f in record.matching(lambda name: name.startswith("dc.relation"))
    ]
    grants = [(m, f) for m, f in grants if m is not None]
    if not grants:
        return
    container = _add(root, NAMESPACE, "fundingReferences")
    for match, _ in grants:
        assert match is not None
        funder, program, award, _jurisdiction, title, _acronym = match.groups()
        name, funder_id = FUNDERS.get(funder, (unquote(funder), None))
        reference = _add(container, NAMESPACE, "fundingReference")
        _add(reference, NAMESPACE, "funderName", name)
        if funder_id:
            _add(reference, NAMESPACE, "funderIdentifier", funder_id,
                 funderIdentifierType="Crossref Funder ID")  # fmt: skip
        if program:
            _add(reference, NAMESPACE, "fundingStream", unquote(program))
        _add(reference, NAMESPACE, "awardNumber", unquote(award))
        if title:
            _add(reference, NAMESPACE, "awardTitle", unquote(title))


def _alternate_identifiers(root: etree._Element, record: RecordFields) -> None:
    """Alternate Identifier (R): the record's other identifiers of the same resource (DOI,
    PMID, ISBN, …), typed; further dc.identifier.uri values after the first."""
    found: list[tuple[str, str]] = []
    uris = record.values("dc.identifier.uri")
    for f in uris[1:]:
        found.append((f.value, _identifier_type(f.value)))
    for f in record.matching(lambda name: name.startswith("dc.identifier")):
        qualifier = _qualifier(f.name)
        if qualifier is None:
            if f.value.strip() != (uris[0].value.strip() if uris else None):
                found.append((f.value, _identifier_type(f.value)))
            continue
        kind = ALTERNATE_TYPES.get(qualifier, qualifier)
        if kind is not None:
            found.append((f.value, kind))
    if found:
        container = _add(root, DATACITE_NS, "alternateIdentifiers")
        for value, kind in found:
            _add(container, DATACITE_NS, "alternateIdentifier", value,
                 alternateIdentifierType=kind)  # fmt: skip


def _identifier_type(value: str) -> str:
    """The type of an identifier written as a link (or as itself), by its form."""
    text = value.strip().lower()
    if "hdl.handle.net/" in text:
        return "Handle"
    if text.startswith("10.") or "doi.org/" in text:
        return "DOI"
    if text.startswith("urn:"):
        return "URN"
    if text.startswith(("http://", "https://")):
        return "URL"
    return "Other"


def _is_identifier(value: str) -> bool:
    text = value.strip().lower()
    return text.startswith(("http://", "https://", "urn:", "10.", "info:eu-repo/"))


def _related_identifiers(root: etree._Element, record: RecordFields) -> None:
    """Related Identifier (R): the journal's ISSNs (IsPartOf), and dc.relation.* values that
    are identifiers (a DOI, handle, URL, URN), their relation named by the qualifier."""
    found: list[tuple[str, str, str]] = []
    for qualifier, kind in SERIAL_TYPES.items():
        found += [(f.value, kind, "IsPartOf") for f in record.values(f"dc.identifier.{qualifier}")]
    for f in record.matching(lambda name: name.startswith("dc.relation")):
        if not _is_identifier(f.value) or GRANT.fullmatch(f.value.strip()):
            continue
        shape = _identifier_type(f.value)
        relation = RELATION_TYPES.get(_qualifier(f.name) or "", "References")
        found.append((f.value, "URL" if shape == "Other" else shape, relation))
    if found:
        container = _add(root, DATACITE_NS, "relatedIdentifiers")
        for value, kind, relation in found:
            _add(container, DATACITE_NS, "relatedIdentifier", value,
                 relatedIdentifierType=kind, relationType=relation)  # fmt: skip


def _dates(root: etree._Element, record: RecordFields, status: AccessStatus | None) -> None:
    """Publication Date (M): dc.date.issued as `Issued`. Embargo Period Date (MA): under an
    embargo, `Accepted` is its start (the item's accession) and `Available` its end (its
    files' embargo, else its metadata's); without one, as DSpace's openaire4 context does,
    accessioned and available dates as such."""
    dates: list[tuple[str, str]] = []
    issued = record.first("dc.date.issued")
    if issued is not None and w3cdtf(issued.value):
        dates.append((w3cdtf(issued.value) or "", "Issued"))
    accessioned = record.first("dc.date.accessioned")
    if accessioned is not None and w3cdtf(accessioned.value):
        dates.append((w3cdtf(accessioned.value) or "", "Accepted"))
    files_end = status.embargo_end if status is not None else None
    end = files_end.isoformat() if files_end is not None else embargo_end(record)
    available = record.first("dc.date.available")
    if end is not None:
        dates.append((end, "Available"))
    elif available is not None and w3cdtf(available.value):
        dates.append((w3cdtf(available.value) or "", "Available"))
    if dates:
        container = _add(root, DATACITE_NS, "dates")
        for value, kind in dates:
            _add(container, DATACITE_NS, "date", value, dateType=kind)


def _languages(record: RecordFields) -> list[Field]:
    return record.matching(lambda name: name == "dc.language" or name.startswith("dc.language."))


def _is_description(name: str) -> bool:
    """Description (MA): dc.description and its qualifiers, but for internal flags and
    values other properties carry (version, embargo, edition)."""
    if not (name == "dc.description" or name.startswith("dc.description.")):
        return False
    return _qualifier(name) not in {"nature", "version", "embargo", "edition", "provenance", "uri"}


def resource_identifier(record: RecordFields) -> tuple[str, str] | None:
    """Resource Identifier (M): the landing page, dc.identifier.uri (a handle link, typed
    HANDLE), else the DOI."""
    uri = record.first("dc.identifier.uri")
    if uri is not None:
        kind = _identifier_type(uri.value)
        return uri.value.strip(), {"Handle": "HANDLE", "Other": "URL"}.get(kind, kind)
    doi = record.first("dc.identifier.doi")
    if doi is not None:
        return doi.value.strip(), "DOI"
    return None


def _subjects(root: etree._Element, record: RecordFields) -> None:
    """Subject (MA): keywords as they are; a classification qualifier names its scheme."""
    subjects = record.matching(lambda name: name == "dc.subject" or name.startswith("dc.subject."))
    if not subjects:
        return
    container = _add(root, DATACITE_NS, "subjects")
    for f in subjects:
        qualifier = _qualifier(f.name)
        scheme, scheme_uri = SUBJECT_SCHEMES.get(qualifier or "", (qualifier, None))
        if qualifier in {"other", "keyword", "keywords"}:
            scheme = None
        _add(container, DATACITE_NS, "subject", f.value, lang=f.lang,
             subjectScheme=scheme, schemeURI=scheme_uri)  # fmt: skip


def _license(root: etree._Element, record: RecordFields, vocabularies: Vocabularies) -> None:
    """License Condition (R): the licence's name and link (dc.rights.uri, dcterms.license,
    dc.rights; values that are access rights are not licences); its start, the date the
    item became available (the embargo's end, if any)."""
    candidates = [
        f for f in record.values(*LICENSE_FIELDS) if vocabularies.access_right(f.value) is None
    ]
    if not candidates:
        return
    links = [f.value.strip() for f in candidates if f.value.strip().startswith(("http", "https"))]
    names = [f.value.strip() for f in candidates if not f.value.strip().startswith("http")]
    available = record.first("dc.date.available")
    start = embargo_end(record) or (w3cdtf(available.value) if available else None)
    _add(root, NAMESPACE, "licenseCondition", names[0] if names else links[0],
         uri=links[0] if links else None, startDate=start)  # fmt: skip


def _version(root: etree._Element, record: RecordFields, vocabularies: Vocabularies) -> None:
    """Version (R): a COAR version where the value maps; any other value (a dataset's or
    software's version number) as it is, without a URI."""
    f = record.first(*VERSION_FIELDS)
    if f is None:
        return
    term = vocabularies.version(f.value)
    if term is not None:
        _add(root, NAMESPACE, "version", term.label, uri=term.uri)
    else:
        _add(root, NAMESPACE, "version", f.value)


def has_title(name: str) -> bool:
    """A record without a title cannot be an OpenAIRE record (Title is mandatory)."""
    return name == "dc.title" or name.startswith("dc.title.")


def metadata_format(settings: Settings) -> MetadataFormat:
    vocabularies = vocabularies_of(settings)

    def render_fields(
        fields: Sequence[Field], crosswalk: Crosswalk, files: Sequence[LinkedFile]
    ) -> bytes:
        return render(fields, crosswalk, vocabularies, file_links(files),
                      [linked.file for linked in files])  # fmt: skip

    table = (
        settings.openaire_resource_types,
        settings.openaire_access_rights,
        settings.openaire_versions,
        settings.openaire_default_access_right,
        # The links are in the fragments: another pattern or root is another rendering.
        settings.files_url,
        schema_root_of(settings),
        ACCESS_RULE,  # datacite:rights from the files: stored renderings made before, again
    )
    return crosswalked(
        PREFIX, SCHEMA, NAMESPACE, settings, render_fields, keeps=has_title, table=table,
        carries_files=True,
    )  # fmt: skip
