"""The `harvests` command: the harvest report of the server's access logs."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from typing import IO

import click

from ..harvest_report import as_json, as_table, merged, report


@click.command()
@click.option(
    "--format", "output", type=click.Choice(["table", "json"]), default="table",
    show_default=True, help="A table to read, or JSON for programs.",
)  # fmt: skip
@click.option(
    "--quiet-minutes", type=click.IntRange(min=1), default=60, show_default=True,
    help="A list with no request for this long is counted as stopped.",
)  # fmt: skip
@click.argument("logfiles", nargs=-1, type=click.Path(exists=True, dir_okay=False))
def harvests(output: str, quiet_minutes: int, logfiles: tuple[str, ...]) -> None:
    """Who harvests the repository, and whether each list harvest got every page.

    Reads the server's JSON access lines from LOGFILES (gzip-compressed ones too; several
    servers' logs are merged by time), or from standard input, e.g.
    `journalctl -u oaipmh-server --since yesterday | oaipmh-server harvests`.
    """
    with ExitStack() as files:
        streams = [_lines(files.enter_context(_open(path))) for path in logfiles]
        if not streams:
            # "-" is standard input, kept open (click.get_text_stream is deprecated).
            stdin = click.open_file("-", encoding="utf-8", errors="replace")
            streams = [_lines(files.enter_context(stdin))]
        try:
            harvesters = report(merged(streams), timedelta(minutes=quiet_minutes))
        except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:  # zlib: damaged inside
            raise click.ClickException(f"cannot read the log: {e}") from None
    if output == "json":
        for piece in as_json(harvesters):
            click.echo(piece, nl=False)
        click.echo()
    else:
        for line in as_table(harvesters):
            click.echo(line)


def _open(path: str) -> IO[str]:
    """A log file as text; gzip-compressed when it starts with gzip's magic bytes."""
    try:
        with open(path, "rb") as probe:
            compressed = probe.read(2) == b"\x1f\x8b"
        if compressed:
            return gzip.open(path, "rt", encoding="utf-8", errors="replace")
        return open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from None


def _lines(stream: IO[str]) -> Iterator[str]:
    yield from stream
