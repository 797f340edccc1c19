"""The six verbs (OAI-PMH 2.0, section 4): request pairs in, a complete XML reply out.

No HTTP and no SQL here: `respond` takes the raw (name, value) pairs, reads through a
`RecordSource` and returns bytes. Everything that can fail is settled before the reply is
assembled, so an error is always a whole, well-formed <error> document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from . import xml
from .datestamps import EPOCH
from .errors import (
    BadResumptionToken,
    CannotDisseminateFormat,
    IdDoesNotExist,
    NoMetadataFormats,
    NoRecordsMatch,
    NoSetHierarchy,
    OAIError,
)
from .formats import MetadataFormat, oai_dc, resolve_schema, schema_located
from .record_source import Header, Position, RecordSource, Selection, StoredRecord
from .settings import Settings
from .tokens import ResumptionState, decode_token, encode_token, new_harvest_id
from .verbs import Request, parse_request

SAMPLE_LOCAL_ID = "123456789/1"
# Content codings the web edge honours per Accept-Encoding (identity is implied, 3.1.3).
COMPRESSIONS = ("gzip", "deflate")


@dataclass(frozen=True)
class Context:
    """Everything a verb reads besides its arguments."""

    settings: Settings
    formats: dict[str, MetadataFormat]
    source: RecordSource
    base_url: str
    now: datetime

    def oai_identifier(self, local_id: str) -> str:
        return xml.oai_identifier(self.settings.repository_identifier, local_id)

    @property
    def header_version(self) -> str:
        """Stored headers of this version are served as they are (see xml.header_version)."""
        return xml.header_version(self.settings.repository_identifier)

    def local_id(self, identifier: str) -> str | None:
        prefix = f"oai:{self.settings.repository_identifier}:"
        if identifier.startswith(prefix) and len(identifier) > len(prefix):
            return identifier[len(prefix) :]
        return None


@dataclass(frozen=True)
class Page:
    """Where a list page stands in its harvest, for the access line (and so the harvest
    report): the chain's id, the page's position and item count, the list's size, and
    whether a token was handed out for a next page."""

    harvest: str | None
    cursor: int
    count: int
    size: int
    more: bool


@dataclass
class Reply:
    """A whole response document, and what it contained (for logs and metrics)."""

    body: list[bytes]
    verb: str | None = None
    records: int = 0
    errors: list[str] = field(default_factory=list)
    page: Page | None = None


def respond(pairs: Sequence[tuple[str, str]], context: Context) -> Reply:
    """Answer one OAI-PMH request. Protocol errors become <error> documents; only
    StoreUnavailable escapes, for the web edge to answer 503."""
    request: Request | None = None
    try:
        request = parse_request(pairs)
        return VERBS[request.verb](request, context)
    except OAIError as error:
        echo = None
        if request is not None and error.echo_arguments:
            echo = {"verb": request.verb, **request.arguments}
        head, tail = xml.envelope(error.response_date or context.now, context.base_url, echo, None)
        body = xml.error_elements([(error.code, error.message)])
        return Reply([head, body, tail], request.verb if request else None, errors=[error.code])


def _document(request: Request, context: Context, body: list[bytes], records: int = 0) -> Reply:
    arguments = {"verb": request.verb, **request.arguments}
    head, tail = xml.envelope(context.now, context.base_url, arguments, request.verb)
    return Reply([head, *body, tail], request.verb, records)


def identify(request: Request, context: Context) -> Reply:
    settings, source = context.settings, context.source
    earliest = source.earliest_datestamp() or EPOCH
    first = source.list_headers(Selection(None, None, context.now), None, 1, "")
    sample = first[0].header.local_id if first else SAMPLE_LOCAL_ID
    body = xml.identify_body(
        repository_name=settings.repository_name,
        base_url=context.base_url,
        admin_emails=settings.admin_emails,
        earliest_datestamp=earliest,
        repository_identifier=settings.repository_identifier,
        sample_identifier=context.oai_identifier(sample),
        compressions=COMPRESSIONS,
    )
    return _document(request, context, [body])


def list_metadata_formats(request: Request, context: Context) -> Reply:
    offered = list(context.formats.values())
    if request.identifier is not None:
        header = _header_of(request.identifier, context)
        if not header.deleted:
            fields = context.source.get_fields(header.local_id) or ()
            offered = [f for f in offered if f.disseminates(fields)]
        if not offered:
            raise NoMetadataFormats("There are no metadata formats available for this item.")
    formats = [(f.prefix, resolve_schema(f.schema, context.base_url), f.namespace) for f in offered]
    return _document(request, context, [xml.metadata_format_elements(formats)])


def list_sets(request: Request, context: Context) -> Reply:
    source, page_size = context.source, context.settings.page_size
    if request.resumption_token is not None:
        state = _resume(request.resumption_token, request.verb, context)
    elif not source.has_sets():
        raise NoSetHierarchy("This repository does not support sets.")
    else:
        state = ResumptionState(request.verb, None, None, None, None, None, None, 0, 0)
        state = replace(state, complete_list_size=source.count_sets(), harvest=new_harvest_id())
    sets = list(source.list_sets(state.set_position, page_size + 1))
    if not sets:
        raise NoSetHierarchy("This repository has no more sets.")
    more, sets = len(sets) > page_size, sets[:page_size]
    body = [
        xml.set_element(s, oai_dc.render_description(s.description) if s.description else None)
        for s in sets
    ]
    follow = replace(state, set_position=sets[-1].spec, cursor=state.cursor + len(sets))
    body += _token(request, context, state, follow, more)
    reply = _document(request, context, body)
    reply.page = _page_of(state, len(sets), more)
    return reply


def list_identifiers(request: Request, context: Context) -> Reply:
    return _list(request, context, with_metadata=False)


def list_records(request: Request, context: Context) -> Reply:
    return _list(request, context, with_metadata=True)


def _list(request: Request, context: Context, *, with_metadata: bool) -> Reply:
    source, page_size = context.source, context.settings.page_size
    if request.resumption_token is not None:
        state = _resume(request.resumption_token, request.verb, context)
        if state.until is None or state.metadata_prefix is None:
            raise BadResumptionToken("The resumptionToken is not valid (unknown format).")
        metadata_format = _format(state.metadata_prefix, context)
    else:
        assert request.metadata_prefix is not None  # required by the VERBS table
        metadata_format = _format(request.metadata_prefix, context)
        # The cut-off: the list is what the repository held one second before the first
        # page, and never passes a change not committed yet (a load running now is dated
        # from its start: store/writes.py). The responseDate is one second after it, so
        # every change the list cannot show is dated at or after the responseDate: the
        # next incremental harvest (from=responseDate) sees it, and it can never reappear
        # in this one behind its keyset position.
        cutoff = source.list_cutoff(context.now)
        context = replace(context, now=cutoff + timedelta(seconds=1))
        if request.set_spec is not None and not source.has_sets():
            # Dated as the list would be: a harvester of a set asked before the first load
            # (or during it) goes on from= this responseDate, and the first load's records,
            # which keep their dc.date.accessioned, are after the cut-off handed out.
            raise NoSetHierarchy(
                "This repository does not support sets.", response_date=context.now
            )
        until = cutoff if request.until is None else min(request.until, cutoff)
        selection = Selection(request.set_spec, request.from_, until)
        state = ResumptionState(
            verb=request.verb,
            metadata_prefix=metadata_format.prefix,
            set_spec=request.set_spec,
            from_=request.from_,
            until=until,
            position=None,
            set_position=None,
            cursor=0,
            complete_list_size=source.count_records(selection),
            harvest=new_harvest_id(),
        )
        if state.complete_list_size == 0:
            raise NoRecordsMatch("No records match the arguments.", response_date=context.now)

    selection = Selection(state.set_spec, state.from_, state.until)  # type: ignore[arg-type]
    if with_metadata:
        records = source.list_records(
            selection,
            state.position,
            page_size + 1,
            metadata_format.prefix,
            metadata_format.version,
            context.header_version,
            with_files=metadata_format.carries_files,
        )
    else:
        records = source.list_headers(
            selection, state.position, page_size + 1, context.header_version
        )
    if not records:
        # Every record left in the list changed after the harvest began: they fall out of
        # this list (and into the next incremental harvest).
        raise NoRecordsMatch("No records remain in this list.")

    def render(record: StoredRecord) -> Sequence[bytes]:
        if with_metadata:
            return _record(record, metadata_format, context)
        return (_header(record, context),)

    body, served = _page(records[:page_size], context.settings.max_page_bytes, render)
    more = len(records) > served
    records = records[:served]
    last = records[-1].header
    follow = replace(
        state,
        position=Position(last.datestamp, last.local_id),
        cursor=state.cursor + len(records),
    )
    body += _token(request, context, state, follow, more)
    reply = _document(request, context, body, records=len(records))
    reply.page = _page_of(state, len(records), more)
    return reply


def _page_of(state: ResumptionState, count: int, more: bool) -> Page:
    return Page(state.harvest, state.cursor, count, state.complete_list_size, more)


def _page(
    records: Sequence[StoredRecord],
    budget: int,
    render: Callable[[StoredRecord], Sequence[bytes]],
) -> tuple[list[bytes], int]:
    """The rendered records of a page and how many they are: records in order until the
    next would take the page's records past `budget` bytes, and always the first, so a
    list of records each bigger than the budget still goes on, one a page. The page ends
    where its records do: the token continues from the last one served (keyset), so the
    rest come on the next pages, once each."""
    body: list[bytes] = []
    size = served = 0
    for record in records:
        pieces = render(record)
        cost = sum(map(len, pieces))
        if served and size + cost > budget:
            break
        body.extend(pieces)
        size += cost
        served += 1
    return body, served


def get_record(request: Request, context: Context) -> Reply:
    assert request.identifier is not None and request.metadata_prefix is not None
    local_id = context.local_id(request.identifier)
    metadata_format = context.formats.get(request.metadata_prefix)
    record = None
    if local_id is not None:
        prefix = metadata_format.prefix if metadata_format else "oai_dc"
        version = metadata_format.version if metadata_format else ""
        record = context.source.get_record(
            local_id,
            prefix,
            version,
            context.header_version,
            with_files=metadata_format is not None and metadata_format.carries_files,
        )
    if record is None:
        raise IdDoesNotExist("No item has this identifier in this repository.")
    if metadata_format is None:
        raise CannotDisseminateFormat(
            f"The metadata format {request.metadata_prefix} is not supported by this repository."
        )
    if not record.header.deleted and metadata_format.selective:
        # Only a format with a place for some fields may have nothing to say of a record;
        # one rendered on request came with the fields already.
        fields = record.fields
        if fields is None:
            fields = context.source.get_fields(record.header.local_id) or ()
        if not metadata_format.disseminates(fields):
            raise CannotDisseminateFormat(
                f"This item cannot be disseminated in {metadata_format.prefix}."
            )
    return _document(request, context, [*_record(record, metadata_format, context)], records=1)


def _header(record: StoredRecord, context: Context) -> bytes:
    """The <header> as stored at ingest, or rendered now if it is not (or is stale)."""
    if record.header_xml is not None:
        return record.header_xml
    return xml.header_element(record.header, context.oai_identifier(record.header.local_id))


def _record(
    record: StoredRecord, metadata_format: MetadataFormat, context: Context
) -> tuple[bytes, ...]:
    header = _header(record, context)
    if record.header.deleted:
        return xml.record_element(header, None)
    return xml.record_element(header, metadata_document(record, metadata_format, context.base_url))


def metadata_document(
    record: StoredRecord, metadata_format: MetadataFormat, base_url: str
) -> bytes:
    """A live record's metadata in a format, the child of <metadata> (and ResourceSync's
    resource, the same bytes): its stored fragment, or rendered now, with a schema this
    server publishes located beside `base_url`."""
    fragment = record.fragment
    if fragment is None:
        fragment = metadata_format.render_record(
            record.header.local_id, record.fields or (), record.files
        )
    if metadata_format.schema.startswith("/"):
        fragment = schema_located(fragment, metadata_format.schema, base_url)
    return fragment


def _resume(token: str, verb: str, context: Context) -> ResumptionState:
    """A token's state: signed with the current secret, or with one it replaced."""
    secret = context.source.token_secret()
    return decode_token(token, secret, verb, context.settings.previous_token_secrets)


def _token(
    request: Request,
    context: Context,
    state: ResumptionState,
    follow: ResumptionState,
    more: bool,
) -> list[bytes]:
    """The resumptionToken element: a new token if the list goes on; on the last page of a
    list that was split, an empty one; nothing for a list answered whole."""
    if more:
        token = encode_token(follow, context.source.token_secret())
        return [xml.resumption_token_element(token, state.complete_list_size, state.cursor)]
    if request.resumption_token is not None:
        return [xml.resumption_token_element("", state.complete_list_size, state.cursor)]
    return []


def _format(prefix: str, context: Context) -> MetadataFormat:
    metadata_format = context.formats.get(prefix)
    if metadata_format is None:
        raise CannotDisseminateFormat(
            f"The metadata format {prefix} is not supported by this repository."
        )
    return metadata_format


def _header_of(identifier: str, context: Context) -> Header:
    local_id = context.local_id(identifier)
    header = None if local_id is None else context.source.get_header(local_id)
    if header is None:
        raise IdDoesNotExist("No item has this identifier in this repository.")
    return header


VERBS: dict[str, Callable[[Request, Context], Reply]] = {
    "Identify": identify,
    "ListMetadataFormats": list_metadata_formats,
    "ListSets": list_sets,
    "ListIdentifiers": list_identifiers,
    "ListRecords": list_records,
    "GetRecord": get_record,
}
