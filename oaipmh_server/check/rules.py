"""What each aggregator rejects or flags in a record, as a table of rules.

A rule is data: an id, the profiles it belongs to with its weight in each (mandatory: the
aggregator rejects the record or the repository; recommended: it scores lower), what it
asks, and a function of a record that returns what is wrong (None: nothing). `check`, the
tests and the manual (docs/aggregators.md) read the same table. The sources: OpenAIRE's
Guidelines for Literature Repositories v4 (mandatory and mandatory-if-applicable
properties, COAR vocabularies), BASE's golden rules and its validator OVAL (a minimal
simple DC record, ISO 8601 dates, ISO 639 languages, an identifier linking to the landing
page), CORE (a direct link to the full text: in oai_dc, or a file of the record anyone may
read, linked by `[files] url`, which CORE finds as the landing page's citation_pdf_url and
in oai_openaire's oaire:file), the DRIVER Guidelines 2.0 (simple DC with
info:eu-repo/semantics types, ISO dates and languages).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..crosswalk import Crosswalk
from ..files import LinkedFile, is_open
from ..formats.oai_openaire import resource_identifier
from ..meanings import (
    ACCESS_FIELDS,
    VERSION_FIELDS,
    RecordFields,
    access_right,
    embargo_end,
    files_status,
    publication_type,
    w3cdtf,
)
from ..record_source import UNREACHABLE_ID, Field, File, leads_elsewhere
from ..vocabularies import Vocabularies, iso639_3

Severity = Literal["mandatory", "recommended"]
PROFILES = ("openaire", "base", "core", "driver")
# The profiles whose mandatory rules make a plain `check` (no --profile) fail: CORE only
# collects full texts, so its rules are mandatory only when it is asked for by name.
DEFAULT_PROFILES = ("openaire", "base", "driver")
# ISO 8601 dates as repositories write them: a year, a month, a day, a time with its zone.
ISO8601 = re.compile(
    r"\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01])"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?"
)
FULL_TEXT = re.compile(r"https?://\S+(\.pdf|/bitstream/\S+|/bitstreams/\S+/download)\b", re.I)
PLACEHOLDER_HANDLE = "123456789/"  # DSpace's default handle prefix, never registered
OVAL_MINIMUM = ("identifier", "title", "date", "type", "creator")


@dataclass(frozen=True)
class RecordView:
    """One record as the rules see it: its public fields, and its simple DC (oai_dc)."""

    local_id: str
    fields: RecordFields
    dc: Sequence[tuple[str, str]]  # (simple DC element, value), as oai_dc serves them
    vocabularies: Vocabularies
    files: Sequence[LinkedFile] = ()  # its content files, with their links

    @classmethod
    def of(
        cls,
        local_id: str,
        fields: Sequence[Field],
        crosswalk: Crosswalk,
        vocabularies: Vocabularies,
        files: Sequence[LinkedFile] = (),
    ) -> RecordView:
        dc = [(element, f.value) for element, f in crosswalk.apply(fields)]
        return cls(local_id, RecordFields(fields, crosswalk), dc, vocabularies, files)


@dataclass(frozen=True)
class Rule:
    id: str
    severity: dict[str, Severity]  # profile → weight; a profile not named has no such rule
    asks: str
    test: Callable[[RecordView], str | None]

    def weight(self, profile: str | None) -> Severity | None:
        """The rule's weight in a profile: the level comes from the profile that asks for
        it. Without one, its heaviest in the profiles checked by default (DEFAULT_PROFILES):
        a rule only CORE makes mandatory (a full text) is mandatory only with --profile
        core, since a metadata-only record is a normal record to the others."""
        if profile is not None:
            return self.severity.get(profile)
        by_default = [w for p, w in self.severity.items() if p in DEFAULT_PROFILES]
        return "mandatory" if "mandatory" in by_default else "recommended"


def _quote(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _title(r: RecordView) -> str | None:
    return None if r.fields.values("dc.title") else "no dc.title"


def _resource_type(r: RecordView) -> str | None:
    if publication_type(r.fields, r.vocabularies) is not None:
        return None
    types = r.fields.matching(lambda name: name == "dc.type" or name.startswith("dc.type."))
    types = [f for f in types if f.name != "dc.type.version"]
    if not types:
        return "no dc.type"
    values = ", ".join(_quote(f.value) for f in types)
    return f"dc.type {values} maps to no COAR resource type ([oai_openaire.resource_types])"


def _publication_date(r: RecordView) -> str | None:
    issued = r.fields.first("dc.date.issued")
    if issued is None:
        return "no dc.date.issued"
    return None if w3cdtf(issued.value) else f"dc.date.issued {_quote(issued.value)} is no date"


def _identifier(r: RecordView) -> str | None:
    return None if resource_identifier(r.fields) else "no dc.identifier.uri or dc.identifier.doi"


def _content_files(r: RecordView) -> list[File]:
    return [linked.file for linked in r.files]


def _access_rights(r: RecordView) -> str | None:
    if access_right(r.fields, r.vocabularies, _content_files(r)) is not None:
        return None
    return "no access field that maps to a COAR access right, and no default_access_right"


def _embargo_end(r: RecordView) -> str | None:
    files = _content_files(r)
    access = access_right(r.fields, r.vocabularies, files)
    if access is None or access.label != "embargoed access" or embargo_end(r.fields):
        return None
    status = files_status(files)
    if status is not None and status.embargo_end is not None:
        return None  # its file's READ policy starts then
    return "embargoed access without an embargo end date (dc.date.embargo)"


def _creator(r: RecordView) -> str | None:
    creators = r.fields.matching(
        lambda name: name == "dc.contributor.author" or name.startswith("dc.creator")
    )
    return None if creators else "no dc.contributor.author or dc.creator"


def _coar_terms(r: RecordView) -> str | None:
    """Access and version values that name no COAR term (dc.type: rule openaire-resource-type)."""
    unmapped = [
        f"{f.name} {_quote(f.value)}"
        for f in r.fields.values(*ACCESS_FIELDS[:-1])
        if r.vocabularies.access_right(f.value) is None
    ] + [
        f"{f.name} {_quote(f.value)}"
        for f in r.fields.values(*VERSION_FIELDS)
        if r.vocabularies.version(f.value) is None
    ]
    return f"{', '.join(unmapped)}: no COAR term" if unmapped else None


def _languages(r: RecordView) -> str | None:
    languages = r.fields.matching(lambda name: name.startswith("dc.language"))
    wrong = [f.value for f in languages if iso639_3(f.value) is None]
    return f"{', '.join(map(_quote, wrong))}: not an ISO 639 language code" if wrong else None


def _language_given(r: RecordView) -> str | None:
    return None if r.fields.matching(lambda n: n.startswith("dc.language")) else "no dc.language"


def _dates(r: RecordView) -> str | None:
    wrong = [
        f"{f.name} {_quote(f.value)}"
        for f in r.fields.matching(lambda name: name.startswith("dc.date"))
        if not ISO8601.fullmatch(f.value.strip())
        and not f.value.startswith("info:eu-repo/date/embargoEnd/")
    ]
    return f"{', '.join(wrong)}: not an ISO 8601 date" if wrong else None


def _landing_page(r: RecordView) -> str | None:
    links = [
        v for e, v in r.dc if e == "identifier" and v.strip().startswith(("http://", "https://"))
    ]
    return None if links else "no dc:identifier is an http(s) URL of the record's landing page"


def _full_text(r: RecordView) -> str | None:
    if any(f.url is not None and is_open(f.file) for f in r.files):
        return None  # a file anyone may read, linked on its page and in oai_openaire
    links = [v for e, v in r.dc if e in ("identifier", "relation") and FULL_TEXT.search(v)]
    if links:
        return None
    if r.files:
        return "no direct link to a full text: its files are restricted or not linked ([files] url)"
    return "no direct link to a full text (a PDF or bitstream URL) in oai_dc"


def _placeholder_handle(r: RecordView) -> str | None:
    values = [
        r.local_id,
        *(f.value for f in r.fields.matching(lambda n: n.startswith("dc.identifier"))),
    ]
    found = [v for v in values if PLACEHOLDER_HANDLE in v]
    return f"placeholder handle {_quote(found[0])} (DSpace's default prefix)" if found else None


def _oval_minimum(r: RecordView) -> str | None:
    present = {element for element, value in r.dc if value.strip()}
    missing = [element for element in OVAL_MINIMUM if element not in present]
    return f"oai_dc has no {', '.join('dc:' + m for m in missing)}" if missing else None


def _driver_type(r: RecordView) -> str | None:
    types = [v for e, v in r.dc if e == "type"]
    if any(r.vocabularies.resource_type(v) is not None for v in types):
        return None
    return "no dc:type that maps to an info:eu-repo/semantics (COAR) type"


def _reachable_id(r: RecordView) -> str | None:
    """An id stored before loads refused it (ingest/drafts.py): its landing page's
    address leads elsewhere, and sitemaps list it; still served until a load removes it."""
    if leads_elsewhere(r.local_id):
        return f"id {_quote(r.local_id)} {UNREACHABLE_ID}"
    return None


M: Severity = "mandatory"
R: Severity = "recommended"
RULES: tuple[Rule, ...] = (
    Rule("openaire-title", {"openaire": M}, "a title", _title),
    Rule("openaire-resource-type", {"openaire": M}, "a dc.type that maps to COAR", _resource_type),
    Rule("openaire-publication-date", {"openaire": M}, "dc.date.issued", _publication_date),
    Rule("openaire-identifier", {"openaire": M}, "a resource identifier", _identifier),
    Rule("openaire-access-rights", {"openaire": M}, "a COAR access right", _access_rights),
    Rule("openaire-embargo-end", {"openaire": M}, "an embargo's end date", _embargo_end),
    Rule("openaire-creator", {"openaire": R}, "a creator (if applicable)", _creator),
    Rule("openaire-language", {"openaire": R}, "a language (if applicable)", _language_given),
    Rule("coar-terms", {"openaire": R}, "access and version values COAR knows", _coar_terms),
    Rule("iso639-language", {"openaire": R, "base": R, "driver": M}, "ISO 639 codes", _languages),
    Rule("iso8601-date", {"openaire": M, "base": M, "driver": M}, "ISO 8601 dates", _dates),
    Rule("oval-minimal-dc", {"base": M, "driver": M}, "dc identifier/title/date/type/creator",
         _oval_minimum),
    Rule("base-landing-page", {"base": M, "driver": M, "core": R},
         "a dc:identifier linking to the landing page", _landing_page),
    Rule("driver-type", {"driver": M}, "an info:eu-repo/semantics type", _driver_type),
    Rule("core-full-text", {"core": M}, "a direct link to the full text", _full_text),
    Rule("placeholder-handle", dict.fromkeys(PROFILES, M), "a registered handle",
         _placeholder_handle),
    Rule("reachable-id", dict.fromkeys(PROFILES, M), "an id its page's address leads to",
         _reachable_id),
)  # fmt: skip


def rules_of(profile: str | None) -> list[Rule]:
    """The rules of a profile (None: every rule, once)."""
    return [rule for rule in RULES if rule.weight(profile) is not None]
