"""Write N seed-shaped records as JSON Lines, deterministically.

Each record has the seed item's shape (44 qualified-DC values: 14 authors, a ~1,500
character abstract, identifiers, subjects, the staff e-mail), with its own id, handle URI,
title (with XML-special characters) and accessioned date; 50 records share each second;
2 % are bare tombstones; 8 hierarchical sets in turn. Memory does not grow with N.

    python3 benchmarks/generate.py 100000 /tmp/records.jsonl
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = Path(__file__).resolve().parent.parent / "sample_records" / "10722_212116.json"
SETS = [f"com_10722_{c}:col_10722_{c * 10 + k}" for c in range(1, 5) for k in range(2)]
START = datetime(2010, 1, 1, tzinfo=UTC)


def records(count: int):  # type: ignore[no-untyped-def]
    seed = json.loads(SEED.read_text("utf-8"))["metadata"]
    for i in range(count):
        local_id = f"10722/{1_000_000 + i}"
        sets = [SETS[i % len(SETS)]]
        if i % 50 == 7:
            yield {"id": local_id, "sets": sets, "deleted": True}
            continue
        stamp = (START + timedelta(seconds=(i // 50) * 97)).strftime("%Y-%m-%dT%H:%M:%SZ")
        metadata = []
        for entry in seed:
            field, value = entry["field"], entry["value"]
            if field in ("dc.date.accessioned", "dc.date.available"):
                value = stamp
            elif field == "dc.identifier.uri":
                value = f"http://hdl.handle.net/{local_id}"
            elif field == "dc.title":
                value = f"{value} <no. {i}> & “more”"
            metadata.append({"field": field, "value": value})
        yield {"id": local_id, "sets": sets, "metadata": metadata}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int)
    parser.add_argument("out", type=Path)
    arguments = parser.parse_args()
    with arguments.out.open("w", encoding="utf-8") as out:
        for record in records(arguments.count):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
