"""Stored records brought up to date with the configuration a load runs with (their
virtual sets, the fragments of the stored formats, their headers) and with the calendar
(records whose file's embargo ended)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from .. import files, virtual_sets, xml
from ..record_source import Field, File, Header
from ..store import RecordState, Restamp, unpack_fields
from . import dating
from .batches import BATCH
from .drafts import content_hash, fields_digest
from .state import LoadState

# The day of the last write that re-dated the records whose embargo had ended (ISO date).
EMBARGOES_KEY = "embargoes_ended_by"


class Refreshing(LoadState):
    """The refreshing part of a load (`load._Loader`)."""

    def render_header(self, header: Header) -> bytes:
        """The record's <header>, stored with it so pages are served without rendering it."""
        return xml.stored_header(self.settings.repository_identifier, header)

    def refresh_headers(self) -> None:
        """Render again the stored headers of an earlier repository identifier (or of a
        store from before headers were stored)."""
        if self.tx.get_meta("headers") != self.header_version:
            if not self.was_empty:  # else every header was just written, of this version
                self.tx.refresh_headers(self.render_header, self.header_version)
            self.tx.set_meta("headers", self.header_version)

    def _virtual_of(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(s for s in specs if s in self.virtual_specs)

    def _own(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """A stored record's specs without its virtual sets."""
        if not self.virtual_specs:
            return specs
        return tuple(s for s in specs if s not in self.virtual_specs)

    def refresh_virtual_sets(self, force: bool = False) -> None:
        """Evaluate every stored record's virtual sets again when their definitions changed
        since they were evaluated (or, `force`, anyway): a record that enters or leaves one
        is re-dated, like any changed record, so incremental harvests see it. Records of
        this load were evaluated as they were written, so an empty store needs nothing."""
        state, stored = self.virtual_state, self.stored_virtual_state
        if not force and (state == stored or (stored is None and not self.virtual)):
            return
        if not self.was_empty or force:
            self._reevaluate()
        for spec in virtual_sets.stored_specs(stored):
            if spec not in self.virtual.specs and spec in self.sets:
                self.tx.remove_set(spec)
                del self.sets[spec]
        self.tx.set_meta(virtual_sets.META_KEY, state)

    def _reevaluate(self) -> None:
        served = self.virtual.specs
        redated = 0
        if not self.virtual_specs:
            # No set is virtual, nor was: every record is in none, before and after, so
            # none moves. Reading every record's fields to find that out took 52 s at a
            # million records (`refresh-sets` in a cron, with no virtual sets set up).
            self.summary.reevaluated = True
            self.summary.redated = 0
            return
        for batch in self.tx.records_in_batches(BATCH):
            changes = []
            stored_files = self.tx.stored_files([row.local_id for row in batch if not row.deleted])
            for row in batch:
                fields = unpack_fields(row.fields)
                files = stored_files.get(row.local_id, ())
                if row.deleted:  # a tombstone stays in the virtual sets still served
                    virtual = tuple(s for s in row.set_specs if s in served)
                else:
                    virtual = self.virtual.of(fields, files)
                before = self._virtual_of(row.set_specs)
                if virtual == before:
                    continue
                self.summary.moved(before, virtual)
                specs = (*self._own(row.set_specs), *virtual)
                datestamp = dating.redated(self.moment, row.datestamp)
                changes.append(self._restamp(row, datestamp, specs, fields, files))
            self.tx.restamp(changes)
            redated += len(changes)
        self.summary.reevaluated = True
        self.summary.redated = redated

    def _restamp(
        self,
        row: RecordState,
        datestamp: datetime,
        specs: tuple[str, ...],
        fields: Sequence[Field],
        its_files: Sequence[File],
    ) -> Restamp:
        """A stored record given a new datestamp and sets, with its content hash and its
        header for them (its fields, fragments and deleted flag stay)."""
        header = self.render_header(Header(row.local_id, datestamp, specs, row.deleted))
        content = content_hash(row.deleted, specs, fields_digest(fields, its_files))
        return Restamp(
            row.local_id, datestamp, row.deleted, specs, content, header, self.header_version
        )

    def refresh_fragments(self) -> None:
        """Re-render what an earlier crosswalk rendered, so the stored fragments of every
        format match the configuration this load ran with. A format rendered on request
        forgets its version, so storing it again later renders it for every record."""
        for prefix in self.formats.keys() - self.stored.keys():
            self.tx.forget_meta(f"fragments:{prefix}")
        for prefix, metadata_format in self.stored.items():
            key = f"fragments:{prefix}"
            if self.tx.get_meta(key) == metadata_format.version:
                continue
            if not self.was_empty:  # else every record was just rendered, by this version
                for batch in self.tx.stale_records(prefix, metadata_format.version, BATCH):
                    files = {}
                    if metadata_format.carries_files:
                        files = self.tx.stored_files([lid for lid, _ in batch])
                    bodies = [
                        (lid, metadata_format.render_record(lid, fields, files.get(lid, ())))
                        for lid, fields in batch
                    ]
                    self.tx.put_fragments(prefix, metadata_format.version, bodies)
            self.tx.set_meta(key, metadata_format.version)

    def refresh_embargoes(self) -> None:
        """Re-date the records whose content file's embargo ended since the last write that
        looked (a day kept in meta; on a store never looked at, every embargo that has
        ended), render their stored formats that carry files again and evaluate their
        virtual sets again. An embargo ends by the calendar: from its day on, oai_openaire
        says open access and links the file, with no write, and an incremental harvest
        lists only what was re-dated. DSpace's OAI likewise indexes embargoed items again
        at each incremental import. A write a day is enough: `refresh-sets` if nothing
        else writes (docs/formats.md)."""
        today = files.today()
        seen = self.tx.get_meta(EMBARGOES_KEY)
        if seen == today.isoformat():
            return
        if not self.was_empty:  # else every record was just rendered, by today's calendar
            try:
                since = date.fromisoformat(seen) if seen is not None else None
            except ValueError:
                since = None
            ended = sorted(
                {
                    local_id
                    for local_id, permissions in self.tx.content_file_permissions()
                    if (end := files.embargo_of(permissions)) is not None
                    and end <= today
                    and (since is None or end > since)
                }
            )
            if ended:  # not the records this load wrote: rendered just now, by today's
                # calendar (a record it read and found unchanged was rendered before)
                written = set(self.written)
                ended = [local_id for local_id in ended if hash(local_id) not in written]
            for start in range(0, len(ended), BATCH):
                self._redate(ended[start : start + BATCH])
        self.tx.set_meta(EMBARGOES_KEY, today.isoformat())

    def _redate(self, local_ids: Sequence[str]) -> None:
        """These live records changed by the calendar, as a load changes a record: dated
        by this write, their virtual sets and the stored formats that carry files anew."""
        existing = self.tx.existing(local_ids)
        stored_fields = self.tx.stored_fields(local_ids)
        stored_files = self.tx.stored_files(local_ids)
        changes = []
        for local_id in local_ids:
            row = existing[local_id]
            fields, its_files = stored_fields[local_id], stored_files.get(local_id, ())
            before = self._virtual_of(row.set_specs)
            virtual = self.virtual.of(fields, its_files) if self.virtual_specs else ()
            if virtual != before:
                self.summary.moved(before, virtual)
            specs = (*self._own(row.set_specs), *virtual)
            datestamp = row.datestamp  # re-dated by this write already (a virtual set's move)
            if datestamp < self.moment:
                datestamp = dating.redated(self.moment, datestamp)
            changes.append(self._restamp(row, datestamp, specs, fields, its_files))
        self.tx.restamp(changes)
        for prefix, metadata_format in self.stored.items():
            if metadata_format.carries_files:
                bodies = [
                    (lid, metadata_format.render_record(lid, stored_fields[lid],
                                                        stored_files.get(lid, ())))
                    for lid in local_ids
                ]  # fmt: skip
                self.tx.put_fragments(prefix, metadata_format.version, bodies)
