"""Write N seed-shaped records as JSON Lines, deterministically.

Each record has the seed item's shape (44 qualified-DC values: 14 authors, a ~1,500
character abstract, identifiers, subjects, the staff e-mail), with its own id, handle URI,
title (with XML-special characters) and accessioned date; 50 records share each second;
2 % are bare tombstones; 8 collections in turn, two in each of 4 communities: DSpace's
flat specs (col_10722_10, its communities from the sets file `sets_file()` writes), or
with `hierarchical=True` hierarchical specs (com_10722_1:col_10722_10). Memory does not
grow with N.

    python3 benchmarks/generate.py 100000 /tmp/records.jsonl [--hierarchical]
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "sample_records" / "10722_212116.json"
TREE = [(f"com_10722_{c}", f"col_10722_{c * 10 + k}") for c in range(1, 5) for k in range(2)]
SETS = [f"{community}:{collection}" for community, collection in TREE]
FLAT_SETS = [collection for _, collection in TREE]
START = datetime(2010, 1, 1, tzinfo=UTC)


def sets_file(path: Path) -> None:
    """The sets file placing the flat collections in their communities."""
    sets = []
    for community in dict.fromkeys(c for c, _ in TREE):
        sets.append({"spec": community, "name": f"Community {community}"})
        sets += [{"spec": col, "name": f"Collection {col}", "parent": community}
                 for c, col in TREE if c == community]  # fmt: skip
    path.write_text(json.dumps({"sets": sets}), "utf-8")


def records(count: int, hierarchical: bool = False):  # type: ignore[no-untyped-def]
    seed = json.loads(SEED.read_text("utf-8"))["metadata"]
    specs = SETS if hierarchical else FLAT_SETS
    for i in range(count):
        local_id = f"10722/{1_000_000 + i}"
        sets = [specs[i % len(specs)]]
        if i % 50 == 7:
            yield {"id": local_id, "sets": sets, "deleted": True}
            continue
        yield {"id": local_id, "sets": sets, "metadata": metadata(seed, i)}


def metadata(seed: list[dict[str, str]], i: int) -> list[dict[str, str]]:
    """Record i's values: the seed's, with its own accessioned date, handle and title."""
    stamp = (START + timedelta(seconds=(i // 50) * 97)).strftime("%Y-%m-%dT%H:%M:%SZ")
    values = []
    for entry in seed:
        field, value = entry["field"], entry["value"]
        if field in ("dc.date.accessioned", "dc.date.available"):
            value = stamp
        elif field == "dc.identifier.uri":
            value = f"http://hdl.handle.net/10722/{1_000_000 + i}"
        elif field == "dc.title":
            value = f"{value} <no. {i}> & “more”"
        values.append({"field": field, "value": value})
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--hierarchical", action="store_true", help="hierarchical set specs")
    arguments = parser.parse_args()
    if not arguments.hierarchical:
        sets_file(arguments.out.parent / "sets.json")
    with arguments.out.open("w", encoding="utf-8") as out:
        for record in records(arguments.count, arguments.hierarchical):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
