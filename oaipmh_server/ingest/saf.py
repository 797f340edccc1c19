"""DSpace Simple Archive Format: an export folder of item folders, each with
`dublin_core.xml`, optional `metadata_<schema>.xml`, `handle` and `collections`.

The item's handle is its local id; its collections (handles such as `10722/5`) become set
specs the DSpace way (`col_10722_5`). Problems name the item folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from lxml import etree

from ..errors import LoadError
from .drafts import Source, draft_or_error
from .json import Item

DUBLIN_CORE = "dublin_core.xml"


def is_item_folder(folder: Path) -> bool:
    return (folder / DUBLIN_CORE).is_file()


def collection_spec(handle: str) -> str:
    """DSpace names a collection's set after its handle, only "/" replaced (a setSpec may
    hold "."): `10722/5` → `col_10722_5`, `20.500.12801/3` → `col_20.500.12801_3`."""
    return "col_" + handle.strip().replace("/", "_")


def read_saf_item(folder: Path, *, require_accessioned: bool) -> Iterator[Item]:
    name = str(folder)
    handle_file = folder / "handle"
    local_id = handle_file.read_text("utf-8").strip() if handle_file.is_file() else None
    if not local_id:
        yield LoadError(name, None, None, "no handle file: the handle is the record's id")
        return
    fields: list[tuple[str, str, str | None]] = []
    files = [folder / DUBLIN_CORE, *sorted(folder.glob("metadata_*.xml"))]
    for path in files:
        try:
            fields += _values(path)
        except (etree.XMLSyntaxError, ValueError, OSError) as e:
            line = getattr(e, "lineno", None)
            where = f"{path.name}:{line}" if line else path.name
            yield LoadError(name, None, local_id, f"{where}: {e}")
            return
    collections = folder / "collections"
    sets = []
    if collections.is_file():
        sets = [collection_spec(h) for h in collections.read_text("utf-8").split() if h.strip()]
    yield draft_or_error(
        Source(name, None), local_id, sets, False, fields, require_accessioned=require_accessioned
    )


def _values(path: Path) -> list[tuple[str, str, str | None]]:
    """(field, value, language) of one dublin_core.xml or metadata_<schema>.xml, in order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.parse(str(path), parser).getroot()
    if root.tag != "dublin_core":
        raise ValueError(f"the root element is <{root.tag}>, not <dublin_core>")
    schema = root.get("schema", "dc")
    values = []
    for value in root.iter("dcvalue"):
        element = value.get("element")
        if not element:
            raise ValueError(f"line {value.sourceline}: a dcvalue without element")
        qualifier = value.get("qualifier")
        field = f"{schema}.{element}"
        if qualifier and qualifier != "none":
            field += f".{qualifier}"
        values.append((field, value.text or "", value.get("language")))
    return values
