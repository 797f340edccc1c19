"""The reference: the PyPI `oaipmh` package's server over the same store, wired as its
documentation intends: an IBatchingOAIPMH implementation (cursor/batch_size, i.e. OFFSET
paging) behind BatchingServer, oai_dc written by the package's own writer from a simple
crosswalk done per request. Only glue is ours. It reads SQLite or PostgreSQL, as the real
server does (driver.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from driver import connect
from oaipmh import common, error, metadata, server

from oaipmh_server.store import unpack_fields  # the store's compressed fields

DC = {"contributor", "coverage", "creator", "date", "description", "format", "identifier",
      "language", "publisher", "relation", "rights", "source", "subject", "title", "type"}  # fmt: skip
HIDDEN = {"dc.identifier.email", "dc.description.provenance"}
PREFIX = "oai:repository.example.org:"
connection = connect()


def _when(value: str | datetime) -> datetime:
    """SQLite's stored text, or PostgreSQL's datetime."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


class Repository:
    """IBatchingOAIPMH over the store's tables."""

    def identify(self) -> common.Identify:
        earliest = connection.execute("SELECT min(datestamp) FROM records").fetchone()[0]
        return common.Identify("Peer", "http://127.0.0.1/oai", "2.0", ["a@example.org"],
                               _when(earliest), "persistent", "YYYY-MM-DDThh:mm:ssZ", [])  # fmt: skip

    def listMetadataFormats(self, identifier: str | None = None) -> list[tuple[str, str, str]]:
        return [("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
                 "http://www.openarchives.org/OAI/2.0/oai_dc/")]  # fmt: skip

    def listSets(self, cursor: int = 0, batch_size: int = 10) -> list[tuple[str, str, None]]:
        rows = connection.execute("SELECT spec, name FROM sets ORDER BY spec LIMIT ? OFFSET ?",
                                  (batch_size, cursor))  # fmt: skip
        return [(spec, name, None) for spec, name in rows]

    def _rows(self, set: str | None, from_: datetime | None, until: datetime | None,
              cursor: int, batch_size: int) -> list[Any]:  # fmt: skip
        sql = "SELECT r.local_id, r.datestamp, r.deleted, r.set_specs, r.fields FROM records r"
        where: list[str] = []
        params: list[Any] = []
        if set:
            sql += " JOIN memberships m ON m.local_id = r.local_id"
            where.append("m.set_spec = ?")
            params.append(set)
        if from_:
            where.append("r.datestamp >= ?")
            params.append(from_.strftime("%Y-%m-%d %H:%M:%S.000000"))
        if until:
            where.append("r.datestamp <= ?")
            params.append(until.strftime("%Y-%m-%d %H:%M:%S.000000"))
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY r.datestamp, r.local_id LIMIT ? OFFSET ?"
        rows = connection.execute(sql, (*params, batch_size, cursor)).fetchall()
        if not rows and cursor == 0:
            raise error.NoRecordsMatchError("nothing")
        return rows

    def listIdentifiers(self, metadataPrefix: str, set: str | None = None, from_: datetime | None = None,
                        until: datetime | None = None, cursor: int = 0, batch_size: int = 10) -> list[Any]:  # fmt: skip
        return [_header(row) for row in self._rows(set, from_, until, cursor, batch_size)]

    def listRecords(self, metadataPrefix: str, set: str | None = None, from_: datetime | None = None,
                    until: datetime | None = None, cursor: int = 0, batch_size: int = 10) -> list[Any]:  # fmt: skip
        return [_record(row) for row in self._rows(set, from_, until, cursor, batch_size)]

    def getRecord(self, metadataPrefix: str, identifier: str) -> Any:
        row = connection.execute(
            "SELECT local_id, datestamp, deleted, set_specs, fields FROM records WHERE local_id = ?",
            (identifier.removeprefix(PREFIX),),
        ).fetchone()
        if row is None:
            raise error.IdDoesNotExistError(identifier)
        return _record(row)


def _header(row: Any) -> common.Header:
    local_id, datestamp, deleted, specs, _ = row
    return common.Header(None, PREFIX + local_id, _when(datestamp), specs.split(), bool(deleted))


def _record(row: Any) -> tuple[common.Header, common.Metadata | None, None]:
    header = _header(row)
    if header.isDeleted():
        return header, None, None
    values: dict[str, list[str]] = {}
    for name, value, *_ in unpack_fields(row[4]):
        element = name.split(".")[1]
        if element in DC and name not in HIDDEN:
            values.setdefault(element, []).append(value)
    return header, common.Metadata(None, values), None


registry = metadata.MetadataRegistry()
registry.registerWriter("oai_dc", server.oai_dc_writer)
oai = server.BatchingServer(Repository(), registry, resumption_batch_size=100)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    request = dict(parse_qsl(environ.get("QUERY_STRING", "")))
    body = oai.handleRequest(request)
    start_response("200 OK", [("Content-Type", "text/xml; charset=utf-8")])
    return [body if isinstance(body, bytes) else body.encode("utf-8")]
