"""Where a load's records are served: sets placed in the tree (DSpace's flat style or
hierarchical specs), records in their sets and the communities above them."""

from __future__ import annotations

import json
from dataclasses import replace

from ..errors import LoadError
from ..record_source import Header, SetInfo
from ..store import LoadTransaction, Restamp, ancestors
from .batches import BATCH
from .dating import redated
from .drafts import SetDefinition, content_hash, fields_digest
from .state import LoadState
from .tree import communities, served_flat

# The store's meta key holding, in the hierarchical style, the path each collection was
# placed at by the last sets file (or structure export) that defined it: its flat spec →
# its path. A collection moved to another community has two paths in the sets table (the
# old one still serves the records placed there), and only this says which is current.
PLACEMENTS_KEY = "set_placements"


def stored_placements(tx: LoadTransaction) -> dict[str, str]:
    stored = tx.get_meta(PLACEMENTS_KEY)
    return {} if stored is None else dict(json.loads(stored))


class Placing(LoadState):
    """The sets part of a load (`load._Loader`)."""

    def define_set(self, definition: SetDefinition) -> None:
        """A set of a sets file or structure export. One with a parent joins the tree: in
        the flat style by its parent's spec, in the hierarchical one under its path."""
        info = definition.info
        if info.parent is not None:
            parent = info.parent if self.flat else self._placed(info.parent)
            reason = None
            if parent not in self.sets:
                reason = f"parent {info.parent} is not defined before it"
            elif info.spec in (
                (*self._communities((parent,)), parent) if self.flat else parent.split(":")
            ):
                reason = f"parent {info.parent} is inside it: sets form a tree"
            if info.spec in self.virtual_specs:
                reason = "is a virtual set ([virtual_sets]): records are in it by its filter"
            if reason is not None:
                source = definition.source
                self.problem(LoadError.at(source.path, source.line, f"set {info.spec}: {reason}"))
                return
            spec = info.spec if self.flat else f"{parent}:{info.spec}"
            info = replace(info, spec=spec, parent=parent)
        if self.problems:
            return
        self.expanded.clear()
        self._put_set(info)
        if not self.flat and ":" not in definition.info.spec:
            self._place(definition.info.spec, info.spec)

    def _place(self, spec: str, path: str) -> None:
        """Hierarchical style: the set `spec` is at `path` from now on, and so are the sets
        placed below it, at their paths under it (defined there too, named as before), as
        DSpace's style serves a moved community's collections in its new place."""
        old = self.placements.get(spec)
        self.placements[spec] = path
        if old is None or old == path:
            return
        below = [(placed.count(":"), flat, placed) for flat, placed in self.placements.items()
                 if placed.startswith(old + ":")]  # fmt: skip
        for _, flat, placed in sorted(below):  # parents before the sets inside them
            moved = path + placed[len(old) :]
            self.placements[flat] = moved
            known = self.sets.get(placed)
            if moved not in self.sets and known is not None:
                self._put_set(replace(known, spec=moved, parent=moved.rsplit(":", 1)[0]))

    def replace(self) -> None:
        """Serve stored records where the tree of sets now puts them. A structure export
        (or sets file) loaded after the items of its collections gives their collections
        communities, or moves a collection to another community: the records below a set
        whose parent changed are then served in their new communities (and no longer in
        the old ones), with a header rendered afresh and, as it changed, a datestamp of
        this load, so an incremental harvester sees them again. Records written by this
        load keep the datestamp it gave them. (DSpace's flat style only: a hierarchical
        spec is the path it was placed at, kept until the record is loaded again; the
        path each collection is placed at now is kept for those loads: `_placed`.)"""
        if not self.flat:
            if self.placements != stored_placements(self.tx):
                self.tx.set_meta(PLACEMENTS_KEY, json.dumps(self.placements, sort_keys=True))
            return
        if not self.moved:
            return
        candidates = self.tx.members(self.moved)
        written: set[int] | None = None
        for start in range(0, len(candidates), BATCH):
            chunk = candidates[start : start + BATCH]
            existing = self.tx.existing(chunk)
            changes = []
            for local_id in chunk:
                old = existing[local_id]
                own = self._own_sets(old.set_specs)
                served = served_flat(own, self.parents)
                if served == old.set_specs:
                    continue
                changes.append((local_id, old, served))
            if not changes:
                continue
            if written is None:
                written = set(self.written)
            ids = [local_id for local_id, _, _ in changes]
            stored = self.tx.stored_fields(ids)
            files = self.tx.stored_files(ids)  # part of the content hash, as fields are
            moves = []
            for local_id, old, served in changes:
                if hash(local_id) in written:
                    datestamp = old.datestamp
                else:
                    datestamp = redated(self.moment, old.datestamp)
                    self.summary.updated += 1
                    if self.changes is not None:
                        self.changes("updated", local_id)
                header = Header(local_id, datestamp, served, old.deleted)
                moves.append(
                    Restamp(
                        local_id=local_id,
                        datestamp=datestamp,
                        deleted=old.deleted,
                        set_specs=served,
                        content_hash=content_hash(
                            old.deleted,
                            served,
                            fields_digest(stored.get(local_id, ()), files.get(local_id, ())),
                        ),
                        header=self.render_header(header),
                        header_version=self.header_version,
                    )
                )
            self.tx.restamp(moves)

    def _own_sets(self, served: tuple[str, ...]) -> tuple[str, ...]:
        """A stored record's own sets (its collections), from the specs it is served with:
        those that are not communities above the others, in the tree as the store held it
        (or as this load left it, for a record this load wrote before the tree changed)."""
        above = {
            community
            for spec in served
            for tree in (self.stored_parents, self.parents)
            for community in communities((spec,), tree)
        }
        return tuple(spec for spec in served if spec not in above) or served

    def _ensure_set(self, spec: str) -> None:
        """A set a record names but no sets file defines is named after its spec; the
        ancestors of a hierarchical spec exist too, so ListSets shows the whole tree."""
        if spec in self.sets:
            return  # and so are its ancestors (_put_set)
        for ancestor in ancestors(spec):
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))

    def _served_sets(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """The set specs a record is served with. Flat (DSpace's): the communities above
        its sets, nearest first, then its own sets, as DSpace lists them; each is one
        membership, so any of them selects the record by one index range. Hierarchical:
        its sets placed in the tree."""
        if not specs:
            return ()
        served = self.expanded.get(specs)
        if served is None:
            if self.flat:
                served = served_flat(specs, self.parents)
            else:
                served = tuple(dict.fromkeys(self._placed(spec) for spec in specs))
            if len(self.expanded) < 10_000:
                self.expanded[specs] = served
        return served

    def _communities(self, specs: tuple[str, ...]) -> tuple[str, ...]:
        """The sets above `specs` in the tree, breadth first (DSpace's order), without them."""
        return communities(specs, self.parents)

    def _placed(self, spec: str) -> str:
        """A flat spec such as DSpace's `col_10722_5` means the path the last sets file that
        defined it placed it at (`com_10722_1:col_10722_5`), even where a record named it
        before that file (making a set of that spec), or an earlier file placed it in
        another community; failing one, the one defined set ending with it, when no set is
        named just that: exports name collections, the sets file places them."""
        if ":" in spec:
            return spec
        placed_last = self.placements.get(spec)
        if placed_last is not None:
            return placed_last
        if spec in self.sets:
            return spec
        placed = [known for known in self.sets if known.endswith(":" + spec)]
        return placed[0] if len(placed) == 1 else spec

    def _put_set(self, info: SetInfo) -> None:
        for ancestor in ancestors(info.spec)[:-1]:
            if ancestor not in self.sets:
                self._put_set(SetInfo(ancestor, ancestor))
        if self.sets.get(info.spec) != info:
            if self.parents.get(info.spec) != info.parent and (self.written or not self.was_empty):
                self.moved.add(info.spec)
            self.tx.put_set(info, exists=info.spec in self.sets)
            self.sets[info.spec] = info
            self.parents[info.spec] = info.parent
            self.summary.sets += 1
