"""Small readers of OAI-PMH responses, so tests read like the specification."""

from __future__ import annotations

from typing import Any

from lxml import etree

from . import xsd

NS = {
    "oai": "http://www.openarchives.org/OAI/2.0/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "id": "http://www.openarchives.org/OAI/2.0/oai-identifier",
}


def tree(response: Any) -> etree._Element:
    assert response.status_code == 200, response.data[:300]
    assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
    return xsd.validate(response.data)


def error_codes(response: Any) -> list[str]:
    return [e.get("code") for e in tree(response).iterfind("oai:error", NS)]


def request_attributes(response: Any) -> dict[str, str]:
    return dict(tree(response).find("oai:request", NS).attrib)


def identifiers(root: etree._Element) -> list[str]:
    return [e.text for e in root.iterfind(".//oai:header/oai:identifier", NS)]


def token(root: etree._Element) -> etree._Element | None:
    return root.find(".//oai:resumptionToken", NS)


def harvest(client: Any, verb: str, **arguments: str) -> tuple[list[etree._Element], list[Any]]:
    """Follow resumption tokens to the end; return every page's root and token element."""
    pages, tokens = [], []
    query: dict[str, str] = {"verb": verb, **arguments}
    while True:
        root = tree(client.get("/oai", query_string=query))
        assert root.find("oai:error", NS) is None, etree.tostring(root)
        pages.append(root)
        element = token(root)
        tokens.append(element)
        if element is None or not element.text:
            return pages, tokens
        query = {"verb": verb, "resumptionToken": element.text}
