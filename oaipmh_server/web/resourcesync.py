"""ResourceSync over HTTP: the Source Description at /.well-known/resourcesync, the
Capability List, resource and change lists under /resources/, and the resources themselves:
each record's metadata document in each format, `/resources/PREFIX/ID.xml`.

Everything a synchronising client reads lies under /resources/, so `resync-sync` maps one
prefix (`http://host/resources=DIR`) and finds its default change list,
/resources/changelist.xml, there. Lists are cut into keyset ranges (store/resources.py): an
index names each range by where it starts and ends and by the cut-off of the whole list
(`at`, `until`), so every page of one list shows the store as it was at that cut-off.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from itertools import chain
from urllib.parse import quote, quote_plus, urlencode

from flask import Blueprint, Response, request, stream_with_context

from .. import datestamps, resourcesync
from ..errors import StoreUnavailable
from ..formats import MetadataFormat
from ..links import linker_of
from ..protocol import metadata_document
from ..record_source import Header, Position, leads_elsewhere
from ..resourcesync import MAX_URLS, XML_TYPE, Entry, change_md, described
from .pages import LOCAL_ID
from .provider import current_provider, oai_base, site_link, site_url

blueprint = Blueprint("resourcesync", __name__)
# Records read from the store at a time, for a list (fragments are a few kilobytes each).
READ = 500
MAX_SEQUENCE = 2**31 - 1  # files.sequence, an Integer column
FILES = "files"  # the resource list of the records' files, beside one per format
# Records a resource list holds in a format rendered on request ([formats] stored): its
# documents are rendered to give their md5 and length, some 2 ms each (docs/resourcesync.md).
RENDERED = 5_000


@blueprint.errorhandler(StoreUnavailable)
def _unavailable(error: StoreUnavailable) -> Response:
    response = Response("The repository's database is unavailable just now.\n", 503,
                        content_type="text/plain; charset=utf-8")  # fmt: skip
    response.headers["Retry-After"] = str(current_provider().settings.retry_after)
    return response


@blueprint.route("/.well-known/resourcesync")
def source_description() -> Response:
    """The Source Description (the well-known URI of section 6.3.2): one capability list."""
    return _xml(resourcesync.source_description([_url("capability_list")]))


@blueprint.route("/resources/capabilitylist.xml")
def capability_list() -> Response:
    capabilities = {"resourcelist": _url("resource_list"), "changelist": _url("change_list")}
    return _xml(resourcesync.capability_list(_url("source_description"), capabilities))


@blueprint.route("/resources/resourcelist.xml")
def resource_list() -> Response:
    """The resource list index: for each format, one list per 50,000 records (local id
    ranges; 5,000 for a format rendered on request), and one per 50,000 files when files
    are linked; every list up to one cut-off, the index's `at`."""
    provider = current_provider()
    store = provider.store
    at = store.list_cutoff(datestamps.now())
    stamp = datestamps.format_datestamp(at)
    starts: dict[int, list[str]] = {}
    entries = []
    for prefix, metadata_format in provider.formats.items():
        size = MAX_URLS if metadata_format.stored else RENDERED
        if size not in starts:
            starts[size] = store.sitemap_starts(size)
        entries += _ranges(_url("format_list", prefix=prefix), starts[size], stamp)
    if provider.settings.files_url:
        file_starts = [f"{sequence}:{lid}" for lid, sequence in store.file_starts(MAX_URLS)]
        entries += _ranges(_url("format_list", prefix=FILES), file_starts, stamp)
    md = {"at": stamp}
    return _xml(resourcesync.index("resourcelist", md, _url("capability_list"), entries))


def _ranges(list_url: str, starts: Sequence[str], stamp: str) -> list[Entry]:
    """The lists of the ranges from each start to the next, at `list_url`, their queries
    as urlencode writes {start, at, end}: each start quoted once, for an index of hundreds
    of ranges costs more in quoting than in reading the store (benchmarks/rsindex.py). No
    starts (a store without records): no lists."""
    if not starts:
        return []
    quoted = [quote_plus(start) for start in starts]
    at = "&at=" + quote_plus(stamp)
    ends = [f"&end={end}" for end in quoted[1:]] + [""]
    return [
        Entry(f"{list_url}?start={start}{at}{end}") for start, end in zip(quoted, ends, strict=True)
    ]


@blueprint.route("/resources/resourcelist/<prefix>.xml")
def format_list(prefix: str) -> Response:
    """One resource list: the records of a local id range, as of the index's cut-off, each
    with its document's md5 and length (of the bytes its URL serves), or the files of a
    range of the files' keys."""
    provider = current_provider()
    at = _moment(request.args.get("at", ""))
    start, end = request.args.get("start", ""), request.args.get("end")
    if at is None or not _key(start) or (end is not None and not _key(end)):
        return _not_found()
    md = {"at": datestamps.format_datestamp(at)}
    up = _url("resource_list")
    if prefix == FILES and provider.settings.files_url:
        first, last = _file_key(start), _file_key(end) if end else None
        if first is None or (end and last is None):
            return _not_found()
        entries = _file_entries(first, last, at)
        return _stream(resourcesync.urlset("resourcelist", md, up, entries))
    metadata_format = provider.formats.get(prefix)
    if metadata_format is None:
        return _not_found()
    entries = _record_entries(metadata_format, start, end, at)
    return _stream(resourcesync.urlset("resourcelist", md, up, entries))


def _record_entries(
    metadata_format: MetadataFormat, start: str, end: str | None, at: datetime
) -> Iterator[Entry]:
    store, base, site = current_provider().store, oai_base(), site_url()
    after = None
    while True:
        records = store.list_resources(
            metadata_format.prefix, metadata_format.version, start, after, end, at, READ,
            with_files=metadata_format.carries_files,
        )  # fmt: skip
        fields = {}
        if metadata_format.selective:
            fields = store.get_fields_of([r.header.local_id for r in records if r.fields is None])
        for record in records:
            local_id = record.header.local_id
            if leads_elsewhere(local_id):
                continue
            if not metadata_format.disseminates(record.fields or fields.get(local_id, ())):
                continue
            document = metadata_document(record, metadata_format, base)
            url = _resource_url(site, metadata_format.prefix, local_id)
            yield Entry(url, record.header.datestamp, described(document))
        if len(records) < READ:
            return
        after = records[-1].header.local_id


def _file_entries(
    start: tuple[str, int], end: tuple[str, int] | None, at: datetime
) -> Iterator[Entry]:
    """The open files of the range that have a link ([files] url), with their md5, length
    and type as the record holds them, dated by their record's datestamp."""
    provider = current_provider()
    linker = linker_of(provider.settings)
    after = None
    while True:
        rows = provider.store.list_file_resources(start, after, end, at, READ)
        for local_id, stamp, file in rows:
            url = linker.url(local_id, file) if file.bundle == "ORIGINAL" else None
            if url is None:
                continue
            md = {"hash": f"md5:{file.md5}", "length": str(file.size), "type": file.mime}
            yield Entry(url, stamp, md)
        if len(rows) < READ:
            return
        after = (rows[-1][0], rows[-1][2].sequence)


@blueprint.route("/resources/changelist.xml")
def change_list() -> Response:
    """Every record's latest change up to the cut-off OAI-PMH lists get now, the `until` it
    advertises: one change list when they fit in one, else an index of change lists, each
    a range of the datestamp index (`from` its first change, `until` the next one's)."""
    provider = current_provider()
    store = provider.store
    until = store.list_cutoff(datestamps.now())
    starts = store.change_starts(_changes_per_list(), until)
    if len(starts) <= 1:
        start = starts[0] if starts else Position(until, "")
        return _changes(start, None, until)
    stamp = datestamps.format_datestamp(until)
    entries, page = [], _url("change_page") + "?"
    for number, first in enumerate(starts):
        last = starts[number + 1] if number + 1 < len(starts) else None
        query = {**_position("from", first), "until": stamp}
        if last is not None:
            query.update(_position("to", last))
        md = {
            "from": datestamps.format_datestamp(first.datestamp),
            "until": datestamps.format_datestamp(last.datestamp if last else until),
        }
        entries.append(Entry(page + urlencode(query), None, md))
    md = {"from": datestamps.format_datestamp(starts[0].datestamp), "until": stamp}
    return _xml(resourcesync.index("changelist", md, _url("capability_list"), entries))


@blueprint.route("/resources/changelist/page.xml")
def change_page() -> Response:
    until = _moment(request.args.get("until", ""))
    first = _parse_position("from")
    last = _parse_position("to")
    if until is None or first is None or (last is None and "to" in request.args):
        return _not_found()
    return _changes(first, last, until)


def _changes(first: Position, last: Position | None, until: datetime) -> Response:
    """A change list of the changes from `first` to before `last` (or `until`, the list's
    cut-off): per record and format the record's latest change (section 12)."""
    provider = current_provider()
    md = {
        "from": datestamps.format_datestamp(first.datestamp),
        "until": datestamps.format_datestamp(last.datestamp if last else until),
    }
    up, site = _url("capability_list"), site_url()

    def entries() -> Iterator[Entry]:
        after = None
        while True:
            headers = provider.store.list_changes(first, after, last, until, READ)
            for header in headers:
                if leads_elsewhere(header.local_id):
                    continue
                change = change_md(_change_of(header), header.datestamp)
                for prefix in provider.formats:
                    url = _resource_url(site, prefix, header.local_id)
                    yield Entry(url, header.datestamp, change)
            if len(headers) < READ:
                return
            after = Position(headers[-1].datestamp, headers[-1].local_id)

    return _stream(resourcesync.urlset("changelist", md, up, entries()))


def _change_of(header: Header) -> str:
    """Deleted, or updated: the store keeps a record's latest state only, so whether its
    latest change made it or changed it is not known, and 1.1 (section 12.1) allows a
    change list to list only each resource's latest change; `updated` tells a client
    to fetch the resource, which is what a creation asks of it too."""
    return "deleted" if header.deleted else "updated"


@blueprint.route("/resources/<prefix>/<path:name>")
def resource(prefix: str, name: str) -> Response:
    """A record's metadata document in one format: the bytes a GetRecord holds in its
    <metadata> for it (the same rendering, the same schema location)."""
    provider = current_provider()
    metadata_format = provider.formats.get(prefix)
    local_id = name.removesuffix(".xml")
    if metadata_format is None or not name.endswith(".xml") or not LOCAL_ID.fullmatch(local_id):
        return _not_found()
    record = provider.store.get_record(
        local_id, prefix, metadata_format.version, "", with_files=metadata_format.carries_files
    )
    if record is None or record.header.deleted:
        return _not_found()
    fields = record.fields or provider.store.get_fields(local_id) or ()
    if not metadata_format.disseminates(fields):
        return _not_found()
    document = metadata_document(record, metadata_format, oai_base())
    response = Response(document, 200, content_type="text/xml; charset=utf-8")
    response.last_modified = record.header.datestamp
    return response


# -- helpers -------------------------------------------------------------------------------


def _url(endpoint: str, **values: str) -> str:
    return site_link(f"resourcesync.{endpoint}", **values)


def _resource_url(site: str, prefix: str, local_id: str) -> str:
    """Where a record's document in a format is served (`resource`), `site` the root."""
    return f"{site}/resources/{prefix}/{quote(local_id, safe='/')}.xml"


def _changes_per_list() -> int:
    """Records a change list holds: each is one change per format, 50,000 in all."""
    return max(1, MAX_URLS // len(current_provider().formats))


def _moment(text: str) -> datetime | None:
    """A list's cut-off as its index wrote it (seconds, UTC), or None."""
    try:
        moment, granularity = datestamps.parse_datestamp(text)
    except ValueError:
        return None
    return moment if granularity is datestamps.Granularity.SECOND else None


def _position(name: str, position: Position) -> dict[str, str]:
    stamp = datestamps.format_datestamp(position.datestamp)
    return {name: stamp, f"{name}_id": position.local_id}


def _parse_position(name: str) -> Position | None:
    moment = _moment(request.args.get(name, ""))
    local_id = request.args.get(f"{name}_id", "")
    if moment is None or not (local_id == "" or LOCAL_ID.fullmatch(local_id)):
        return None
    return Position(moment, local_id)


def _key(text: str) -> bool:
    """Whether a range's start or end is one an index writes: a local id, or for files
    `SEQUENCE:LOCAL_ID`."""
    return bool(LOCAL_ID.fullmatch(text))


def _file_key(text: str) -> tuple[str, int] | None:
    """(local id, sequence) of `SEQUENCE:LOCAL_ID`; None for a sequence past what the
    store's column holds (a 32-bit integer on PostgreSQL), which no file has: sent to the
    database, it was a 500 (SQLite) or a 503 logged as the database failing (PostgreSQL)."""
    sequence, _, local_id = text.partition(":")
    number = int(sequence) if sequence.isdigit() else -1
    return None if number > MAX_SEQUENCE else (local_id, number)


def _xml(body: bytes) -> Response:
    return Response(body, 200, content_type=XML_TYPE)


def _stream(chunks: Iterator[bytes]) -> Response:
    """A list streamed as it is written, its first chunk made (and the store first read)
    before the response starts, so a store that cannot answer gets its 503; the rest in
    the request's context, which the chunks read (the app's store and settings)."""
    first = next(chunks)
    return Response(stream_with_context(chain([first], chunks)), 200, content_type=XML_TYPE)


def _not_found() -> Response:
    return Response("Not a ResourceSync document of this repository.\n", 404,
                    content_type="text/plain; charset=utf-8")  # fmt: skip
