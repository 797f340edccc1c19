"""The commands that write records: load, refresh-sets and delete."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

import click

from ..errors import CannotWrite, LoadBusy, LoadFailed, StoreUnavailable
from .opening import open_store, read_settings


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on standard error (default: when it is a terminal).",
)
@click.option(
    "--wait/--no-wait",
    default=None,
    help="While another load runs: wait for it, or stop at once (default: [load] wait).",
)
@click.option(
    "--sync",
    is_flag=True,
    help="The paths are the whole repository: every stored record they do not hold is "
    "withdrawn (a tombstone dated by the load), unless more than [load] sync_max_deleted "
    "percent of the stored records would be.",
)
@click.option(
    "--sync-allow-deletes",
    type=click.IntRange(min=0),
    metavar="N",
    help="With --sync: up to N records may be withdrawn, above [load] sync_max_deleted too.",
)
@click.option(
    "--changes",
    "changes_to",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=str),
    metavar="FILE",
    help="Write a line per record the load changed (added, updated, deleted, withdrawn, "
    "then its id) to FILE, once it commits; - for standard output (the summary then goes "
    "to standard error).",
)
def load(
    paths: tuple[str, ...],
    progress: bool | None,
    wait: bool | None,
    sync: bool,
    sync_allow_deletes: int | None,
    changes_to: str | None,
) -> None:
    """Load record files or folders of them, all or nothing: JSON and JSON Lines, DSpace
    Simple Archive Format folders and zips, metadata CSV and structure exports (.xml)."""
    from tqdm import tqdm

    from ..formats import build_formats
    from ..ingest.load import Sync, load_paths

    if sync_allow_deletes is not None and not sync:
        raise click.UsageError("--sync-allow-deletes is a limit of --sync: give --sync too")
    # `load "$EXPORT"` with the variable unset: "" would be read as the current folder.
    for what, given in (("PATHS", paths), ("--changes", (changes_to,))):
        if "" in given:
            raise click.UsageError(
                f"{what}: an empty path names no file (an unset variable?); nothing was loaded"
            )
    if changes_to is not None and changes_to != "-":
        _refuse_changes_over_input(changes_to, paths)
    settings = read_settings(lasting=True)
    changes = _ChangesFile(changes_to) if changes_to is not None else None
    try:
        store = open_store(settings)
    except BaseException:
        if changes is not None:
            changes.finish(committed=False)
        raise
    shown = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(unit=" records", disable=not shown, file=sys.stderr, leave=False, mininterval=0.5)

    def advance(records: int) -> None:
        bar.update(records)

    committed = False
    try:
        summary = load_paths(
            paths,
            store,
            settings,
            build_formats(settings),
            progress=advance,
            wait=settings.load_wait if wait is None else wait,
            on_wait=_say_waiting,
            sync=Sync(sync_allow_deletes) if sync else None,
            changes=None if changes is None else changes.write,
        )
        committed = True
    except LoadBusy as e:
        bar.close()
        raise click.ClickException(f"{e}; nothing was loaded (--wait waits for it)") from None
    except LoadFailed as failure:
        bar.close()
        for problem in failure.problems:
            click.echo(str(problem), err=True)
        if failure.total > len(failure.problems):
            click.echo(f"… and {failure.total - len(failure.problems)} more problem(s)", err=True)
        raise click.ClickException(
            f"{failure.total} problem(s) found; nothing was loaded, the store is unchanged."
        ) from None
    except CannotWrite as e:
        bar.close()
        raise click.ClickException(f"{e}; nothing was loaded") from None
    except StoreUnavailable as e:
        bar.close()
        from ..store.failures import cut_short

        cause = cut_short(settings.database_url, e.__cause__)
        why = f": {cause}" if cause else f" ({e})"
        raise click.ClickException(
            f"the database failed during the load{why}; nothing was loaded"
        ) from None
    finally:
        store.close()
        if changes is not None:
            changes.finish(committed)
    bar.close()
    to_stderr = changes_to == "-"  # standard output holds the changes alone
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Loaded {summary.records} records: {summary.line()}.", err=to_stderr)
    if summary.sets:  # a structure export or sets file alone loads no record
        click.echo(f"{summary.sets} set(s) added or changed.", err=to_stderr)
    if summary.clamped:
        click.echo(
            f"{summary.clamped} new record(s) dated at load time instead of their "
            "dc.date.accessioned, so incremental harvesters see them (keep_accessioned).",
            err=to_stderr,
        )
    _say_reevaluated(summary, "their definitions changed", err=to_stderr)


def _refuse_changes_over_input(changes_to: str, paths: tuple[str, ...]) -> None:
    """`--changes FILE` must not be a file being loaded (it would be overwritten with the
    list of changes once the load commits) nor lie in a folder being loaded (the next
    load of that folder would find it there): refused, however the paths are spelt."""
    # realpath, not Path.resolve: a link loop is then a name like any other, which the load
    # names (resolve raises RuntimeError for one in Python 3.11).
    target = Path(os.path.realpath(changes_to))
    for path in paths:
        source = Path(os.path.realpath(path))
        if target == source:
            raise click.UsageError(
                f"--changes {changes_to}: is a file being loaded, which it would overwrite; "
                "nothing was loaded"
            )
        if source in target.parents:
            raise click.UsageError(
                f"--changes {changes_to}: is inside {path}, a folder being loaded; "
                "nothing was loaded"
            )


class _ChangesFile:
    """Where `load --changes FILE` writes: a temporary file beside FILE (made before the
    load, so a folder that cannot take it stops the load before it starts), moved onto FILE
    once the load committed, removed if it did not; for `-`, a temporary file copied to
    standard output. A failed load leaves FILE as it was: nothing it lists happened."""

    def __init__(self, target: str) -> None:
        import tempfile

        self.target = target
        self.handle: IO[str]
        self.name: str | None = None
        # Renamed over a pipe or device, the list would take its name (/dev/null, as root).
        if target != "-" and os.path.exists(target) and not os.path.isfile(target):
            raise click.ClickException(
                f"--changes {target}: not a file but a pipe, device or socket "
                "(- writes to standard output); nothing was loaded"
            )
        # The file outlives this method (a context manager's block): `finish` closes it.
        try:
            if target == "-":
                self.handle = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            else:
                folder = Path(os.path.realpath(target)).parent
                self.handle = tempfile.NamedTemporaryFile(  # noqa: SIM115
                    "w", encoding="utf-8", dir=folder, prefix=".changes-", delete=False
                )
                self.name = self.handle.name
        except OSError as e:
            raise click.ClickException(
                f"--changes {target}: cannot write there ({e.strerror}); nothing was loaded"
            ) from None

    def write(self, kind: str, local_id: str) -> None:
        """A line, during the load: a disk that fills here ends the load, nothing loaded."""
        try:
            self.handle.write(f"{kind} {local_id}\n")
        except OSError as e:
            raise click.ClickException(
                f"--changes {self.target}: cannot write there ({e.strerror}); nothing was loaded"
            ) from None

    def finish(self, committed: bool) -> None:
        """After the load: if it `committed`, its changes where they were asked for; else,
        or if they cannot be written there (a disk full as the last lines are), the
        temporary file removed. A FILE that is a symbolic link is written where it leads:
        renamed onto the link's name, the list would replace the link (and, on another
        disk than the file it names, fail with EXDEV)."""
        import os
        import shutil

        moved = False
        try:
            if self.name is None:
                if committed:
                    self.handle.seek(0)
                    shutil.copyfileobj(self.handle, sys.stdout)
                    sys.stdout.flush()
                self.handle.close()
            elif committed:
                self.handle.close()
                os.chmod(self.name, 0o644)  # a list like any other, not a private file
                os.replace(self.name, os.path.realpath(self.target))
                moved = True
            else:
                self.handle.close()
        except OSError as e:
            if committed:
                raise click.ClickException(
                    f"the load committed, but --changes {self.target} could not be written: "
                    f"{e.strerror}"
                ) from None
        finally:
            if self.name is not None and not moved:
                with suppress(OSError):
                    os.unlink(self.name)


@click.command("refresh-sets")
@click.option(
    "--wait/--no-wait",
    default=None,
    help="While a load runs: wait for it, or stop at once (default: [load] wait).",
)
def refresh_sets(wait: bool | None) -> None:
    """Evaluate every record's virtual sets again ([virtual_sets]), as one write."""
    from ..formats import build_formats
    from ..ingest.load import refresh_sets as refresh

    settings = read_settings(lasting=True)
    store = open_store(settings)
    with _one_write(store, "changed", " (--wait waits for it)"):
        summary = refresh(
            store,
            settings,
            build_formats(settings),
            wait=settings.load_wait if wait is None else wait,
            on_wait=_say_waiting,
        )
    _say_reevaluated(summary, "as asked")


def _say_reevaluated(summary: Any, why: str, err: bool = False) -> None:
    """The records that entered and left virtual sets, and whether every record was
    evaluated again (`err`: on standard error)."""
    moves = "; ".join(
        f"{spec}: {entered} entered, {left} left"
        for spec, (entered, left) in sorted(summary.virtual_moves.items())
    )
    if summary.reevaluated:
        click.echo(
            f"Virtual sets evaluated again for every record ({why}); "
            f"{summary.redated} record(s) re-dated.",
            err=err,
        )
    if moves:
        click.echo(f"Virtual sets: {moves}.", err=err)


@click.command()
@click.argument("ids", nargs=-1, required=True)
def delete(ids: tuple[str, ...]) -> None:
    """Mark records deleted: tombstones dated now, kept in their sets. IDS are local ids
    (10722/212116) or the OAI identifiers served (oai:repository.example.org:10722/212116)."""
    from ..formats import build_formats
    from ..ingest.load import delete_records

    settings = read_settings(lasting=True)
    ids = tuple(_local_id(i, settings.repository_identifier) for i in ids)
    store = open_store(settings)
    with _one_write(store, "deleted"):
        summary = delete_records(
            ids,
            store,
            settings,
            build_formats(settings),
            wait=settings.load_wait,
            on_wait=_say_waiting,
        )
    click.echo(
        f"Deleted {summary.deleted} record(s); {len(set(ids)) - summary.deleted} already deleted."
    )


def _local_id(given: str, repository_identifier: str) -> str:
    """The local id an argument names: itself, or the local part of an OAI identifier
    (oai:<repository identifier>:<local id>, what harvesters and check reports show).
    One of another repository identifier is refused: deleting its local part here could
    delete a different record of the same local id."""
    from ..setting_checks import REPOSITORY_IDENTIFIER

    scheme, _, rest = given.partition(":")
    repository, colon, local_id = rest.partition(":")
    if (
        scheme != "oai"
        or not colon
        or not local_id
        or not REPOSITORY_IDENTIFIER.fullmatch(repository)
    ):
        return given
    if repository != repository_identifier:
        raise click.ClickException(
            f"{given} is an OAI identifier of {repository}, not of this repository "
            f"({repository_identifier}); nothing was deleted"
        )
    return local_id


@contextmanager
def _one_write(store: Any, undone: str, busy_hint: str = "") -> Iterator[None]:
    """A write other than a load (refresh-sets, delete), its store closed after it, and its
    failures as one message each, saying that nothing was `undone`: all-or-nothing."""
    try:
        yield
    except LoadBusy as e:
        raise click.ClickException(f"{e}; nothing was {undone}{busy_hint}") from None
    except LoadFailed as failure:
        for problem in failure.problems:
            click.echo(str(problem), err=True)
        raise click.ClickException(f"nothing was {undone}, the store is unchanged") from None
    except CannotWrite as e:
        raise click.ClickException(f"{e}; nothing was {undone}") from None
    except StoreUnavailable as e:
        raise click.ClickException(f"the database failed ({e}); nothing was {undone}") from None
    finally:
        store.close()


def _say_waiting(who: str) -> None:
    click.echo(f"{who}; waiting for it to finish (Ctrl-C to stop)", err=True)
