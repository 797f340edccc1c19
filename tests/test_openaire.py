"""oai_openaire (OpenAIRE Guidelines for Literature Repositories v4): every sample record
and the seed valid against the official openaire.xsd (the test client validates every
response), each property filled from the qualified DC that feeds it, the COAR vocabulary
mappings configurable, private fields nowhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from lxml import etree

from oaipmh_server.config import load_settings
from oaipmh_server.errors import ConfigError

from . import xsd
from .conftest import load_into, make_app
from .oai import harvest, tree

OAIRE = "http://namespace.openaire.eu/schema/oaire/"
DATACITE = "http://datacite.org/schema/kernel-4"
DC = "http://purl.org/dc/elements/1.1/"
NS = {"oaire": OAIRE, "datacite": DATACITE, "dc": DC, "dcterms": "http://purl.org/dc/terms/"}
SEED = "oai:repository.example.org:10722/212116"


def resource(client: FlaskClient, local_id: str) -> etree._Element:
    query = f"/oai?verb=GetRecord&metadataPrefix=oai_openaire&identifier=oai:repository.example.org:{local_id}"
    root = tree(client.get(query))
    found = root.find(f".//{{{OAIRE}}}resource")
    assert found is not None, etree.tostring(root)[:500]
    return found


def texts(element: etree._Element, path: str) -> list[str]:
    return [e.text for e in element.iterfind(path, NS)]


def attributes(element: etree._Element, path: str) -> list[dict[str, str]]:
    return [dict(e.attrib) for e in element.iterfind(path, NS)]


def test_every_sample_record_is_valid_oai_openaire(client: FlaskClient) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_openaire")
    records = [r for page in pages for r in page.iterfind(".//{*}record")]
    live = [r for r in records if r.find(".//{*}header").get("status") != "deleted"]
    assert len(live) > 40
    assert all(r.find(f".//{{{OAIRE}}}resource") is not None for r in live)


def test_the_seed_field_by_field(client: FlaskClient) -> None:
    r = resource(client, "10722/212116")
    assert texts(r, "datacite:titles/datacite:title")[0].startswith("Allogeneic mesenchymal")
    creators = texts(r, "datacite:creators/datacite:creator/datacite:creatorName")
    assert creators[0] == "Wang, D" and len(creators) == 14
    assert texts(r, "datacite:identifier") == ["http://hdl.handle.net/10722/212116"]
    assert attributes(r, "datacite:identifier") == [{"identifierType": "HANDLE"}]
    alternate = {
        e.get("alternateIdentifierType"): e.text
        for e in r.iterfind("datacite:alternateIdentifiers/datacite:alternateIdentifier", NS)
    }
    assert alternate["DOI"] == "10.3727/096368911X582769c"
    assert alternate["PMID"] == "24388428"
    assert alternate["WOS"] == "WOS:000329986100006"
    related = [
        (e.get("relatedIdentifierType"), e.get("relationType"), e.text)
        for e in r.iterfind("datacite:relatedIdentifiers/datacite:relatedIdentifier", NS)
    ]
    assert ("ISSN", "IsPartOf", "0963-6897") in related
    dates = {e.get("dateType"): e.text for e in r.iterfind("datacite:dates/datacite:date", NS)}
    assert dates == {"Issued": "2013", "Accepted": "2015-07-21", "Available": "2015-07-21"}
    assert texts(r, "dc:language") == ["eng"]
    assert texts(r, "oaire:resourceType") == ["journal article"]
    assert attributes(r, "oaire:resourceType") == [
        {"resourceTypeGeneral": "literature", "uri": "http://purl.org/coar/resource_type/c_6501"}
    ]
    assert texts(r, "datacite:rights") == ["metadata only access"]
    assert texts(r, "oaire:citationTitle") == ["Cell Transplantation"]
    assert texts(r, "oaire:citationVolume") == ["22"]
    assert texts(r, "oaire:citationIssue") == ["12"]
    assert texts(r, "oaire:citationStartPage") == ["2267"]
    assert texts(r, "oaire:citationEndPage") == ["2277"]
    assert len(texts(r, "datacite:subjects/datacite:subject")) == 4
    assert texts(r, "dc:publisher")[0].startswith("Cognizant Communication")
    assert texts(r, "dc:description")[0].startswith("Mesenchymal stem cells")
    # No files are kept yet, so no File Location.
    assert r.find("oaire:file", NS) is None
    text = etree.tostring(r)
    for private in (b"liweilu", b"rp00477", b"link_to_OA_fulltext", b"Made available in DSpace"):
        assert private not in text


def test_no_private_field_in_any_record(client: FlaskClient) -> None:
    pages, _ = harvest(client, "ListRecords", metadataPrefix="oai_openaire")
    text = b"".join(etree.tostring(p) for p in pages)
    assert b"@hku.hk" not in text and b"Made available in DSpace" not in text


RICH: list[dict[str, Any]] = [
    {"field": "dc.title", "value": "Main title", "lang": "en"},
    {"field": "dc.title.alternative", "value": "Another title"},
    {"field": "dc.title.subtitle", "value": "A subtitle"},
    {"field": "dc.contributor.author", "value": "Doe, Jane"},
    {"field": "dc.contributor.author", "value": "Roe, Richard"},
    {"field": "dc.identifier.orcid", "value": "Doe, Jane=0000-0002-1825-0097"},
    {"field": "dc.contributor.advisor", "value": "Poe, Edgar"},
    {"field": "dc.contributor.editor", "value": "Moe, Mary"},
    {
        "field": "dc.relation",
        "value": "info:eu-repo/grantAgreement/EC/H2020/643410/EU/Open Access Infrastructure/OpenAIRE2020",
    },
    {"field": "dc.relation.isversionof", "value": "https://doi.org/10.1234/earlier"},
    {"field": "dc.relation.ispartof", "value": "Journal of Examples"},
    {"field": "dc.identifier.uri", "value": "https://repo.example.org/handle/1/2"},
    {"field": "dc.identifier.isbn", "value": "978-3-16-148410-0"},
    {"field": "dc.identifier.eissn", "value": "1234-5679"},
    {"field": "dc.date.accessioned", "value": "2020-01-02T03:04:05Z"},
    {"field": "dc.date.available", "value": "2020-01-02T03:04:05Z"},
    {"field": "dc.date.issued", "value": "2019-11"},
    {"field": "dc.date.embargo", "value": "2021-06-30"},
    {"field": "dc.language.iso", "value": "de"},
    {"field": "dc.language", "value": "chi"},
    {"field": "dc.type", "value": "info:eu-repo/semantics/doctoralThesis"},
    {"field": "dc.type.version", "value": "info:eu-repo/semantics/acceptedVersion"},
    {"field": "dc.rights", "value": "Creative Commons Attribution 4.0"},
    {"field": "dc.rights.uri", "value": "https://creativecommons.org/licenses/by/4.0/"},
    {"field": "dc.subject.ddc", "value": "551 Geology"},
    {"field": "dc.subject", "value": "Rocks", "lang": "en"},
    {"field": "dc.format.mimetype", "value": "application/pdf"},
    {"field": "dc.format.extent", "value": "12 pages"},
    {"field": "dc.source", "value": "Printed original"},
    {"field": "dc.coverage.spatial", "value": "Alps"},
    {"field": "dc.identifier.spage", "value": "7"},
    {"field": "dc.description.provenance", "value": "Made available in DSpace by staff"},
    {"field": "dc.identifier.email", "value": "jane@example.org"},
]


def one_record(
    url: str, tmp_path: Path, metadata: list[dict[str, Any]], **settings: Any
) -> FlaskClient:
    (tmp_path / "r.json").write_text(json.dumps({"id": "1/2", "metadata": metadata}), "utf-8")
    load_into(url, tmp_path / "r.json", missing_accessioned="ingest_time", **settings)
    return make_app(url, **settings).test_client()


def test_every_property_fed_by_qualified_dc(empty_database_url: str, tmp_path: Path) -> None:
    r = resource(one_record(empty_database_url, tmp_path, RICH), "1/2")
    assert attributes(r, "datacite:titles/datacite:title") == [
        {"{http://www.w3.org/XML/1998/namespace}lang": "en"},
        {"titleType": "AlternativeTitle"},
        {"titleType": "Subtitle"},
    ]
    jane = r.find("datacite:creators/datacite:creator", NS)
    assert texts(jane, "datacite:nameIdentifier") == ["https://orcid.org/0000-0002-1825-0097"]
    assert attributes(jane, "datacite:nameIdentifier") == [
        {"nameIdentifierScheme": "ORCID", "schemeURI": "https://orcid.org"}
    ]
    assert [
        (e.get("contributorType"), e.findtext("datacite:contributorName", namespaces=NS))
        for e in r.iterfind("datacite:contributors/datacite:contributor", NS)
    ] == [("Supervisor", "Poe, Edgar"), ("Editor", "Moe, Mary")]
    funding = r.find("oaire:fundingReferences/oaire:fundingReference", NS)
    assert [(etree.QName(e).localname, e.text) for e in funding] == [
        ("funderName", "European Commission"),
        ("funderIdentifier", "http://doi.org/10.13039/501100000780"),
        ("fundingStream", "H2020"),
        ("awardNumber", "643410"),
        ("awardTitle", "Open Access Infrastructure"),
    ]
    assert attributes(r, "datacite:identifier") == [{"identifierType": "URL"}]
    assert [
        (e.get("alternateIdentifierType"), e.text)
        for e in r.iterfind("datacite:alternateIdentifiers/datacite:alternateIdentifier", NS)
    ] == [("ISBN", "978-3-16-148410-0")]
    assert [
        (e.get("relatedIdentifierType"), e.get("relationType"), e.text)
        for e in r.iterfind("datacite:relatedIdentifiers/datacite:relatedIdentifier", NS)
    ] == [
        ("EISSN", "IsPartOf", "1234-5679"),
        ("DOI", "IsVersionOf", "https://doi.org/10.1234/earlier"),
    ]
    dates = [(e.get("dateType"), e.text) for e in r.iterfind("datacite:dates/datacite:date", NS)]
    assert dates == [("Issued", "2019-11"), ("Accepted", "2020-01-02"), ("Available", "2021-06-30")]
    assert texts(r, "dc:language") == ["deu", "zho"]
    assert texts(r, "oaire:resourceType") == ["doctoral thesis"]
    assert texts(r, "datacite:rights") == ["embargoed access"]
    assert attributes(r, "datacite:rights") == [
        {"rightsURI": "http://purl.org/coar/access_right/c_f1cf"}
    ]
    assert texts(r, "oaire:version") == ["AM"]
    assert attributes(r, "oaire:version") == [
        {"uri": "http://purl.org/coar/version/c_ab4af688f83e57aa"}
    ]
    assert texts(r, "oaire:licenseCondition") == ["Creative Commons Attribution 4.0"]
    assert attributes(r, "oaire:licenseCondition") == [
        {"uri": "https://creativecommons.org/licenses/by/4.0/", "startDate": "2021-06-30"}
    ]
    assert attributes(r, "datacite:subjects/datacite:subject") == [
        {"subjectScheme": "DDC", "schemeURI": "http://dewey.info/"},
        {"{http://www.w3.org/XML/1998/namespace}lang": "en"},
    ]
    assert texts(r, "dc:format") == ["application/pdf"]
    assert texts(r, "datacite:sizes/datacite:size") == ["12 pages"]
    assert texts(r, "dc:source") == ["Printed original"]
    assert texts(r, "dc:coverage") == ["Alps"]
    assert texts(r, "oaire:citationTitle") == ["Journal of Examples"]
    assert texts(r, "oaire:citationStartPage") == ["7"]
    text = etree.tostring(r)
    assert b"jane@example.org" not in text and b"Made available" not in text


def test_access_rights_from_the_record(empty_database_url: str, tmp_path: Path) -> None:
    metadata = [
        {"field": "dc.title", "value": "T"},
        {"field": "dc.type", "value": "Made-up type"},
        {"field": "dcterms.accessRights", "value": "info:eu-repo/semantics/openAccess"},
    ]
    r = resource(one_record(empty_database_url, tmp_path, metadata), "1/2")
    assert texts(r, "datacite:rights") == ["open access"]
    assert r.find("oaire:resourceType", NS) is None  # unmapped: left out, not guessed


def test_the_vocabularies_are_configurable(empty_database_url: str, tmp_path: Path) -> None:
    metadata = [
        {"field": "dc.title", "value": "T"},
        {"field": "dc.type", "value": "Made_up type"},
        {"field": "dc.type.version", "value": "final"},
    ]
    settings = {
        "openaire_resource_types": {"made up type": "working paper"},
        "openaire_versions": {"Final": "VoR"},
        "openaire_default_access_right": "open access",
    }
    r = resource(one_record(empty_database_url, tmp_path, metadata, **settings), "1/2")
    assert texts(r, "oaire:resourceType") == ["working paper"]
    assert texts(r, "oaire:version") == ["VoR"]
    assert texts(r, "datacite:rights") == ["open access"]


def test_a_mapping_to_no_coar_term_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[oai_openaire.resource_types]\n"article" = "paper"\n')
    with pytest.raises(
        ConfigError, match=r"c\.toml: oai_openaire\.resource_types: 'article' maps to 'paper'"
    ):
        load_settings(environ={"OAIPMH_CONFIG": str(config)})


def test_a_record_without_a_title_is_not_offered(empty_database_url: str, tmp_path: Path) -> None:
    client = one_record(empty_database_url, tmp_path, [{"field": "dc.subject", "value": "S"}])
    root = tree(
        client.get("/oai?verb=ListMetadataFormats&identifier=oai:repository.example.org:1/2")
    )
    assert "oai_openaire" not in [e.text for e in root.iterfind(".//{*}metadataPrefix")]


@pytest.mark.parametrize(
    ("sample", "valid"),
    [("sample_journalarticle1.xml", True), ("sample_minimal.xml", True), ("mocksample.xml", False)],
)
def test_the_official_samples_check_the_schema_set(sample: str, valid: bool) -> None:
    """The vendored schema set, resolved offline, judges OpenAIRE's own samples as
    SOURCES.md says (mocksample uses a resourceTypeGeneral of an earlier draft)."""
    document = etree.parse(str(xsd.SCHEMAS / "openaire-v4" / "samples" / sample))
    assert xsd.schema(openaire=True).validate(document) is valid


@pytest.mark.parametrize(
    ("issued", "shown"),
    [
        ("2019-11-05", "2019-11-05"),
        ("2019-02-30", "2019-02"),  # no such day: the month is what is sure
        ("2019-13-45", "2019"),  # no such month
        ("2019-11-05T10:00:00Z", "2019-11-05"),
        ("٢٠١٩-١١-٠٥", None),  # digits of another script: no W3CDTF date
    ],
)
def test_a_date_is_shown_only_as_far_as_it_is_a_real_one(
    empty_database_url: str, tmp_path: Path, issued: str, shown: str | None
) -> None:
    """datacite:date is W3CDTF (YYYY, YYYY-MM or YYYY-MM-DD): a value that is no real date
    shows what of it is one, never a month 13 or a 30 February."""
    metadata = [{"field": "dc.title", "value": "T"}, {"field": "dc.date.issued", "value": issued}]
    r = resource(one_record(empty_database_url, tmp_path, metadata), "1/2")
    dates = {e.get("dateType"): e.text for e in r.iterfind("datacite:dates/datacite:date", NS)}
    assert dates.get("Issued") == shown
