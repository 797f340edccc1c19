"""The unit tier: OAI-PMH 2.0's verbs, arguments and errors, answered by the protocol core
(`protocol.respond`) over an in-memory `RecordSource` (tests/memory_store.py).

No Flask, no SQL, no files: each test builds its repository in memory, asks, and checks the
answer against the official XSD and the specification's words. What only the web edge or a
real store can show (HTTP methods, sizes, encodings, 503s, transactions, both backends)
stays in tests/test_views.py, tests/test_harvest.py and the store's tests.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from oaipmh_server.config import load_settings
from oaipmh_server.formats import MetadataFormat, build_formats
from oaipmh_server.protocol import Context, respond
from oaipmh_server.record_source import Field, SetInfo
from oaipmh_server.settings import Settings
from oaipmh_server.xml import clean_text

from . import xsd
from .imports import loaded_after
from .memory_store import MemoryStore

pytestmark = pytest.mark.unit

NS = {
    "oai": "http://www.openarchives.org/OAI/2.0/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "dc": "http://purl.org/dc/elements/1.1/",
}
REPO = "oai:repository.example.org:"
BASE_URL = "http://oai.example.org/oai"
NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
SETTINGS: Settings = load_settings(environ={})
FORMATS = build_formats(SETTINGS)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def title(value: str) -> Field:
    return Field("dc.title", value)


def sample() -> MemoryStore:
    """Five records over three days, two sets (one inside the other), one record deleted."""
    store = MemoryStore()
    store.sets = [
        SetInfo("com_1", "Community"),
        SetInfo("com_1:col_2", "Collection", parent="com_1"),
    ]
    store.add("1", at("2024-01-01T10:00:00Z"), title("One"), sets=("com_1",))
    store.add("2", at("2024-01-02T00:00:00Z"), title("Two"), sets=("com_1:col_2",))
    store.add("3", at("2024-01-02T23:59:59Z"), title("Three"))
    store.add("4", at("2024-01-03T08:30:00Z"), sets=("com_1:col_2",), deleted=True)
    store.add("5", at("2024-01-03T08:30:00Z"), title("Five"), sets=("com_1",))
    return store


def ask(
    store: MemoryStore,
    *pairs: tuple[str, str],
    formats: dict[str, MetadataFormat] | None = None,
    **changes: object,
) -> etree._Element:
    """The XSD-valid answer to the request `pairs`."""
    context = Context(
        settings=replace(SETTINGS, **changes),  # type: ignore[arg-type]
        formats=FORMATS if formats is None else formats,
        source=store,
        base_url=BASE_URL,
        now=NOW,
    )
    return xsd.validate(b"".join(respond(list(pairs), context).body))


def errors(root: etree._Element) -> list[str]:
    return [e.get("code") for e in root.iterfind("oai:error", NS)]


def request_of(root: etree._Element) -> dict[str, str]:
    return dict(root.find("oai:request", NS).attrib)


def identifiers(root: etree._Element) -> list[str]:
    return [e.text for e in root.iterfind(".//oai:header/oai:identifier", NS)]


def token(root: etree._Element) -> etree._Element | None:
    return root.find(".//oai:resumptionToken", NS)


def harvest(store: MemoryStore, verb: str, *pairs: tuple[str, str], **changes: object):
    """Follow the tokens to the end: every page's root."""
    pages = [ask(store, ("verb", verb), *pairs, **changes)]
    while (element := token(pages[-1])) is not None and element.text:
        assert errors(pages[-1]) == []
        pages.append(ask(store, ("verb", verb), ("resumptionToken", element.text), **changes))
    return pages


def test_the_unit_tier_imports_neither_flask_nor_sqlalchemy() -> None:
    """The tier's promise: the protocol, its settings, formats and this store, and no web or SQL."""
    modules = ("flask", "werkzeug", "sqlalchemy", "psycopg")
    assert loaded_after("tests.test_protocol_unit", modules) == []


# 4.2 Identify ---------------------------------------------------------------------------


def test_identify_answers_the_repository_description() -> None:
    root = ask(sample(), ("verb", "Identify"))
    identify = root.find("oai:Identify", NS)
    assert errors(root) == []
    assert identify.findtext("oai:repositoryName", namespaces=NS) == SETTINGS.repository_name
    assert identify.findtext("oai:baseURL", namespaces=NS) == BASE_URL
    assert identify.findtext("oai:protocolVersion", namespaces=NS) == "2.0"
    assert identify.findtext("oai:earliestDatestamp", namespaces=NS) == "2024-01-01T10:00:00Z"
    assert identify.findtext("oai:deletedRecord", namespaces=NS) in ("persistent", "transient")
    assert identify.findtext("oai:granularity", namespaces=NS) == "YYYY-MM-DDThh:mm:ssZ"
    assert [e.text for e in identify.iterfind("oai:compression", NS)] == ["gzip", "deflate"]
    assert root.findtext("oai:responseDate", namespaces=NS) == "2024-06-01T12:00:00Z"
    assert request_of(root) == {"verb": "Identify"}
    assert root.findtext("oai:request", namespaces=NS) == BASE_URL


def test_identify_of_an_empty_repository_gives_an_earliest_datestamp_still() -> None:
    root = ask(MemoryStore(), ("verb", "Identify"))
    assert errors(root) == []
    assert root.findtext("oai:Identify/oai:earliestDatestamp", namespaces=NS) == (
        "1970-01-01T00:00:00Z"
    )


def test_identify_takes_no_arguments() -> None:
    root = ask(sample(), ("verb", "Identify"), ("metadataPrefix", "oai_dc"))
    assert errors(root) == ["badArgument"]


# 4.4 ListMetadataFormats ----------------------------------------------------------------


def test_list_metadata_formats_without_identifier_lists_every_format() -> None:
    root = ask(sample(), ("verb", "ListMetadataFormats"))
    prefixes = [e.text for e in root.iterfind(".//oai:metadataPrefix", NS)]
    assert prefixes == list(FORMATS)
    assert prefixes[0] == "oai_dc"


def test_list_metadata_formats_for_an_item_lists_the_formats_it_can_be_disseminated_in() -> None:
    root = ask(sample(), ("verb", "ListMetadataFormats"), ("identifier", REPO + "1"))
    prefixes = [e.text for e in root.iterfind(".//oai:metadataPrefix", NS)]
    assert errors(root) == [] and "oai_dc" in prefixes
    assert request_of(root) == {"verb": "ListMetadataFormats", "identifier": REPO + "1"}


def test_list_metadata_formats_of_a_deleted_item_lists_the_formats() -> None:
    root = ask(sample(), ("verb", "ListMetadataFormats"), ("identifier", REPO + "4"))
    assert [e.text for e in root.iterfind(".//oai:metadataPrefix", NS)] == list(FORMATS)


@pytest.mark.parametrize(
    "identifier",
    [REPO + "99", "oai:other.example.org:1", REPO],
    ids=["unknown-item", "another-repository", "empty-local-id"],
)
def test_list_metadata_formats_of_an_unknown_item_is_id_does_not_exist(identifier: str) -> None:
    root = ask(sample(), ("verb", "ListMetadataFormats"), ("identifier", identifier))
    assert errors(root) == ["idDoesNotExist"]
    assert request_of(root) == {"verb": "ListMetadataFormats", "identifier": identifier}


def test_no_metadata_formats_when_no_format_has_anything_for_the_item() -> None:
    """noMetadataFormats: "There are no metadata formats available for the specified item."
    oai_dc takes every record, so this needs a repository offering only a format that
    keeps nothing this item has."""
    picky = replace(FORMATS["oai_dc"], disseminates=lambda fields: False, selective=True)
    root = ask(
        sample(),
        ("verb", "ListMetadataFormats"),
        ("identifier", REPO + "1"),
        formats={"oai_dc": picky},
    )
    assert errors(root) == ["noMetadataFormats"]


# 4.6 ListSets ---------------------------------------------------------------------------


def test_list_sets_lists_every_set_with_its_name() -> None:
    root = ask(sample(), ("verb", "ListSets"))
    assert [e.text for e in root.iterfind(".//oai:setSpec", NS)] == ["com_1", "com_1:col_2"]
    assert [e.text for e in root.iterfind(".//oai:setName", NS)] == ["Community", "Collection"]
    assert token(root) is None


def test_list_sets_of_a_repository_without_sets_is_no_set_hierarchy() -> None:
    store = sample()
    store.sets = []
    assert errors(ask(store, ("verb", "ListSets"))) == ["noSetHierarchy"]


def test_list_sets_resumes_with_a_token_until_an_empty_one_ends_the_list() -> None:
    store = sample()
    store.sets = [SetInfo(f"s{n:02}", f"Set {n}") for n in range(5)]
    pages = harvest(store, "ListSets", page_size=2)
    specs = [e.text for page in pages for e in page.iterfind(".//oai:setSpec", NS)]
    assert specs == [f"s{n:02}" for n in range(5)]
    tokens = [token(page) for page in pages]
    assert [t.get("cursor") for t in tokens] == ["0", "2", "4"]
    assert {t.get("completeListSize") for t in tokens} == {"5"}
    assert tokens[-1].text is None  # the last page: an empty token


def test_list_sets_with_a_bad_token_is_bad_resumption_token() -> None:
    root = ask(sample(), ("verb", "ListSets"), ("resumptionToken", "garbage"))
    assert errors(root) == ["badResumptionToken"]
    assert request_of(root) == {"verb": "ListSets", "resumptionToken": "garbage"}


def test_list_sets_resumption_token_is_exclusive() -> None:
    root = ask(sample(), ("verb", "ListSets"), ("resumptionToken", "x"), ("set", "a"))
    assert errors(root) == ["badArgument"]
    assert request_of(root) == {}


# 4.3 ListIdentifiers and 4.5 ListRecords --------------------------------------------------

LISTS = pytest.mark.parametrize("verb", ["ListIdentifiers", "ListRecords"])


@LISTS
def test_a_list_answers_every_record_in_datestamp_order(verb: str) -> None:
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"))
    assert errors(root) == []
    assert identifiers(root) == [REPO + n for n in ("1", "2", "3", "4", "5")]
    assert token(root) is None  # a list answered whole carries no token


@LISTS
def test_a_list_requires_a_metadata_prefix(verb: str) -> None:
    assert errors(ask(sample(), ("verb", verb))) == ["badArgument"]


@LISTS
def test_a_list_in_an_unknown_format_is_cannot_disseminate_format(verb: str) -> None:
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "marc21"), ("set", "a"))
    assert errors(root) == ["cannotDisseminateFormat"]
    # An error other than badVerb and badArgument echoes the arguments (3.2).
    assert request_of(root) == {"verb": verb, "metadataPrefix": "marc21", "set": "a"}


@LISTS
@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        pytest.param([("from", "2024-01-02")], ["2", "3", "4", "5"], id="from-day-is-inclusive"),
        pytest.param([("until", "2024-01-02")], ["1", "2", "3"], id="until-day-covers-the-day"),
        pytest.param(
            [("from", "2024-01-02T00:00:00Z"), ("until", "2024-01-02T23:59:59Z")],
            ["2", "3"],
            id="seconds-both-inclusive",
        ),
        pytest.param(
            [("from", "2024-01-02T00:00:01Z")], ["3", "4", "5"], id="from-second-excludes-before"
        ),
        pytest.param([("from", "2024-01-03"), ("until", "2024-01-03")], ["4", "5"], id="one-day"),
    ],
)
def test_from_and_until_select_by_datestamp_inclusively(
    verb: str, pairs: list[tuple[str, str]], expected: list[str]
) -> None:
    """3.3.1: from and until are inclusive; a day-granularity until covers the whole day."""
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"), *pairs)
    assert identifiers(root) == [REPO + n for n in expected]


@LISTS
@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("from", "2024-01-01"), ("until", "2024-01-02T00:00:00Z")], id="mixed"),
        pytest.param([("from", "2024-01-02"), ("until", "2024-01-01")], id="from-after-until"),
        pytest.param([("from", "2024-02-30")], id="no-such-day"),
        pytest.param([("from", "2024-01-01T00:00Z")], id="minutes-granularity"),
        pytest.param([("from", "2024-01-01T00:00:00.5Z")], id="fractional-seconds"),
        pytest.param([("from", "2024-01-01T00:00:00+02:00")], id="offset-not-Z"),
        pytest.param([("until", "2024-01-01T24:00:00Z")], id="hour-24"),
        pytest.param([("from", "")], id="empty-from"),
        pytest.param([("set", "a b")], id="set-outside-its-pattern"),
        pytest.param([("set", "a::b")], id="set-empty-level"),
        pytest.param([("identifier", REPO + "1")], id="argument-of-another-verb"),
        pytest.param([("metadataPrefix", "oai_dc")], id="repeated-argument"),
        pytest.param([("resumptionToken", "x")], id="token-with-other-arguments"),
    ],
)
def test_bad_argument_combinations_are_bad_argument_and_echo_no_attributes(
    verb: str, pairs: list[tuple[str, str]]
) -> None:
    """3.6 badArgument: illegal, repeated or missing arguments, or an illegal value (from
    and until of different granularities, from after until). 3.2: no attributes echoed."""
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"), *pairs)
    assert errors(root) == ["badArgument"]
    assert request_of(root) == {}


@LISTS
@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("from", "2100-01-01")], id="from-in-the-future"),
        pytest.param([("until", "1900-01-01")], id="until-before-everything"),
        pytest.param([("set", "no_such_set")], id="unknown-set"),
        pytest.param(
            [("from", "2024-01-01T10:00:01Z"), ("until", "2024-01-01T23:59:59Z")],
            id="a-window-with-nothing",
        ),
    ],
)
def test_no_records_match_when_the_selection_is_empty(
    verb: str, pairs: list[tuple[str, str]]
) -> None:
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"), *pairs)
    assert errors(root) == ["noRecordsMatch"]
    assert request_of(root)["verb"] == verb


@LISTS
def test_a_list_of_an_empty_repository_is_no_records_match(verb: str) -> None:
    assert errors(ask(MemoryStore(), ("verb", verb), ("metadataPrefix", "oai_dc"))) == [
        "noRecordsMatch"
    ]


@LISTS
def test_a_set_selects_its_records_and_those_of_the_sets_inside_it(verb: str) -> None:
    store = sample()
    root = ask(store, ("verb", verb), ("metadataPrefix", "oai_dc"), ("set", "com_1"))
    assert identifiers(root) == [REPO + n for n in ("1", "2", "4", "5")]
    root = ask(store, ("verb", verb), ("metadataPrefix", "oai_dc"), ("set", "com_1:col_2"))
    assert identifiers(root) == [REPO + n for n in ("2", "4")]
    assert [e.text for e in root.iterfind(".//oai:header/oai:setSpec", NS)] == [
        "com_1:col_2",
        "com_1:col_2",
    ]


@LISTS
def test_set_selection_in_a_repository_without_sets_is_no_set_hierarchy(verb: str) -> None:
    store = sample()
    store.sets = []
    root = ask(store, ("verb", verb), ("metadataPrefix", "oai_dc"), ("set", "com_1"))
    assert errors(root) == ["noSetHierarchy"]


@LISTS
def test_a_deleted_record_is_listed_by_its_header_with_status_deleted(verb: str) -> None:
    """2.5.1: a deleted record's header carries status="deleted"; ListRecords gives no
    metadata for it."""
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"))
    headers = {
        h.findtext("oai:identifier", namespaces=NS): h for h in root.iterfind(".//oai:header", NS)
    }
    assert headers[REPO + "4"].get("status") == "deleted"
    assert [i for i, h in headers.items() if h.get("status")] == [REPO + "4"]
    if verb == "ListRecords":
        records = {
            r.findtext("oai:header/oai:identifier", namespaces=NS): r
            for r in root.iterfind("oai:ListRecords/oai:record", NS)
        }
        assert records[REPO + "4"].find("oai:metadata", NS) is None
        assert records[REPO + "1"].findtext(".//dc:title", namespaces=NS) == "One"


@LISTS
def test_a_resumption_token_round_trip_harvests_every_record_once(verb: str) -> None:
    """3.5: a list split into pages; each token gives the next page, cursor counts what
    came before, completeListSize the whole, and the last page's token is empty."""
    pages = harvest(sample(), verb, ("metadataPrefix", "oai_dc"), page_size=2)
    assert [identifiers(p) for p in pages] == [
        [REPO + "1", REPO + "2"],
        [REPO + "3", REPO + "4"],
        [REPO + "5"],
    ]
    tokens = [token(p) for p in pages]
    assert [t.get("cursor") for t in tokens] == ["0", "2", "4"]
    assert {t.get("completeListSize") for t in tokens} == {"5"}
    assert all(t.text for t in tokens[:-1]) and tokens[-1].text is None
    # A resumed request echoes only the verb and the token.
    assert request_of(pages[1]) == {"verb": verb, "resumptionToken": tokens[0].text}


@LISTS
def test_a_token_keeps_the_selection_of_the_first_request(verb: str) -> None:
    pages = harvest(
        sample(),
        verb,
        ("metadataPrefix", "oai_dc"),
        ("set", "com_1"),
        ("from", "2024-01-02"),
        page_size=1,
    )
    assert [i for p in pages for i in identifiers(p)] == [REPO + n for n in ("2", "4", "5")]


@LISTS
def test_a_token_ties_two_records_of_one_datestamp_by_id(verb: str) -> None:
    """Records 4 and 5 share a datestamp: the keyset position orders them by id, and a
    page boundary between them neither repeats nor skips one."""
    pages = harvest(
        sample(), verb, ("metadataPrefix", "oai_dc"), ("from", "2024-01-03"), page_size=1
    )
    assert [identifiers(p) for p in pages] == [[REPO + "4"], [REPO + "5"]]


@LISTS
@pytest.mark.parametrize(
    "value",
    ["garbage", "eyJ2IjoiTGlzdFJlY29yZHMifQ.AAAA", "' OR 1=1 --"],
    ids=["garbage", "forged", "sql"],
)
def test_a_bad_token_is_bad_resumption_token(verb: str, value: str) -> None:
    root = ask(sample(), ("verb", verb), ("resumptionToken", value))
    assert errors(root) == ["badResumptionToken"]
    assert request_of(root) == {"verb": verb, "resumptionToken": value}


@LISTS
def test_a_token_signed_with_another_secret_is_bad_resumption_token(verb: str) -> None:
    store = sample()
    first = ask(store, ("verb", verb), ("metadataPrefix", "oai_dc"), page_size=2)
    store.secret = "another secret"
    root = ask(store, ("verb", verb), ("resumptionToken", token(first).text), page_size=2)
    assert errors(root) == ["badResumptionToken"]


@LISTS
def test_a_token_signed_with_a_previous_secret_still_resumes(verb: str) -> None:
    store = sample()
    first = ask(store, ("verb", verb), ("metadataPrefix", "oai_dc"), page_size=2)
    old, store.secret = store.secret, "the new secret"
    root = ask(
        store,
        ("verb", verb),
        ("resumptionToken", token(first).text),
        page_size=2,
        previous_token_secrets=(old,),
    )
    assert identifiers(root) == [REPO + "3", REPO + "4"]


def test_a_token_of_one_verb_is_bad_resumption_token_for_another() -> None:
    store = sample()
    first = ask(store, ("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), page_size=2)
    root = ask(store, ("verb", "ListRecords"), ("resumptionToken", token(first).text), page_size=2)
    assert errors(root) == ["badResumptionToken"]
    sets = ask(store, ("verb", "ListSets"), ("resumptionToken", token(first).text), page_size=2)
    assert errors(sets) == ["badResumptionToken"]


@LISTS
def test_a_resumption_token_is_exclusive(verb: str) -> None:
    for other in [("metadataPrefix", "oai_dc"), ("set", "com_1"), ("from", "2024-01-01"),
                  ("until", "2024-01-01")]:  # fmt: skip
        root = ask(sample(), ("verb", verb), ("resumptionToken", "x"), other)
        assert errors(root) == ["badArgument"], other
        assert request_of(root) == {}


# 4.1 GetRecord --------------------------------------------------------------------------


def test_get_record_answers_the_record_in_the_format_asked() -> None:
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", REPO + "1"), ("metadataPrefix", "oai_dc")
    )
    assert errors(root) == []
    record = root.find("oai:GetRecord/oai:record", NS)
    assert record.findtext("oai:header/oai:identifier", namespaces=NS) == REPO + "1"
    assert record.findtext("oai:header/oai:datestamp", namespaces=NS) == "2024-01-01T10:00:00Z"
    assert [e.text for e in record.iterfind("oai:header/oai:setSpec", NS)] == ["com_1"]
    assert record.findtext(".//dc:title", namespaces=NS) == "One"
    assert request_of(root) == {
        "verb": "GetRecord",
        "identifier": REPO + "1",
        "metadataPrefix": "oai_dc",
    }


@pytest.mark.parametrize("prefix", [p for p in FORMATS if p != "oai_dc"])
def test_get_record_in_every_other_format_is_valid(prefix: str) -> None:
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", REPO + "1"), ("metadataPrefix", prefix)
    )
    assert errors(root) in ([], ["cannotDisseminateFormat"])


# The fields the crosswalks read (oai_dc's map, qdc, dim, oai_openaire's table), and
# values a repository's records hold that the formats treat apart: identifiers, dates,
# vocabularies' URIs, ORCIDs, markup.
CROSSWALKED = (
    "dc.title", "dc.title.alternative", "dc.contributor.author", "dc.contributor.advisor",
    "dc.creator", "dc.contributor.orcid", "dc.identifier.orcid", "dc.date.issued",
    "dc.date.available", "dc.date.accessioned", "dc.date.embargo", "dc.description",
    "dc.description.abstract", "dc.description.version", "dc.identifier.uri",
    "dc.identifier.doi", "dc.identifier.issn", "dc.identifier.isbn", "dc.identifier.citation",
    "dc.identifier.spage", "dc.identifier.epage", "dc.language.iso", "dc.publisher",
    "dc.relation", "dc.relation.ispartof", "dc.relation.uri", "dc.relation.project",
    "dc.rights", "dc.rights.uri", "dcterms.accessRights", "dc.subject", "dc.subject.ddc",
    "dc.type", "dc.type.version", "oaire.version", "dc.format", "dc.format.extent",
    "dc.format.mimetype", "dc.coverage.spatial", "dc.source", "dc.audience",
    "oaire.citation.startPage", "oaire.citation.conferenceDate", "local.note",
)  # fmt: skip
SPECIAL_VALUES = (
    "<b>x</b>", "]]>", "&amp;", "https://doi.org/10.1000/a b", "10.1000/x<y>", "doi:10.1/x",
    "http://hdl.handle.net/10722/1", "urn:nbn:de:1", "javascript:alert(1)", "http://[::1",
    "2020", "2020-13-45", "0000", "10000-01-01", "0000-0002-1825-0097",
    "https://orcid.org/0000-0002-1825-009X", "info:eu-repo/semantics/openAccess",
    "info:eu-repo/grantAgreement/EC/FP7/1/", "info:eu-repo/grantAgreement/<x>/&",
    "http://purl.org/coar/access_right/c_abf2", "article", "Thesis", "en", "zz", "",
    "application/pdf", "12 pages", "\u202efdp.exe", "\U0010ffff\x85\x7f",
)  # fmt: skip
stored_field = st.builds(
    Field,
    name=st.sampled_from(CROSSWALKED),
    value=st.one_of(st.sampled_from(SPECIAL_VALUES), st.text()).map(clean_text),
    lang=st.sampled_from([None, "en", "en_US", "*", "zh-Hant-TW", "x-klingon"]),
    authority=st.one_of(st.none(), st.text(max_size=20).map(clean_text)),
    confidence=st.sampled_from([None, -1, 0, 600]),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(stored_field, max_size=15))
def test_whatever_a_record_holds_it_is_served_valid_in_every_format(fields: list[Field]) -> None:
    """Any values, as a load stores them (characters XML cannot carry replaced): GetRecord
    in every format is a valid document, or cannotDisseminateFormat where the format has
    nothing for the record."""
    store = MemoryStore()
    store.add("1", NOW, *fields)
    for prefix in FORMATS:
        pairs = (("verb", "GetRecord"), ("identifier", REPO + "1"), ("metadataPrefix", prefix))
        assert errors(ask(store, *pairs)) in ([], ["cannotDisseminateFormat"])


def test_get_record_of_a_deleted_record_is_its_header_alone() -> None:
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", REPO + "4"), ("metadataPrefix", "oai_dc")
    )
    record = root.find("oai:GetRecord/oai:record", NS)
    assert record.find("oai:header", NS).get("status") == "deleted"
    assert record.find("oai:metadata", NS) is None


@pytest.mark.parametrize(
    "identifier",
    [REPO + "99", "oai:other.example.org:1", REPO, REPO + "';DROP-TABLE-records;--"],
    ids=["unknown-item", "another-repository", "empty-local-id", "sql"],
)
def test_get_record_of_an_unknown_item_is_id_does_not_exist(identifier: str) -> None:
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", identifier), ("metadataPrefix", "oai_dc")
    )
    assert errors(root) == ["idDoesNotExist"]


def test_get_record_of_an_unknown_item_in_an_unknown_format_is_id_does_not_exist() -> None:
    """The identifier is checked first: an unknown item is unknown in any format."""
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", REPO + "99"), ("metadataPrefix", "marc21")
    )
    assert errors(root) == ["idDoesNotExist"]


def test_get_record_in_an_unknown_format_is_cannot_disseminate_format() -> None:
    root = ask(
        sample(), ("verb", "GetRecord"), ("identifier", REPO + "1"), ("metadataPrefix", "marc21")
    )
    assert errors(root) == ["cannotDisseminateFormat"]
    assert request_of(root)["metadataPrefix"] == "marc21"


def test_get_record_in_a_format_the_item_has_nothing_for_is_cannot_disseminate_format() -> None:
    # A format that may have nothing to say of a record says so (`selective`), as the
    # formats with a place for some fields only do (qdc, dim, oai_openaire).
    picky = replace(FORMATS["oai_dc"], disseminates=lambda fields: False, selective=True)
    root = ask(
        sample(),
        ("verb", "GetRecord"),
        ("identifier", REPO + "1"),
        ("metadataPrefix", "oai_dc"),
        formats={"oai_dc": picky},
    )
    assert errors(root) == ["cannotDisseminateFormat"]


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([("identifier", REPO + "1")], id="missing-prefix"),
        pytest.param([("metadataPrefix", "oai_dc")], id="missing-identifier"),
        pytest.param(
            [("identifier", "a b"), ("metadataPrefix", "oai_dc")], id="identifier-not-a-uri"
        ),
        pytest.param(
            [("identifier", REPO + "1"), ("metadataPrefix", "oai_dc"), ("from", "2024-01-01")],
            id="argument-of-another-verb",
        ),
        pytest.param(
            [("identifier", REPO + "1"), ("identifier", REPO + "2"), ("metadataPrefix", "oai_dc")],
            id="repeated-identifier",
        ),
        pytest.param([("identifier", REPO + "1"), ("metadataPrefix", "oai dc")], id="bad-prefix"),
    ],
)
def test_get_record_with_bad_arguments_is_bad_argument(pairs: list[tuple[str, str]]) -> None:
    root = ask(sample(), ("verb", "GetRecord"), *pairs)
    assert errors(root) == ["badArgument"]
    assert request_of(root) == {}


# 3.6 badVerb ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param([], id="missing"),
        pytest.param([("metadataPrefix", "oai_dc")], id="missing-with-arguments"),
        pytest.param([("verb", "Identify"), ("verb", "Identify")], id="repeated"),
        pytest.param([("verb", "Identify"), ("verb", "ListSets")], id="repeated-differently"),
        pytest.param([("verb", "Frobnicate")], id="unknown"),
        pytest.param([("verb", "identify")], id="verbs-are-case-sensitive"),
        pytest.param([("verb", "")], id="empty"),
    ],
)
def test_bad_verb_when_the_verb_is_missing_repeated_or_unknown(
    pairs: list[tuple[str, str]],
) -> None:
    root = ask(sample(), *pairs)
    assert errors(root) == ["badVerb"]
    assert request_of(root) == {}  # 3.2: no attributes on a badVerb answer
    assert root.findtext("oai:request", namespaces=NS) == BASE_URL


@pytest.mark.parametrize(
    "verb", ["Identify", "ListMetadataFormats", "ListSets", "ListIdentifiers", "ListRecords"]
)
def test_an_unknown_argument_to_any_verb_is_bad_argument(verb: str) -> None:
    root = ask(sample(), ("verb", verb), ("metadataPrefix", "oai_dc"), ("foo", "bar"))
    assert errors(root) == ["badArgument"]
