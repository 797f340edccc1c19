"""The controlled vocabularies aggregators ask for, and how a repository's values map to them.

OpenAIRE's Guidelines for Literature Repositories v4 take resource types, access rights and
versions from the COAR vocabularies (each term a label and a concept URI; the URIs are
enumerated in the official schema: `oaire-resourceType-v4.xsd`, `oaire-accessRight-v4.xsd`,
`oaire-versions-v4.xsd`) and languages from ISO 639-3. The terms are fixed here; which of a
repository's own values (DSpace's `Article`, `info:eu-repo/semantics/article`, …) mean which
term is configuration (`[oai_openaire.*]` in config/oaipmh.toml), read through
`Vocabularies`, so the `oai_openaire` format and `oaipmh-server check` agree on what maps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

RESOURCE_TYPE_URI = "http://purl.org/coar/resource_type/"
ACCESS_RIGHT_URI = "http://purl.org/coar/access_right/"
VERSION_URI = "http://purl.org/coar/version/"

# The COAR resource types openaire.xsd allows: label → concept id.
RESOURCE_TYPES: dict[str, str] = {
    "annotation": "c_1162",
    "journal": "c_0640",
    "journal article": "c_6501",
    "editorial": "c_b239",
    "bachelor thesis": "c_7a1f",
    "bibliography": "c_86bc",
    "book": "c_2f33",
    "book part": "c_3248",
    "book review": "c_ba08",
    "website": "c_7ad9",
    "interactive resource": "c_e9a0",
    "conference proceedings": "c_f744",
    "conference object": "c_c94f",
    "conference paper": "c_5794",
    "conference poster": "c_6670",
    "contribution to journal": "c_3e5a",
    "data paper": "c_beb9",
    "dataset": "c_ddb1",
    "doctoral thesis": "c_db06",
    "image": "c_c513",
    "lecture": "c_8544",
    "letter": "c_0857",
    "master thesis": "c_bdcc",
    "moving image": "c_8a7e",
    "periodical": "c_2659",
    "letter to the editor": "c_545b",
    "other": "c_1843",
    "patent": "c_15cd",
    "preprint": "c_816b",
    "report": "c_93fc",
    "report part": "c_ba1f",
    "research proposal": "c_baaf",
    "review": "c_efa0",
    "software": "c_5ce6",
    "still image": "c_ecc8",
    "technical documentation": "c_71bd",
    "workflow": "c_393c",
    "working paper": "c_8042",
    "thesis": "c_46ec",
    "cartographic material": "c_12cc",
    "map": "c_12cd",
    "video": "c_12ce",
    "sound": "c_18cc",
    "musical composition": "c_18cd",
    "text": "c_18cf",
    "conference paper not in proceedings": "c_18cp",
    "conference poster not in proceedings": "c_18co",
    "musical notation": "c_18cw",
    "internal report": "c_18ww",
    "memorandum": "c_18wz",
    "other type of report": "c_18wq",
    "policy report": "c_186u",
    "project deliverable": "c_18op",
    "report to funding agency": "c_18hj",
    "research report": "c_18ws",
    "technical report": "c_18gh",
    "review article": "c_dcae04bc",
    "research article": "c_2df8fbb1",
}
# The main class of research output a type belongs to (resourceTypeGeneral); others: literature.
RESOURCE_TYPE_GENERAL: dict[str, str] = {
    "dataset": "dataset",
    "software": "software",
    "workflow": "software",
    "image": "other research product",
    "still image": "other research product",
    "moving image": "other research product",
    "video": "other research product",
    "sound": "other research product",
    "cartographic material": "other research product",
    "map": "other research product",
    "interactive resource": "other research product",
    "website": "other research product",
    "musical composition": "other research product",
}
ACCESS_RIGHTS: dict[str, str] = {
    "open access": "c_abf2",
    "embargoed access": "c_f1cf",
    "restricted access": "c_16ec",
    "metadata only access": "c_14cb",
}
VERSIONS: dict[str, str] = {
    "AO": "c_b1a7d7d4d402bcce",  # Author's Original
    "SMUR": "c_71e4c1898caa6e32",  # Submitted Manuscript Under Review
    "AM": "c_ab4af688f83e57aa",  # Accepted Manuscript
    "P": "c_fa2ee174bc00049f",  # Proof
    "VoR": "c_970fb48d4fbd8a85",  # Version of Record
    "CVoR": "c_e19f295774971610",  # Corrected Version of Record
    "EVoR": "c_dc82b40f9837b551",  # Enhanced Version of Record
    "NA": "c_be7fb7dd8ff6fe43",  # Not Applicable (or Unknown)
}
# Each mapping table of the configuration, and the vocabulary its values are terms of.
TERMS: dict[str, Mapping[str, str]] = {
    "resource_types": RESOURCE_TYPES,
    "access_rights": ACCESS_RIGHTS,
    "versions": VERSIONS,
}
_BASES = {
    "resource_types": RESOURCE_TYPE_URI,
    "access_rights": ACCESS_RIGHT_URI,
    "versions": VERSION_URI,
}


class Term(NamedTuple):
    """A vocabulary term: its label (the element's text) and concept URI (its attribute)."""

    label: str
    uri: str


@lru_cache(maxsize=4096)
def normalise(value: str) -> str:
    """The form a value is looked up in: `Book_Chapter`, ` book  chapter` and `Book chapter`
    are one key. (Labels and COAR URIs map to themselves, whatever the table says.)"""
    return re.sub(r"[\s_]+", " ", value).strip().casefold()


@dataclass(frozen=True)
class Vocabularies:
    """The configured tables: a repository value (normalised) → a term label."""

    resource_types: Mapping[str, str]
    access_rights: Mapping[str, str]
    versions: Mapping[str, str]
    default_access_right: str | None

    @classmethod
    def from_tables(
        cls, tables: Iterable[tuple[str, Iterable[tuple[str, str]]]], default_access: str
    ) -> Vocabularies:
        given = dict(tables)
        return cls(
            **{
                name: {normalise(k): v for k, v in given.get(name, ())}
                for name in ("resource_types", "access_rights", "versions")
            },
            default_access_right=default_access or None,
        )

    def resource_type(self, value: str) -> Term | None:
        return _lookup("resource_types", self.resource_types, value)

    def access_right(self, value: str) -> Term | None:
        return _lookup("access_rights", self.access_rights, value)

    def version(self, value: str) -> Term | None:
        return _lookup("versions", self.versions, value)


def _lookup(table: str, mapping: Mapping[str, str], value: str) -> Term | None:
    terms, base = TERMS[table], _BASES[table]
    key = normalise(value)
    label = mapping.get(key)
    if label is None:
        label = _by_label(table).get(key) or _by_uri(table).get(value.strip())
    return Term(label, base + terms[label]) if label is not None else None


@cache
def _by_label(table: str) -> dict[str, str]:
    return {normalise(label): label for label in TERMS[table]}


@cache
def _by_uri(table: str) -> dict[str, str]:
    return {_BASES[table] + concept: label for label, concept in TERMS[table].items()}


def resource_type_general(label: str) -> str:
    return RESOURCE_TYPE_GENERAL.get(label, "literature")


@lru_cache(maxsize=4096)
def iso639_3(value: str) -> str | None:
    """A language value as an ISO 639-3 code (OpenAIRE's best practice): `en`, `en_US`,
    `en-US`, `eng` → `eng`; `chi` (639-2/B) → `zho`; None for what is no ISO 639 code."""
    primary = re.split(r"[-_]", value.strip(), maxsplit=1)[0].casefold()
    if not re.fullmatch(r"[a-z]{2,3}", primary):
        return None
    import pycountry  # its database is read on first use: only formats and checks need it

    if len(primary) == 2:
        language = pycountry.languages.get(alpha_2=primary)
    else:
        language = pycountry.languages.get(alpha_3=primary) or pycountry.languages.get(
            bibliographic=primary
        )
    return str(language.alpha_3) if language is not None else None
