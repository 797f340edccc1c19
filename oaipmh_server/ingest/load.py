"""`oaipmh-server load`: record files into the store, all or nothing.

The whole load is one transaction. Every problem is collected (one line each, with file,
line and record) and if there is any, the transaction is rolled back: the store is exactly
as it was. A killed load never commits, so it too leaves the store as it was.

Datestamps (the rules harvesters depend on):
- Into an empty store, a record is dated by its dc.date.accessioned.
- Into a store that already holds records, anything up to now may have been harvested, so
  a new record dated in the past would be invisible to an incremental harvest
  (from=<last harvest>). It is dated at the time of the load instead, and counted as
  "clamped" (unless `keep_accessioned` is set).
- A changed or deleted record is dated at the time of the load; an unchanged one keeps its
  datestamp. "The time of the load" is the moment just before commit, never earlier than
  any datestamp already in the store.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .. import datestamps
from ..config import Settings
from ..errors import LoadError, LoadFailed
from ..formats import MetadataFormat
from ..records import SetInfo
from ..store import Existing, LoadTransaction, RecordWrite, SqlStore, ancestors
from .drafts import Draft, SetDefinition, Source
from .dspace_csv import read_csv_file
from .json import Item, read_json_file, read_jsonl_file
from .saf import is_item_folder, read_saf_item

# Written in place of "the time of the load" until the moment of commit is known.
PLACEHOLDER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# A dc.date.accessioned this far ahead of our clock is an error, not clock skew.
MAX_SKEW = timedelta(days=1)
BATCH = 1000
MAX_PROBLEMS_SHOWN = 1000
SUFFIXES = (".json", ".jsonl", ".csv")
FORMATS = ".json, .jsonl or DSpace metadata .csv"
NOTHING_HERE = f"no {FORMATS} files and no DSpace item folders in this folder"


@dataclass
class LoadSummary:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    clamped: int = 0
    rejected: int = 0
    sets: int = 0
    cleaned: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return self.added + self.updated + self.unchanged + self.deleted

    def line(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, unchanged {self.unchanged}, "
            f"deleted {self.deleted}, clamped {self.clamped}, rejected {self.rejected}"
        )


def find_files(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Path], list[LoadError]]:
    """What to read: record files (.json, .jsonl, DSpace metadata .csv) and DSpace Simple
    Archive item folders (those holding a dublin_core.xml), given directly or found in the
    folders given, recursively, in name order, except that a folder's `sets.json` comes
    before everything else in it: records can then refer to the sets it defines (a DSpace
    export names collections, which the sets file places in the hierarchy)."""
    found: list[Path] = []
    problems: list[LoadError] = []
    for given in paths:
        path = Path(given)
        if path.is_dir() and not is_item_folder(path):
            inside = [
                p for p in path.rglob("*")
                if (p.is_file() and p.suffix in SUFFIXES and not is_item_folder(p.parent))
                or (p.is_dir() and is_item_folder(p))
            ]  # fmt: skip
            if not inside:
                problems.append(LoadError(str(path), None, None, NOTHING_HERE))
            found += sorted(inside, key=lambda p: (p.parent, p.name != "sets.json", p.name))
        elif path.is_dir() or (path.is_file() and path.suffix in SUFFIXES):
            found.append(path)
        elif path.is_file():
            problems.append(LoadError(str(path), None, None, f"not a {FORMATS} file"))
        else:
            problems.append(LoadError(str(path), None, None, "no such file or folder"))
    return found, problems


def read_items(sources: Sequence[Path], *, require_accessioned: bool) -> Iterator[Item]:
    readers: dict[str, Callable[..., Iterator[Item]]] = {
        ".json": read_json_file,
        ".jsonl": read_jsonl_file,
        ".csv": read_csv_file,
    }
    for path in sources:
        reader = read_saf_item if path.is_dir() else readers[path.suffix]
        yield from reader(path, require_accessioned=require_accessioned)


def load_paths(
    paths: Iterable[str | os.PathLike[str]],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = datestamps.now,
) -> LoadSummary:
    """Load record files; LoadFailed (and nothing written) if any record is wrong."""
    files, problems = find_files(paths)
    if problems:
        raise LoadFailed(problems, len(problems))
    items = read_items(files, require_accessioned=settings.missing_accessioned == "reject")
    return load_items(items, store, settings, formats, progress=progress, clock=clock)


def load_items(
    items: Iterable[Item],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    progress: Callable[[int], None] | None = None,
    clock: Callable[[], datetime] = datestamps.now,
) -> LoadSummary:
    summary = LoadSummary()
    with store.loading() as tx:
        loader = _Loader(tx, settings, formats, summary, clock())
        for item in items:
            if isinstance(item, LoadError):
                loader.problem(item)
            elif isinstance(item, SetDefinition):
                loader.define_set(item)
            else:
                loader.add(item)
                if progress is not None:
                    progress(1)
        loader.flush()
        if loader.problems:
            summary.rejected = loader.rejected
            raise LoadFailed(loader.problems, loader.problem_count)
        loader.refresh_fragments()
        # Date the changes now, just before commit: see the module docstring.
        tx.stamp(PLACEHOLDER, max(clock(), loader.started))
        tx.optimize()
    return summary


def delete_records(
    local_ids: Sequence[str],
    store: SqlStore,
    settings: Settings,
    formats: dict[str, MetadataFormat],
    *,
    clock: Callable[[], datetime] = datestamps.now,
) -> LoadSummary:
    """Turn records into tombstones dated now (they keep their sets); LoadFailed, and
    nothing changed, if any id is unknown. Already deleted records stay as they are."""
    problems, drafts = [], []
    for local_id in dict.fromkeys(local_ids):
        header = store.get_header(local_id)
        if header is None:
            problems.append(LoadError("delete", None, local_id, "no such record"))
        elif not header.deleted:
            source = Source("delete", None)
            drafts.append(Draft(source, local_id, (), True, (), None, 0))
    if problems:
        raise LoadFailed(problems, len(problems))
    return load_items(drafts, store, settings, formats, clock=clock)


class _Loader:
    """The state of one load inside its transaction."""

    def __init__(
        self,
        tx: LoadTransaction,
        settings: Settings,
        formats: dict[str, MetadataFormat],
        summary: LoadSummary,
        started: datetime,
    ) -> None:
        self.tx = tx
        self.settings = settings
        self.formats = formats
        self.summary = summary
        self.started = started
        self.keep_accessioned = settings.keep_accessioned or tx.is_empty()
        self.sets = tx.known_sets()
        self.batch: dict[str, Draft] = {}
        self.problems: list[LoadError] = []
        self.problem_count = 0
        self.rejected = 0

    def problem(self, error: LoadError) -> None:
        self.problem_count += 1
        if error.record_id is not None or error.line is not None:
            self.rejected += 1
        if len(self.problems) < MAX_PROBLEMS_SHOWN:
            self.problems.append(error)

    def add(self, draft: Draft) -> None:
        if draft.accessioned is not None and draft.accessioned > self.started + MAX_SKEW:
            self.problem(
                LoadError(
                    draft.source.path,
                    draft.source.line,
                    draft.local_id,
                    f"dc.date.accessioned {draft.accessioned.isoformat()} is in the future",
                )
            )
            return
        if self.problems:
            return  # nothing will be written: keep reading only to report every problem
        if draft.local_id in self.batch:
            self.flush()  # the same id twice: the later one is an update of the earlier
        self.batch[draft.local_id] = draft
        if len(self.batch) >= BATCH:
            self.flush()

    def define_set(self, definition: SetDefinition) -> None:
        if self.problems:
            return
        self._put_set(definition.info)

    def flush(self) -> None:
        drafts = list(self.batch.values())
        self.batch.clear()
        if not drafts or self.problems:
            return
        existing = self.tx.existing(d.local_id for d in drafts)
        writes = []
        for draft in drafts:
            write = self._decide(draft, existing.get(draft.local_id))
            if write is not None:
                writes.append(write)
                for spec in write.set_specs:
                    self._ensure_set(spec)
        self.tx.write(writes, replacing=[w.local_id for w in writes if w.local_id in existing])

    def _decide(self, draft: Draft, old: Existing | None) -> RecordWrite | None:
        """Count the draft and say what to write, with which datestamp."""
        summary = self.summary
        summary.cleaned += draft.cleaned
        if draft.cleaned:
            summary.warnings.append(
                f"{draft.source.path}:{draft.source.line}: record {draft.local_id}: "
                f"{draft.cleaned} character(s) XML cannot carry replaced by U+FFFD"
            )
        set_specs = tuple(dict.fromkeys(self._placed(spec) for spec in draft.set_specs))
        if draft.deleted and not set_specs and old is not None:
            set_specs = old.set_specs  # a bare tombstone stays in its sets
        content_hash = _with_sets(draft, set_specs).content_hash
        if old is not None and old.content_hash == content_hash:
            summary.unchanged += 1
            return None
        datestamp = PLACEHOLDER
        if old is None and not draft.deleted and draft.accessioned is not None:
            if self.keep_accessioned and draft.accessioned <= self.started:
                datestamp = draft.accessioned
            else:
                summary.clamped += 1
        if draft.deleted:
            summary.deleted += 1
        elif old is None:
            summary.added += 1
        else:
            summary.updated += 1
        fragments = {}
        if not draft.deleted:
            fragments = {
                prefix: (f.version, f.render(draft.fields)) for prefix, f in self.formats.items()
            }
        return RecordWrite(
            local_id=draft.local_id,
            datestamp=datestamp,
            deleted=draft.deleted,
            set_specs=set_specs,
            fields=draft.fields,
            content_hash=content_hash,
            accessioned=draft.accessioned,
            fragments=fragments,
        )

    def _ensure_set(self, spec: str) -> None:
        """A set a record names but no sets file defines is named after its spec; the
        ancestors of a hierarchical spec exist too, so ListSets shows the whole tree."""
        for ancestor in ancestors(spec):
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))

    def _placed(self, spec: str) -> str:
        """A flat spec such as DSpace's `col_10722_5`, when a defined set ends with it
        (`com_10722_1:col_10722_5`) and no set is named just that, means the defined set:
        exports name collections, the sets file places them in the hierarchy."""
        if ":" in spec or spec in self.sets:
            return spec
        placed = [known for known in self.sets if known.endswith(":" + spec)]
        return placed[0] if len(placed) == 1 else spec

    def _put_set(self, info: SetInfo) -> None:
        for ancestor in ancestors(info.spec)[:-1]:
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))
        if self.sets.get(info.spec) != info:
            self.tx.put_set(info, exists=info.spec in self.sets)
            self.sets[info.spec] = info
            self.summary.sets += 1

    def refresh_fragments(self) -> None:
        """Re-render what an earlier crosswalk rendered, so the stored fragments of every
        format match the configuration this load ran with."""
        for prefix, metadata_format in self.formats.items():
            key = f"fragments:{prefix}"
            if self.tx.get_meta(key) == metadata_format.version:
                continue
            for batch in self.tx.stale_records(prefix, metadata_format.version, BATCH):
                bodies = [(lid, metadata_format.render(fields)) for lid, fields in batch]
                self.tx.put_fragments(prefix, metadata_format.version, bodies)
            self.tx.set_meta(key, metadata_format.version)


def _with_sets(draft: Draft, set_specs: tuple[str, ...]) -> Draft:
    if set_specs == draft.set_specs:
        return draft
    from dataclasses import replace

    return replace(draft, set_specs=set_specs)
