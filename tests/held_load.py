"""`oaipmh-server ARGS...`, with a load held at a known moment, for tests that act while a
load is under way (kill it, read the store) instead of sleeping and hoping it is there.

    python tests/held_load.py N load FILE...

runs the command as `oaipmh-server` would, but once the load has taken its first N records
(and written every full batch of them in its transaction, uncommitted), it prints one line,
`holding`, on stdout and waits until its stdin is closed; then the load goes on. It holds
the load by wrapping `ingest.load.read_items`, the iterator the load takes its records from,
in this process only: the server's code is not changed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from oaipmh_server.cli import main
from oaipmh_server.ingest import load

HOLDING = "holding"


def hold_after(count: int) -> None:
    read_items = load.read_items

    def held(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for number, item in enumerate(read_items(*args, **kwargs), start=1):
            yield item
            if number == count:  # the load has taken this record and asks for the next
                print(HOLDING, flush=True)
                sys.stdin.read()

    load.read_items = held


if __name__ == "__main__":
    hold_after(int(sys.argv[1]))
    main(args=sys.argv[2:], prog_name="oaipmh-server")
