"""Write a generated DSpace export of N items, as DSpace's own tools write it.

The items are generate.py's records (the seed item's 44 values, own handles, titles,
accessioned dates), all live (an export holds no tombstones), in generate.py's 8
collections of 4 communities:

- `saf/`: a Simple Archive Format export (`dspace export -t COLLECTION`): the structure
  export `structure.xml` (`dspace structure-builder -x`: the communities and collections,
  nested), and one folder per item holding `dublin_core.xml`, `metadata_dcterms.xml`
  (every fourth item: a value of another schema), `handle`, `collections`, the bitstreams
  and the `contents` file listing them. DSpace's ItemExportServiceImpl writes one
  `contents` line per bitstream: its name, a tab, `bundle:NAME`, then `\tprimary:true `
  (with that trailing space) for a bundle's primary bitstream and `\tdescription:TEXT` when
  it has one; a name holding `/` is written into a sub-folder. Every item has a small PDF
  (ORIGINAL, primary) and DSpace's deposit licence (LICENSE); every fifth item a
  supplement in a sub-folder (`data/table 1.csv`, with a description); every tenth a
  restricted file, with the `permissions:-r 'GROUP'` field DSpace's import reads.
- `metadata-export.csv`: a default `dspace metadata-export` CSV of the same items (no -a:
  no dc.date.accessioned, dc.date.available, dc.description.provenance), columns sorted
  as DSpace's DSpaceCSV sorts them after `id` and `collection`, `||` between values, lines
  ending in LF, with two columns changed in every row (a revised title, one more subject):
  merged over a store of the SAF items, every record changes.

Memory does not grow with N.

    python3 benchmarks/dspace_export.py 100000 /tmp/export
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import uuid
from pathlib import Path
from xml.sax.saxutils import escape

from generate import SEED, TREE, metadata

# Left out of a default export (DSpace's bulkedit.ignore-on-export).
NOT_EXPORTED = ("dc.date.accessioned", "dc.date.available", "dc.description.provenance")
LICENSE = (
    b"A generated deposit licence: the depositor grants the repository the right to serve it.\n"
)


def handle(i: int) -> str:
    return f"10722/{1_000_000 + i}"


def item_uuid(i: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"http://hdl.handle.net/{handle(i)}"))


def collection(i: int) -> str:
    """The item's collection handle (generate.py's collection of record i)."""
    return TREE[i % len(TREE)][1].removeprefix("col_").replace("_", "/")


def structure_xml() -> str:
    """The communities and collections as `structure-builder -x` writes them."""
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<import_structure>"]
    for community in dict.fromkeys(c for c, _ in TREE):
        lines.append(f'  <community identifier="{community[4:].replace("_", "/")}">')
        lines.append(f"    <name>Community {community}</name>")
        lines.append("    <description/>")
        for c, col in TREE:
            if c == community:
                lines.append(f'    <collection identifier="{col[4:].replace("_", "/")}">')
                lines.append(f"      <name>Collection {col}</name>")
                lines.append("      <description/>")
                lines.append("    </collection>")
        lines.append("  </community>")
    lines.append("</import_structure>")
    return "\n".join(lines) + "\n"


def _dublin_core(schema: str, values: list[tuple[str, str]]) -> str:
    """dublin_core.xml / metadata_<schema>.xml as ItemExportServiceImpl writes them."""
    out = ["<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>",
           f'<dublin_core schema="{schema}">']  # fmt: skip
    for field, value in values:
        parts = field.split(".")
        qualifier = parts[2] if len(parts) > 2 else "none"
        out.append(f'  <dcvalue element="{parts[1]}" qualifier="{qualifier}">'
                   f"{escape(value)}</dcvalue>")  # fmt: skip
    out.append("</dublin_core>")
    return "\n".join(out) + "\n"


def _pdf(i: int) -> bytes:
    """A small PDF-looking file, its bytes different per item (so are their checksums)."""
    body = f"%PDF-1.4\n% item {handle(i)}\n" + "0123456789abcdef" * 64 + "\n%%EOF\n"
    return body.encode()


def write_item(folder: Path, i: int, seed: list[dict[str, str]]) -> None:
    folder.mkdir(parents=True)
    values = [(e["field"], e["value"]) for e in metadata(seed, i)]
    (folder / "dublin_core.xml").write_text(_dublin_core("dc", values), "utf-8")
    if i % 4 == 0:
        other = [("dcterms.accessRights", "open access"), ("dcterms.license", "CC BY 4.0")]
        (folder / "metadata_dcterms.xml").write_text(_dublin_core("dcterms", other), "utf-8")
    (folder / "handle").write_text(handle(i) + "\n", "utf-8")
    (folder / "collections").write_text(collection(i) + "\n", "utf-8")
    contents = ["article.pdf\tbundle:ORIGINAL\tprimary:true "]
    (folder / "article.pdf").write_bytes(_pdf(i))
    if i % 5 == 0:
        (folder / "data").mkdir()
        (folder / "data" / "table 1.csv").write_text(f"item,value\n{handle(i)},{i}\n", "utf-8")
        contents.append("data/table 1.csv\tbundle:ORIGINAL\tdescription:Supplementary data")
    if i % 10 == 0:
        (folder / "review.pdf").write_bytes(_pdf(i)[::-1])
        contents.append("review.pdf\tbundle:ORIGINAL\tpermissions:-r 'Staff'")
    (folder / "license.txt").write_bytes(LICENSE)
    contents.append("license.txt\tbundle:LICENSE")
    (folder / "contents").write_text("\n".join(contents) + "\n", "utf-8")


def write_saf(count: int, folder: Path) -> None:
    seed = json.loads(SEED.read_text("utf-8"))["metadata"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "structure.xml").write_text(structure_xml(), "utf-8")
    for i in range(count):
        write_item(folder / f"item_{i:07d}", i, seed)


def write_csv(count: int, path: Path) -> None:
    """The default metadata-export CSV of the same items, two columns changed per row."""
    seed = json.loads(SEED.read_text("utf-8"))["metadata"]
    fields = sorted({e["field"] for e in seed} - set(NOT_EXPORTED))
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")  # DSpaceCSV ends lines so
        writer.writerow(["id", "collection", *fields])
        for i in range(count):
            cells: dict[str, list[str]] = {f: [] for f in fields}
            for entry in metadata(seed, i):
                if entry["field"] in cells:
                    cells[entry["field"]].append(entry["value"])
            cells["dc.title"] = [cells["dc.title"][0] + " (revised)"]
            cells["dc.subject"].append(f"Subject {hashlib.md5(str(i).encode()).hexdigest()[:6]}")
            writer.writerow([item_uuid(i), collection(i), *("||".join(cells[f]) for f in fields)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path, help="a new folder: saf/ and metadata-export.csv")
    arguments = parser.parse_args()
    write_saf(arguments.count, arguments.out / "saf")
    write_csv(arguments.count, arguments.out / "metadata-export.csv")


if __name__ == "__main__":
    main()
