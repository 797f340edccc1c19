"""DSpace's structure export, `dspace structure-builder -x -o structure.xml`: the
repository's communities and collections, nested as they are in DSpace.

    <import_structure>
      <community identifier="10722/1">
        <name>Faculty of Medicine</name>
        <description>…</description> <intro/> <copyright/> <sidebar/>
        <community identifier="10722/4"> … </community>
        <collection identifier="10722/5"> <name>…</name> <description/> … </collection>
      </community>
    </import_structure>

Each community and collection becomes a set, named as DSpace names it (com_<handle>,
col_<handle>, "/" → "_"), with its name and its description (DSpace's short description,
dc.description.abstract), and its parent: the community it sits in. Parents come before
their children, so a load knows the tree before any record of it. `intro`, `copyright`,
`sidebar`, `license` and `provenance` are DSpace's pages, not OAI-PMH's, and are not kept.
DSpace's export (StructBuilder.exportStructure) writes each community and collection once,
under the community it is in, and nothing inside a collection but its name and pages; so a
handle given twice, or a community or collection inside a collection, is refused naming
both places: a set silently moved to the second place, or a nesting skipped, would serve
records where DSpace does not. Every DSpace collection is in a community, so the export
holds only communities directly under its root (and DSpace's import reads only those: a
collection there is not created): a collection there is refused too. One repeat is
DSpace's own: a collection it maps into a second community, written the same under both.
A set here has one parent, so the collection stays in the first, and the load warns,
naming both (refusing it would refuse a DSpace site's export as it is).
The document that `structure-builder -f` imports has the same shape without identifiers:
it names no set, so it is refused. A name or description is read whole, as a SAF
`dcvalue` is (export_xml.py), and a DOCTYPE is refused. Problems name the file and line.

An identifier is a handle as DSpace writes it (`10722/5`), or a handle URL as its own
structure-builder tests write them (`https://hdl.handle.net/10722/5`,
`https://repo.example.org/handle/10722/5`): all three name the same set. Anything else
(a URN, another URL) is refused naming it: a spec made of it would be a URL's scheme
(`com_https`) with the rest of it a set nested inside.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from lxml import etree

from ..errors import LoadError, escaped, quoted
from .drafts import SetDefinition, Source, make_set
from .dspace_csv import HANDLE, HANDLE_ID
from .export_xml import DOCTYPE, has_doctype, parse, whole_text

# The root of an export (`-x`), and of the annotated copy an import writes (`-o`).
ROOTS = frozenset({"import_structure", "imported_structure"})
PREFIXES = {"community": "com_", "collection": "col_"}
# DSpace's own form, PREFIX/SUFFIX; `:` would split the spec made of it into two sets.
PLAIN_HANDLE = re.compile(HANDLE_ID)


def is_structure_file(path: Path) -> bool:
    """Whether `path` is a structure export: an .xml file whose root element is
    DSpace's (read up to the root's start tag, not further). The parser recovers from
    what is wrong after that tag but in the piece of the file it read with it (a byte
    not UTF-8 in a name): read_structure_file names that at its line, rather than the
    file being "not a structure export"."""
    if path.suffix != ".xml" or not path.is_file():
        return False
    try:
        return _root_tag(path, recover=True) in ROOTS
    except (etree.XMLSyntaxError, OSError):
        return False


def unreadable_root(path: Path) -> LoadError | None:
    """For an .xml file that is not a structure export (`is_structure_file`): the problem
    if its root element cannot be read (a broken declaration, a start tag cut short, which
    the recovering parser would make an element of, no XML at all), not well-formed XML at
    its line and in lxml's words, as read_structure_file names a syntax error further on.
    An .xml given to a load is meant to be a structure export: "not a … file" would leave
    the operator looking for their mistake. None for a file whose root can be read (another
    document, such as a SAF item's dublin_core.xml: not a file a load reads)."""
    if path.suffix != ".xml" or not path.is_file():
        return None
    try:
        _root_tag(path, recover=False)
    except etree.XMLSyntaxError as e:
        return LoadError.at(str(path), e.lineno or None, f"not well-formed XML: {e.msg}")
    except OSError:
        return None  # said where the file is read
    return None


def _root_tag(path: Path, *, recover: bool) -> str | None:
    """The tag of the file's root element, reading no further than its start tag."""
    with path.open("rb") as stream:
        for _, element in etree.iterparse(
            stream, events=("start",), resolve_entities=False, no_network=True, recover=recover
        ):
            return str(element.tag)
    return None


def set_spec(kind: str, handle: str) -> str:
    """DSpace's set spec of a community or collection: `10722/5` → `col_10722_5`."""
    return PREFIXES[kind] + handle.strip().replace("/", "_")


def handle_in(identifier: str) -> str | None:
    """The handle an identifier names (`10722/5`, `https://hdl.handle.net/10722/5`,
    `…/handle/10722/5`), or None for anything else."""
    if PLAIN_HANDLE.fullmatch(identifier):
        handle = identifier
    elif identifier.lower().startswith(("http://", "https://")) and (
        found := HANDLE.search(identifier)
    ):
        handle = found.group(1)
    else:
        return None
    return None if ":" in handle else handle


def read_structure_file(
    path: Path,
    *,
    require_accessioned: bool = True,
    limits: object = None,
    warnings: list[str] | None = None,
) -> Iterator[SetDefinition | LoadError]:
    """The export's sets, parents first, and its problems; what the load should be told
    (a collection in two communities) is added to `warnings`."""
    name = str(path)
    try:
        document = parse(path)
    except etree.XMLSyntaxError as e:
        yield LoadError.at(name, e.lineno, f"not well-formed XML: {e.msg}")
        return
    except OSError as e:
        yield LoadError.unreadable(name, e)
        return
    if has_doctype(document):
        yield LoadError.at(name, None, DOCTYPE)
        return
    root = document.getroot()
    if root.tag not in ROOTS:
        yield LoadError.at(name, _line(root), f"the root element is <{root.tag}>, "
                           "not DSpace's <import_structure>")  # fmt: skip
        return
    yield from _children(name, root, None, {}, [] if warnings is None else warnings)


class _First(NamedTuple):
    """A handle's first place in the export."""

    kind: str
    line: int | None
    parent: str | None  # its parent's spec
    name: str


def _children(
    name: str, element: etree._Element, parent: str | None, seen: dict[str, _First],
    warnings: list[str],
) -> Iterator[SetDefinition | LoadError]:  # fmt: skip
    for child in element:
        if child.tag not in PREFIXES:
            continue
        kind, line = str(child.tag), _line(child)
        if element.tag == "collection":
            reason = (f"<{kind}> {_named(child)} is inside <collection> {_named(element)} (line "
                      f"{_line(element)}): a collection holds items, never a community or "
                      "collection; a broken export")  # fmt: skip
            yield LoadError.at(name, line, reason)
            continue
        if kind == "collection" and parent is None:
            reason = (f"<collection> {_named(child)} is directly under <{element.tag}>, in no "
                      "community: DSpace puts every collection in one, and its structure "
                      "export writes only communities there; a broken export")  # fmt: skip
            yield LoadError.at(name, line, reason)
            continue
        identifier = (child.get("identifier") or "").strip()
        if not identifier:
            reason = (f"a <{kind}> without an identifier (its handle): load the export "
                      "(structure-builder -x), not an import document")  # fmt: skip
            yield LoadError.at(name, line, reason)
            continue
        handle = handle_in(identifier)
        if handle is None:
            reason = (f"<{kind}> identifier {quoted(identifier)} is not a handle: DSpace "
                      "writes PREFIX/SUFFIX (10722/5) or a handle URL "
                      "(https://hdl.handle.net/10722/5, …/handle/10722/5)")  # fmt: skip
            yield LoadError.at(name, line, reason)
            continue
        try:
            title = _text(child, "name", f"<{kind}> {handle}")
        except ValueError as e:
            yield LoadError.at(name, line, str(e))
            continue
        first = seen.get(handle)
        if first is not None:
            mapped = kind == first.kind == "collection" and parent != first.parent
            if mapped and title == first.name:
                warnings.append(_mapped(name, line, handle, parent, first))
            else:
                yield LoadError.at(name, line, _twice(kind, handle, parent, title, first))
            continue
        seen[handle] = _First(kind, line, parent, title)
        spec = set_spec(kind, handle)
        try:
            entry = {
                "spec": spec,
                "name": title,
                "description": _text(child, "description", f"<{kind}> {handle}") or None,
                "parent": parent,
            }
            definition = make_set(Source(name, line), entry)
        except ValueError as e:
            yield LoadError.at(name, line, str(e))
            continue
        except LoadError as e:
            yield e
            continue
        yield definition
        yield from _children(name, child, spec, seen, warnings)


def _mapped(name: str, line: int | None, handle: str, parent: str | None, first: _First) -> str:
    """The warning for a collection DSpace maps into a second community."""
    return (f"{escaped(name)}:{line}: <collection> {handle} is in two communities, "
            f"{first.parent} (line {first.line}) and {parent}: a set here has one parent, so "
            f"its records are served in {first.parent} and not in {parent}")  # fmt: skip


def _twice(kind: str, handle: str, parent: str | None, title: str, first: _First) -> str:
    """Why a handle given a second time is refused: an export DSpace would not write."""
    said = f"<{kind}> {handle} is given twice (first at line {first.line}"
    if kind == first.kind == "collection" and parent != first.parent:
        return (f"{said}, named {quoted(first.name)}), here named {quoted(title)}: "
                "DSpace writes a collection in two communities the same in both; a broken "
                "export")  # fmt: skip
    return (f"{said}, a <{first.kind}>): DSpace gives a handle to one community or "
            "collection; a broken export")  # fmt: skip


def _named(element: etree._Element) -> str:
    """An element's handle as a message names it: the handle, else its identifier as
    given (quoted), else that it has none, with its name if it has one."""
    identifier = (element.get("identifier") or "").strip()
    handle = handle_in(identifier)
    if handle is not None:
        return handle
    if identifier:
        return quoted(identifier)
    try:
        title = _text(element, "name", "it")
    except ValueError:  # a name that cannot be read (an entity): refused where it is read
        title = ""
    return f"(no identifier, named {quoted(title)})" if title else "(no identifier)"


def _text(element: etree._Element, tag: str, what: str) -> str:
    """The whole text of `element`'s first `tag` child, stripped ("" for none)."""
    found = element.find(tag)
    return "" if found is None else whole_text(found, f"the {tag} of {what}").strip()


def _line(element: etree._Element) -> int | None:
    line = element.sourceline
    return line if isinstance(line, int) else None
