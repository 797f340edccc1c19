"""oai_dc fragments joined from elements rendered before are the bytes lxml writes for the
record built whole, whatever the values, and however full the remembered elements are."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import pytest
from lxml import etree

from oaipmh_server.config import load_settings
from oaipmh_server.crosswalk import Crosswalk
from oaipmh_server.files import LinkedFile
from oaipmh_server.formats import oai_dc
from oaipmh_server.record_source import Field, File
from oaipmh_server.xml import XML_LANG, xml_language

NAMES = [
    "dc.title", "dc.contributor.author", "dc.subject", "dc.type", "dc.language.iso",
    "dc.identifier.uri", "dc.date.issued", "dc.description.abstract", "dc.publisher",
    "dc.rights", "dc.identifier.email", "dc.description.provenance", "local.unmapped",
]  # fmt: skip
LANGS = [None, "", "en", "en_US", "*", "fr-CA", "eng", "not a tag!"]
# Values that recur, values with what XML escapes, and what looks like markup.
COMMON = [
    "Physics", "Article", "en", "Elsevier", "Smith, J.", "", " ", "a & b", "x < y > z",
    "<dc:title>not an element</dc:title>", '"quoted" \'single\'', "]]>", "tab\there",
    "line\nbreak\r\nend", "naïve café 東京 😀", "&amp; already", "<dc:", "</dc:x>",
]  # fmt: skip


@pytest.fixture(scope="module")
def crosswalk() -> Crosswalk:
    return Crosswalk.from_settings(load_settings(environ={}))


def whole(crosswalk: Crosswalk, fields: Sequence[Field], files: Sequence[LinkedFile]) -> bytes:
    """The fragment as lxml builds it in one tree, element by element."""
    root = etree.Element(oai_dc._ROOT, oai_dc._ROOT_ATTRIBUTES, nsmap=oai_dc._NSMAP)
    for name, value, lang, _, _ in fields:
        element = crosswalk.element_for(name)
        if element is None:
            continue
        language = xml_language(lang) if lang else None
        attributes = {XML_LANG: language} if language else {}
        etree.SubElement(root, oai_dc._TAGS[element], attributes).text = value
    for linked in files:
        etree.SubElement(root, oai_dc._FORMAT).text = linked.file.mime
    return etree.tostring(root, encoding="UTF-8")


def records(seed: int, count: int) -> Iterator[tuple[list[Field], list[LinkedFile]]]:
    chosen = random.Random(seed)
    for n in range(count):
        fields = []
        for _ in range(chosen.randrange(0, 30)):
            value = chosen.choice(COMMON)
            if chosen.random() < 0.4:  # its own value, sometimes longer than those kept
                value = f"{value} {n} " + "long " * chosen.choice([0, 1, 60])
            fields.append(Field(chosen.choice(NAMES), value, chosen.choice(LANGS), None, None))
        mimes = ["application/pdf", "text/plain", "application/x-a&b"]
        files = [
            LinkedFile(File(f"f{s}.pdf", "ORIGINAL", 10, "0" * 32, chosen.choice(mimes), s), None)
            for s in range(chosen.choice([0, 0, 1, 3]))
        ]
        yield fields, files


def test_joined_fragments_are_lxmls_whole_tree(crosswalk: Crosswalk) -> None:
    oai_dc._ELEMENTS.clear()
    for fields, files in records(1, 400):
        for _ in range(2):  # first with the record's elements new, then remembered
            assert oai_dc.render(fields, crosswalk, files) == whole(crosswalk, fields, files)
    assert oai_dc._ELEMENTS  # the recurring values were remembered


def test_a_record_of_nothing_oai_dc_shows(crosswalk: Crosswalk) -> None:
    private = [Field("dc.identifier.email", "a@b.c", None, None, None)]
    assert oai_dc.render(private, crosswalk) == whole(crosswalk, private, [])
    assert oai_dc.render([], crosswalk).endswith(b"/>")


def test_remembered_elements_stay_bounded(
    crosswalk: Crosswalk, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(oai_dc, "MAX_ELEMENTS", 50)
    oai_dc._ELEMENTS.clear()
    for fields, files in records(2, 300):
        assert oai_dc.render(fields, crosswalk, files) == whole(crosswalk, fields, files)
        assert len(oai_dc._ELEMENTS) <= 50
    assert all(len(value) <= oai_dc.MAX_KEPT_LENGTH for _, value, _ in oai_dc._ELEMENTS)
