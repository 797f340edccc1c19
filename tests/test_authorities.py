"""Controlled values and stored languages, as DSpace keeps them: `value::authority::confidence`
in metadata-export CSV cells, `authority`/`confidence` on SAF dcvalues, "authority" and
"confidence" in JSON records; `dim` carries them (and the language as the source said it,
`en_US`), every other format shows the value alone with a BCP 47 xml:lang (`en-US`)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import orjson
import pytest
from lxml import etree

from oaipmh_server.ingest.dspace_csv import controlled
from oaipmh_server.record_source import Field
from oaipmh_server.store import pack_fields, unpack_fields
from oaipmh_server.xml import xml_language

from .conftest import SAMPLES, load_into, make_app, refused_problems
from .db import stored_fields
from .oai import tree

ITEM = "10722/9001"
ORCID = "0000-0002-1825-0097"
DIM = "http://www.dspace.org/xmlns/dspace/dim"
DC = "http://purl.org/dc/elements/1.1/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
DATACITE = "http://datacite.org/schema/kernel-4"
# An `-a` export (dc.date.accessioned present) of one item with controlled values: one
# author with an ORCID authority, a `||`-cell of two subjects each with its own authority,
# a language DSpace stores as `en_US`, one as `*`.
EXPORT = (
    "id,collection,dc.contributor.author,dc.subject[en_US],dc.title[en_US],dc.title[*],"
    "dc.identifier.uri,dc.date.accessioned,dc.identifier.issn[en_US]\n"
    f'u-1,10722/5,"Carberry, Josiah::{ORCID}::600",'
    "Cells::kw-1::500||Stem cells::kw-2::0||Plain,A title,Ein Titel,"
    f"http://hdl.handle.net/{ITEM},2020-01-01T00:00:00Z,1234-5678\n"
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, "utf-8")
    return path


def metadata(url: str, prefix: str, local_id: str = ITEM) -> etree._Element:
    client = make_app(url).test_client()  # validates every response against its schemas
    query = (
        f"verb=GetRecord&metadataPrefix={prefix}&identifier=oai:repository.example.org:{local_id}"
    )
    return tree(client.get(f"/oai?{query}")).find(".//{*}metadata")[0]


def dim_fields(url: str, local_id: str = ITEM) -> list[tuple[dict[str, str], str]]:
    return [(dict(f.attrib), f.text or "") for f in metadata(url, "dim", local_id)]


@pytest.fixture
def loaded(empty_database_url: str, tmp_path: Path) -> str:
    load_into(empty_database_url, SAMPLES / "sets.json", write(tmp_path / "export.csv", EXPORT))
    return empty_database_url


# -- reading ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "entry"),
    [
        ("Wang, D", ("dc.x", "Wang, D", None)),
        (f"Wang, D::{ORCID}::600", ("dc.x", "Wang, D", None, ORCID, 600)),
        ("Wang, D::a-key::-1", ("dc.x", "Wang, D", None, "a-key", -1)),
        ("a::b::c::+400", ("dc.x", "a::b", None, "c", 400)),  # the value may hold `::`
        ("Ratio 1::2", ("dc.x", "Ratio 1::2", None)),  # too few parts: a plain value
        ("a::b::high", ("dc.x", "a::b::high", None)),  # no integer last: a plain value
        ("a::b::600::", ("dc.x", "a", None, "b", 600)),  # trailing empty parts dropped (Java)
        ("a::b::99999999999", ("dc.x", "a::b::99999999999", None)),  # not a Java int
    ],
)
def test_a_csv_cell_value_is_read_as_dspace_reads_it(cell: str, entry: tuple) -> None:
    assert controlled("dc.x", cell, None) == entry


def test_csv_authorities_are_kept_beside_the_values(loaded: str) -> None:
    fields = stored_fields(loaded, ITEM)[ITEM]
    assert ["dc.contributor.author", "Carberry, Josiah", None, ORCID, 600] in fields
    subjects = [f for f in fields if f[0] == "dc.subject"]
    assert subjects == [
        ["dc.subject", "Cells", "en_US", "kw-1", 500],
        ["dc.subject", "Stem cells", "en_US", "kw-2", 0],
        ["dc.subject", "Plain", "en_US"],
    ]
    # languages as the export said them
    assert ["dc.title", "A title", "en_US"] in fields
    assert ["dc.title", "Ein Titel", "*"] in fields
    assert ["dc.identifier.issn", "1234-5678", "en_US"] in fields


def test_dim_carries_authority_confidence_and_the_stored_language(loaded: str) -> None:
    fields = dim_fields(loaded)
    assert fields[0] == (
        {"mdschema": "dc", "element": "contributor", "qualifier": "author",
         "authority": ORCID, "confidence": "600"},
        "Carberry, Josiah",
    )  # fmt: skip
    subjects = [f for f in fields if f[0]["element"] == "subject"]
    assert subjects == [
        ({"mdschema": "dc", "element": "subject", "lang": "en_US", "authority": "kw-1",
          "confidence": "500"}, "Cells"),
        # DSpace's "no value" (0) confidence is not shown, the authority is
        ({"mdschema": "dc", "element": "subject", "lang": "en_US", "authority": "kw-2"},
         "Stem cells"),
        ({"mdschema": "dc", "element": "subject", "lang": "en_US"}, "Plain"),
    ]  # fmt: skip
    titles = [f for f in fields if f[0]["element"] == "title"]
    assert titles == [
        ({"mdschema": "dc", "element": "title", "lang": "en_US"}, "A title"),
        ({"mdschema": "dc", "element": "title", "lang": "*"}, "Ein Titel"),
    ]
    # the Brage example: an ISSN the export labelled en_US stays en_US, nothing more
    assert [f for f in fields if f[0].get("qualifier") == "issn"] == [
        ({"mdschema": "dc", "element": "identifier", "qualifier": "issn", "lang": "en_US"},
         "1234-5678"),
    ]  # fmt: skip
    # attribute order as DSpace's dim.xsl writes them
    author = metadata(loaded, "dim")[0]
    assert list(author.attrib) == [
        "mdschema", "element", "qualifier", "authority", "confidence"
    ]  # fmt: skip
    subject = next(f for f in metadata(loaded, "dim") if f.get("element") == "subject")
    assert list(subject.attrib) == ["mdschema", "element", "lang", "authority", "confidence"]


def test_other_formats_show_the_value_alone_with_a_bcp47_language(loaded: str) -> None:
    dc = metadata(loaded, "oai_dc")
    assert [(e.text, e.get(XML_LANG)) for e in dc.iter(f"{{{DC}}}subject")] == [
        ("Cells", "en-US"), ("Stem cells", "en-US"), ("Plain", "en-US"),
    ]  # fmt: skip
    assert [(e.text, e.get(XML_LANG)) for e in dc.iter(f"{{{DC}}}title")] == [
        ("A title", "en-US"), ("Ein Titel", None),  # `*`: no language
    ]  # fmt: skip
    assert [e.text for e in dc.iter(f"{{{DC}}}creator")] == ["Carberry, Josiah"]
    for prefix in ("oai_dc", "qdc", "oai_openaire"):
        document = etree.tostring(metadata(loaded, prefix), encoding="unicode")
        assert "kw-1" not in document and "authority" not in document
        assert "en_US" not in document and 'lang="*"' not in document
        assert 'xml:lang="en-US"' in document
    qdc = metadata(loaded, "qdc")
    assert [(e.text, e.get(XML_LANG)) for e in qdc.iter(f"{{{DC}}}title")] == [
        ("A title", "en-US"), ("Ein Titel", None),
    ]  # fmt: skip


def test_oai_openaire_names_the_orcid_of_an_authority(loaded: str) -> None:
    creator = metadata(loaded, "oai_openaire").find(f".//{{{DATACITE}}}creator")
    assert creator.findtext(f"{{{DATACITE}}}creatorName") == "Carberry, Josiah"
    identifier = creator.find(f"{{{DATACITE}}}nameIdentifier")
    assert identifier.text == f"https://orcid.org/{ORCID}"
    assert identifier.get("nameIdentifierScheme") == "ORCID"


def test_pages_show_the_value_alone_with_a_bcp47_lang(loaded: str) -> None:
    client = make_app(loaded).test_client()
    page = client.get(f"/records/{ITEM}").get_data(as_text=True)
    assert "Carberry, Josiah" in page and ORCID not in page and "kw-1" not in page
    assert 'lang="en-US"' in page and 'lang="en_US"' not in page and 'lang="*"' not in page


def test_a_default_csv_replaces_authorities_like_values(loaded: str, tmp_path: Path) -> None:
    uri = f"http://hdl.handle.net/{ITEM}"
    changed = write(tmp_path / "b.csv", "id,dc.identifier.uri,dc.contributor.author\n"
                    f"u-1,{uri},\"Carberry, Josiah::0000-0001-5109-3700::500\"\n")  # fmt: skip
    assert load_into(loaded, changed).updated == 1
    authors = [f for f in stored_fields(loaded, ITEM)[ITEM] if f[0] == "dc.contributor.author"]
    assert authors == [["dc.contributor.author", "Carberry, Josiah", None,
                        "0000-0001-5109-3700", 500]]  # fmt: skip
    # the same value without an authority: the column's values replace the stored ones
    plain = write(tmp_path / "c.csv", "id,dc.identifier.uri,dc.contributor.author\n"
                  f"u-1,{uri},\"Carberry, Josiah\"\n")  # fmt: skip
    assert load_into(loaded, plain).updated == 1
    authors = [f for f in stored_fields(loaded, ITEM)[ITEM] if f[0] == "dc.contributor.author"]
    assert authors == [["dc.contributor.author", "Carberry, Josiah", None]]
    assert "authority" not in dim_fields(loaded)[0][0]
    # and loaded again, unchanged
    assert load_into(loaded, plain).unchanged == 1


def test_an_authority_alone_changes_the_content_hash(loaded: str, tmp_path: Path) -> None:
    assert load_into(loaded, write(tmp_path / "same.csv", EXPORT)).unchanged == 1
    other = EXPORT.replace("kw-1::500", "kw-9::500")
    assert load_into(loaded, write(tmp_path / "other.csv", other)).updated == 1
    confidence = other.replace("kw-9::500", "kw-9::600")
    assert load_into(loaded, write(tmp_path / "conf.csv", confidence)).updated == 1
    assert dim_fields(loaded)[1][0]["confidence"] == "600"


def saf_item(root: Path, dublin_core: str) -> Path:
    item = root / "export" / "item_000"
    item.mkdir(parents=True)
    (item / "handle").write_text(f"{ITEM}\n", "utf-8")
    (item / "collections").write_text("10722/5\n", "utf-8")
    (item / "dublin_core.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<dublin_core schema="dc">\n'
        '  <dcvalue element="date" qualifier="accessioned">2020-01-01T00:00:00Z</dcvalue>\n'
        f"{dublin_core}</dublin_core>\n",
        "utf-8",
    )
    return root / "export"


def test_saf_authority_attributes(empty_database_url: str, tmp_path: Path) -> None:
    export = saf_item(tmp_path, (
        f'  <dcvalue element="contributor" qualifier="author" authority="{ORCID}" '
        'confidence="600">Carberry, Josiah</dcvalue>\n'
        '  <dcvalue element="title" qualifier="none" language="en_US">A title</dcvalue>\n'
        '  <dcvalue element="subject" language="nb_NO" authority="kw-1">Celler</dcvalue>\n'
    ))  # fmt: skip
    load_into(empty_database_url, export)
    fields = stored_fields(empty_database_url, ITEM)[ITEM]
    assert fields[1:] == [
        ["dc.contributor.author", "Carberry, Josiah", None, ORCID, 600],
        ["dc.title", "A title", "en_US"],
        ["dc.subject", "Celler", "nb_NO", "kw-1", None],
    ]
    assert dim_fields(empty_database_url)[1:] == [
        ({"mdschema": "dc", "element": "contributor", "qualifier": "author",
          "authority": ORCID, "confidence": "600"}, "Carberry, Josiah"),
        ({"mdschema": "dc", "element": "title", "lang": "en_US"}, "A title"),
        ({"mdschema": "dc", "element": "subject", "lang": "nb_NO", "authority": "kw-1"},
         "Celler"),
    ]  # fmt: skip
    dc = metadata(empty_database_url, "oai_dc")
    assert [(e.text, e.get(XML_LANG)) for e in dc.iter(f"{{{DC}}}subject")] == [("Celler", "nb-NO")]


@pytest.mark.parametrize("confidence", ["high", "601", "-2", "6.0", ""])
def test_saf_bad_confidence_names_file_and_line(
    empty_database_url: str, tmp_path: Path, confidence: str
) -> None:
    export = saf_item(tmp_path, (
        '  <dcvalue element="title">A title</dcvalue>\n'
        f'  <dcvalue element="contributor" qualifier="author" authority="a" '
        f'confidence="{confidence}">Carberry, Josiah</dcvalue>\n'
    ))  # fmt: skip
    assert refused_problems(empty_database_url, export) == [
        f"{export / 'item_000'}: record {ITEM}: dublin_core.xml: line 5: dcvalue "
        f"dc.contributor.author: confidence {confidence!r} is not an integer of DSpace's "
        "scale (-1 unset, 0 no value, 100 rejected … 600 accepted)"
    ]
    assert stored_fields(empty_database_url, ITEM) == {}


def json_record(**entry: object) -> dict[str, object]:
    return {
        "id": ITEM,
        "sets": ["col_10722_5"],
        "metadata": [
            {"field": "dc.date.accessioned", "value": "2020-01-01T00:00:00Z"},
            {"field": "dc.title", "value": "A title", "lang": "en_US"},
            {"field": "dc.contributor.author", "value": "Carberry, Josiah", **entry},
        ],
    }


def test_json_authority_and_confidence(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(json_record(authority=ORCID, confidence=600)) + "\n", "utf-8")
    load_into(empty_database_url, path)
    assert stored_fields(empty_database_url, ITEM)[ITEM] == [
        ["dc.date.accessioned", "2020-01-01T00:00:00Z", None],
        ["dc.title", "A title", "en_US"],
        ["dc.contributor.author", "Carberry, Josiah", None, ORCID, 600],
    ]
    assert dim_fields(empty_database_url)[2] == (
        {"mdschema": "dc", "element": "contributor", "qualifier": "author",
         "authority": ORCID, "confidence": "600"},
        "Carberry, Josiah",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"authority": 42}, "authority must be a string, not 42"),
        ({"authority": "a", "confidence": "600"}, "confidence must be an integer of DSpace's "
         "scale (-1 unset, 0 no value, 100 rejected … 600 accepted), not \"600\""),
        ({"authority": "a", "confidence": True}, "confidence must be an integer of DSpace's "
         "scale (-1 unset, 0 no value, 100 rejected … 600 accepted), not true"),
        ({"authority": "a", "confidence": 700}, "confidence must be an integer of DSpace's "
         "scale (-1 unset, 0 no value, 100 rejected … 600 accepted), not 700"),
        ({"confidence": 6.5}, "confidence must be an integer of DSpace's "
         "scale (-1 unset, 0 no value, 100 rejected … 600 accepted), not 6.5"),
    ],
)  # fmt: skip
def test_json_bad_authority_or_confidence_names_file_and_line(
    empty_database_url: str, tmp_path: Path, entry: dict[str, object], reason: str
) -> None:
    path = tmp_path / "records.jsonl"
    good = json_record()
    good["id"] = "10722/1"
    path.write_text(json.dumps(good) + "\n" + json.dumps(json_record(**entry)) + "\n", "utf-8")
    assert refused_problems(empty_database_url, path) == [
        f"{path}:2: record {ITEM}: metadata entry 3 (dc.contributor.author): {reason}"
    ]
    assert stored_fields(empty_database_url, ITEM, "10722/1") == {}


def test_json_unknown_entry_key_is_still_refused(empty_database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    path.write_text(json.dumps(json_record(authority="a", authorty="b")), "utf-8")
    assert refused_problems(empty_database_url, path) == [
        f'{path}:1: record {ITEM}: metadata entry 3: unknown key(s) "authorty"'
    ]


def test_csv_bad_confidence_names_file_and_line(empty_database_url: str, tmp_path: Path) -> None:
    export = write(tmp_path / "export.csv", EXPORT.replace("kw-1::500", "kw-1::900"))
    assert refused_problems(empty_database_url, export) == [
        f"{export}:2: record {ITEM}: metadata entry 2 (dc.subject): confidence must be an "
        "integer of DSpace's scale (-1 unset, 0 no value, 100 rejected … 600 accepted), not 900"
    ]


# -- storing ---------------------------------------------------------------------------------


def test_fields_without_authorities_are_stored_as_before() -> None:
    fields = [Field("dc.title", "A title", "en_US"), Field("dc.subject", "x")]
    stored = orjson.loads(zlib.decompress(pack_fields(fields)))
    assert stored == [["dc.title", "A title", "en_US"], ["dc.subject", "x", None]]
    controlled_fields = [*fields, Field("dc.contributor.author", "C, J", None, ORCID, 600)]
    stored = orjson.loads(zlib.decompress(pack_fields(controlled_fields)))
    assert stored[2] == ["dc.contributor.author", "C, J", None, ORCID, 600]
    assert unpack_fields(pack_fields(controlled_fields)) == tuple(controlled_fields)
    # rows written before authorities were kept (and before compression) read as they were
    old = orjson.dumps([["dc.title", "A title", "en-US"]])
    assert unpack_fields(old) == (Field("dc.title", "A title", "en-US", None, None),)
    assert unpack_fields(old.decode()) == unpack_fields(zlib.compress(old))


@pytest.mark.parametrize(
    ("stored", "tag"),
    [("en_US", "en-US"), ("en-US", "en-US"), ("eng", "eng"), ("nb_NO", "nb-NO"), ("*", None),
     ("none", None), ("", None), (None, None), ("not a language", None)],
)  # fmt: skip
def test_xml_language_of_a_stored_code(stored: str | None, tag: str | None) -> None:
    assert xml_language(stored) == tag


def test_dim_fragments_of_an_earlier_rendering_are_not_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dim's version names its rendering, so a fragment stored by the one before
    authorities (RENDERING 1) is rendered afresh from the fields, never served."""
    from oaipmh_server.config import load_settings
    from oaipmh_server.formats import build_formats, dim

    settings = load_settings(environ={})
    now = build_formats(settings)["dim"].version
    monkeypatch.setattr(dim, "RENDERING", dim.RENDERING - 1)
    assert build_formats(settings)["dim"].version != now
