"""`oaipmh-server check URL`: a live OAI-PMH endpoint checked the way aggregators check one
before they register it (OpenAIRE's and BASE's validators, the OAI validator).

Each rule asks one thing of the endpoint and says pass, fail or not checked, with what it
saw: Identify (baseURL the URL asked, granularity, earliest datestamp, deletedRecord,
oai-identifier, an identity of its own, not the shipped placeholders), every response
valid against OAI-PMH.xsd, every format's records valid against the schema it advertises
and rooted in the namespace it advertises, a whole list followed through its resumption
tokens, incremental harvests by day and by second, `from` beyond the last datestamp, and
the error codes of bad verbs, arguments and tokens. It reads the endpoint through a
`fetch` function (the CLI's is plain HTTP), so tests can hand it a WSGI app.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlencode

from lxml import etree

from ..placeholders import placeholder_identity
from .catalogue import ENVELOPE_IMPORTS, NOT_CHECKED, OAI, Catalogue, Fetch

NS = {"oai": OAI, "id": "http://www.openarchives.org/OAI/2.0/oai-identifier"}
Status = Literal["pass", "fail", "not checked"]
GRANULARITIES = {"YYYY-MM-DD": "%Y-%m-%d", "YYYY-MM-DDThh:mm:ssZ": "%Y-%m-%dT%H:%M:%SZ"}
PLACEHOLDER = etree.QName("http://www.openarchives.org/OAI/2.0/oai_dc/", "dc")
MAX_PAGES = 100_000  # a token chain longer than this is a loop
CLOCK_WAIT = 5  # seconds: how long a list cut short waits for the endpoint's clock


@dataclass(frozen=True)
class Result:
    rule: str
    status: Status
    detail: str


class Broken(Exception):
    """A response the checker cannot go on from (not XML, not HTTP 200, an OAI error)."""


@dataclass
class _Run:
    url: str
    fetch: Fetch
    catalogue: Catalogue
    results: list[Result] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # responses the envelope schema refuses
    requests: int = 0

    def add(self, rule: str, ok: bool | None, detail: str) -> None:
        status: Status = "not checked" if ok is None else "pass" if ok else "fail"
        self.results.append(Result(rule, status, detail))

    def get(self, **arguments: str) -> etree._Element:
        """A response's root, checked against OAI-PMH.xsd (the first failures are kept)."""
        query = urlencode(arguments)
        try:
            status, body = self.fetch(f"{self.url}?{query}")
        except OSError as e:
            raise Broken(f"?{query}: {e}") from None
        self.requests += 1
        if status != 200:
            raise Broken(f"?{query}: HTTP {status}")
        try:
            root = etree.fromstring(body, etree.XMLParser(resolve_entities=False, no_network=True))
        except etree.XMLSyntaxError as e:
            raise Broken(f"?{query}: not well-formed XML: {e}") from None
        problem = self._envelope_problem(root)
        if problem and len(self.invalid) < 5:
            self.invalid.append(f"?{query}: {problem}")
        return root

    def _envelope_problem(self, root: etree._Element) -> str | None:
        """The envelope judged alone: each record's metadata stands in as an empty oai_dc
        record (metadata is judged per format, against the schema each advertises), and
        a description in a namespace the catalogue lacks likewise."""
        copy = etree.fromstring(etree.tostring(root))
        known = {OAI, *self.catalogue_namespaces()}
        for container in copy.iterfind(".//oai:metadata", NS):
            for child in list(container):
                container.remove(child)
            etree.SubElement(container, PLACEHOLDER)
        for about in copy.iterfind(".//oai:about", NS):
            about.getparent().remove(about)  # type: ignore[union-attr]
        for path in (".//oai:description", ".//oai:setDescription"):
            for container in copy.iterfind(path, NS):
                for child in list(container):
                    if etree.QName(child).namespace not in known:
                        container.remove(child)
                        etree.SubElement(container, PLACEHOLDER)
        schema = self.catalogue.envelope
        return None if schema.validate(copy) else last_error(schema)

    @staticmethod
    def catalogue_namespaces() -> tuple[str, ...]:
        return tuple(ENVELOPE_IMPORTS)


def next_token(root: etree._Element) -> str | None:
    """The resumption token to ask for next, or None at the end of a list."""
    token = root.find(".//oai:resumptionToken", NS)
    text = (token.text or "").strip() if token is not None else ""
    return text or None


def last_error(schema: etree.XMLSchema) -> str:
    log: Any = schema.error_log
    errors = list(log)
    return f"line {errors[-1].line}: {errors[-1].message}" if errors else "invalid"


def error_codes(root: etree._Element) -> list[str]:
    return [e.get("code", "") for e in root.iterfind("oai:error", NS)]


def check_endpoint(
    url: str,
    fetch: Fetch,
    schemas: Mapping[str, str] = {},
    sample: int = 200,
) -> list[Result]:
    """Every rule's result, in the order they are checked."""
    run = _Run(url, fetch, Catalogue(url, fetch, schemas))
    try:
        _check(run, sample)
    except Broken as e:
        run.add("endpoint-answers", False, str(e))
    if run.invalid:
        run.add("responses-valid", False, "; ".join(run.invalid))
    else:
        run.add("responses-valid", True, f"{run.requests} responses valid against OAI-PMH.xsd")
    return run.results


def _check(run: _Run, sample: int) -> None:
    identify = run.get(verb="Identify")
    if error_codes(identify):
        raise Broken(f"Identify answers the error {error_codes(identify)}")
    base_url = identify.findtext("oai:Identify/oai:baseURL", "", NS)
    run.add("identify-base-url", base_url == run.url, f"baseURL {base_url!r}, asked {run.url!r}")
    granularity = identify.findtext("oai:Identify/oai:granularity", "", NS)
    run.add("identify-granularity", granularity in GRANULARITIES, f"granularity {granularity!r}")
    earliest_text = identify.findtext("oai:Identify/oai:earliestDatestamp", "", NS)
    earliest = _parse(earliest_text, granularity)
    deleted = identify.findtext("oai:Identify/oai:deletedRecord", "", NS)
    run.add("identify-deleted-record", deleted in ("no", "persistent", "transient"),
            f"deletedRecord {deleted!r}")  # fmt: skip
    repository_id = identify.findtext(".//id:oai-identifier/id:repositoryIdentifier", None, NS)
    run.add("identify-oai-identifier", repository_id is not None,
            f"repositoryIdentifier {repository_id!r}" if repository_id
            else "no oai-identifier description")  # fmt: skip
    _check_identity(run, identify, repository_id, base_url)

    # A whole list, through its resumption tokens.
    headers = list(_list_resumption(run, repository_id, granularity))
    datestamps = [d for _, d in headers if d is not None]
    if earliest is None:
        run.add("identify-earliest-datestamp", False,
                f"earliestDatestamp {earliest_text!r} does not fit the granularity")  # fmt: skip
    elif datestamps and min(datestamps) < earliest:
        first = _format(min(datestamps))
        run.add("identify-earliest-datestamp", False,
                f"earliestDatestamp {earliest_text} is after a record's {first}")  # fmt: skip
    else:
        run.add("identify-earliest-datestamp", True, f"earliestDatestamp {earliest_text}")

    formats = run.get(verb="ListMetadataFormats")
    for element in formats.iterfind(".//oai:metadataFormat", NS):
        prefix = element.findtext("oai:metadataPrefix", "", NS)
        schema_url = element.findtext("oai:schema", "", NS)
        namespace = element.findtext("oai:metadataNamespace", "", NS)
        _check_format(run, prefix, schema_url, namespace, sample)

    if headers and granularity in GRANULARITIES:
        _check_incremental(run, headers, granularity)
    else:
        run.add("incremental-day", None, "no records to harvest incrementally")
    _check_errors(run, repository_id)


# Where each setting placeholder_identity names shows in Identify.
IDENTIFY_ELEMENTS = {
    "repository_name": "repositoryName",
    "repository_identifier": "repositoryIdentifier",
    "admin_emails": "adminEmail",
    "base_url": "baseURL",
}


def _check_identity(
    run: _Run, identify: etree._Element, repository_id: str | None, base_url: str
) -> None:
    """A failure, not a warning: an aggregator registering an endpoint that still shows the
    shipped sample identity would list it under a name shared by every such install, mail
    an address nobody reads, and keep OAI identifiers that are not the repository's own."""
    name = identify.findtext("oai:Identify/oai:repositoryName", "", NS)
    emails = tuple(e.text or "" for e in identify.iterfind("oai:Identify/oai:adminEmail", NS))
    found = placeholder_identity(name, repository_id, emails, base_url)
    detail = "; ".join(f"{IDENTIFY_ELEMENTS[setting]}: {why}" for setting, why in found)
    run.add("identify-own-identity", not found,
            f"placeholders: {detail}" if found else f"repositoryName {name!r}")  # fmt: skip


def _list_resumption(
    run: _Run, repository_id: str | None, granularity: str
) -> Iterator[tuple[str, datetime | None]]:
    """ListIdentifiers (oai_dc) to the end: no record twice, completeListSize and cursor
    as the pages say, the last page's token empty; yields (identifier, datestamp).

    A list that comes out short of its size (or ends in noRecordsMatch) while records
    changed after it began is not judged: a server that never skips or repeats a record
    serves such records in the next incremental harvest, not in a list begun before them,
    and an operator checking during a load would otherwise read a false failure."""
    seen: set[str] = set()
    problems: list[str] = []
    counted = True  # every problem so far is one a change during the walk explains
    arguments = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc"}
    pages, sizes, tokens = 0, set[str](), set[str]()
    began: str | None = None  # the first page's responseDate, and the last's
    ended: str | None = None
    while True:
        root = run.get(**arguments)
        pages += 1
        ended = root.findtext("oai:responseDate", None, NS)
        began = began or ended
        if error_codes(root):
            if error_codes(root) != ["noRecordsMatch"] or pages > 1:
                problems.append(f"page {pages}: error {error_codes(root)}")
                counted = counted and error_codes(root) == ["noRecordsMatch"]
            break
        page = root.findall(".//oai:header", NS)
        token = root.find(".//oai:resumptionToken", NS)
        if token is not None and token.get("cursor") not in (None, str(len(seen))):
            problems.append(f"page {pages}: cursor {token.get('cursor')}, expected {len(seen)}")
        for header in page:
            identifier = header.findtext("oai:identifier", "", NS)
            if identifier in seen:
                problems.append(f"{identifier} listed twice")
                counted = False
            if repository_id and not identifier.startswith(f"oai:{repository_id}:"):
                problems.append(f"{identifier} is not oai:{repository_id}:…")
                counted = False
            seen.add(identifier)
            yield identifier, _parse(header.findtext("oai:datestamp", "", NS), "any")
        size = token.get("completeListSize") if token is not None else None
        if size:
            sizes.add(size)
        following = next_token(root)
        if following is None:
            break
        if following in tokens or pages >= MAX_PAGES or not page:
            problems.append(f"page {pages}: a resumption token that leads back or nowhere")
            counted = False
            break
        tokens.add(following)
        arguments = {"verb": "ListIdentifiers", "resumptionToken": following}
    if sizes and sizes != {str(len(seen))}:
        problems.append(f"completeListSize {', '.join(sorted(sizes))}, listed {len(seen)}")
    detail = "; ".join(problems[:5]) or f"{len(seen)} record(s) in {pages} page(s)"
    if problems and counted and _changed_since(run, began, ended, granularity):
        why = "records changed while it was walked, and such records leave a list begun before"
        run.add("list-resumption", None, f"{detail}; {why}: check again when nothing loads")
        return
    run.add("list-resumption", not problems, detail)


def _changed_since(run: _Run, began: str | None, ended: str | None, granularity: str) -> bool:
    """Whether the endpoint lists a record changed since `began` (a list's first
    responseDate, always to the second), asked in the endpoint's own granularity.

    A server that ends each list a second before its responseDate, so that a change
    committing within that second is never lost (this one does), lists a change made as
    the walk `ended` (its last page's responseDate) only once its own clock has passed it:
    the question is asked again, a second apart for up to CLOCK_WAIT seconds, until the
    endpoint's responseDate is two seconds past that (or stops moving: a cache)."""
    moment = _parse(began or "", "YYYY-MM-DDThh:mm:ssZ")
    last = _parse(ended or "", "YYYY-MM-DDThh:mm:ssZ") or moment
    if moment is None or last is None or granularity not in GRANULARITIES:
        return False
    since = moment.strftime(GRANULARITIES[granularity])
    give_up = time.monotonic() + CLOCK_WAIT
    before: datetime | None = None
    while True:
        root = run.get(verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": since})
        if root.find(".//oai:header", NS) is not None:
            return True
        said = _parse(root.findtext("oai:responseDate", "", NS), "YYYY-MM-DDThh:mm:ssZ")
        if error_codes(root) != ["noRecordsMatch"] or said is None:
            return False
        if said >= last + timedelta(seconds=2) or time.monotonic() > give_up:
            return False
        if before is not None and said <= before:  # a second later, the same answer: a cache
            return False
        before = said
        time.sleep(1)


def _check_format(run: _Run, prefix: str, schema_url: str, namespace: str, sample: int) -> None:
    """Up to `sample` records of a format: each one's root in the advertised namespace and
    valid against the advertised schema."""
    records: list[tuple[str, etree._Element]] = []
    arguments = {"verb": "ListRecords", "metadataPrefix": prefix}
    tokens: set[str] = set()
    while len(records) < sample:
        root = run.get(**arguments)
        page = root.findall(".//oai:record", NS)
        for record in page:
            metadata = record.find("oai:metadata", NS)
            if metadata is not None and len(metadata):
                records.append((record.findtext("oai:header/oai:identifier", "", NS), metadata[0]))
        following = next_token(root)
        # A page with no record but a token, or a chain past any real list's length, is
        # followed no further (the walk of the whole list says what is wrong with it).
        if following is None or following in tokens or not page or len(tokens) >= MAX_PAGES:
            break
        tokens.add(following)
        arguments = {"verb": "ListRecords", "resumptionToken": following}
    records = records[:sample]
    if not records:
        run.add(f"format-namespace:{prefix}", None, "no records")
        return
    wrong = [
        (i, etree.QName(m).namespace) for i, m in records if etree.QName(m).namespace != namespace
    ]
    run.add(f"format-namespace:{prefix}", not wrong,
            f"{wrong[0][0]}: root in {wrong[0][1]!r}, advertised {namespace!r}" if wrong
            else f"{len(records)} records rooted in {namespace}")  # fmt: skip
    schema = run.catalogue.schema(namespace, schema_url)
    if isinstance(schema, str):
        ok = None if schema.startswith(NOT_CHECKED) else False
        run.add(f"format-schema:{prefix}", ok, schema)
        return
    for identifier, metadata in records:
        if not schema.validate(etree.fromstring(etree.tostring(metadata))):
            problem = last_error(schema)
            run.add(f"format-schema:{prefix}", False,
                    f"{identifier}: invalid against {schema_url}: {problem}")  # fmt: skip
            return
    run.add(f"format-schema:{prefix}", True, f"{len(records)} records valid against {schema_url}")


def _check_incremental(
    run: _Run, headers: list[tuple[str, datetime | None]], granularity: str
) -> None:
    """A harvest from=until= one record's day (and second) lists that record and no record
    outside it; from= past the last datestamp lists nothing (noRecordsMatch)."""
    dated = [(i, d) for i, d in headers if d is not None]
    if not dated:
        for rule in ("incremental-day", "incremental-second", "from-beyond-last"):
            run.add(rule, False, "no record has a datestamp of the granularity's form")
        return
    identifier, moment = dated[len(dated) // 2]
    day = moment.strftime("%Y-%m-%d")
    found = _harvest_window(run, day, day)
    outside = [d for _, d in found if d is None or d.strftime("%Y-%m-%d") != day]
    ok = identifier in {i for i, _ in found} and not outside
    run.add("incremental-day", ok, f"from=until={day}: {len(found)} record(s)" + (
        "" if ok else f", {identifier} {'listed' if identifier in dict(found) else 'missing'}, "
        f"{len(outside)} outside the day"))  # fmt: skip
    if granularity == "YYYY-MM-DDThh:mm:ssZ":
        second = _format(moment)
        found = _harvest_window(run, second, second)
        outside = [d for _, d in found if d != moment]
        ok = identifier in {i for i, _ in found} and not outside
        run.add("incremental-second", ok, f"from=until={second}: {len(found)} record(s)" + (
            "" if ok else f", {len(outside)} outside the second"))  # fmt: skip
    else:
        run.add("incremental-second", None, "day granularity only")
    latest = max(d for _, d in dated)
    step = timedelta(seconds=1) if granularity.endswith("ssZ") else timedelta(days=1)
    beyond = (latest + step).strftime(GRANULARITIES[granularity])
    root = run.get(verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": beyond})
    codes = error_codes(root)
    listed = len(root.findall(".//oai:header", NS))
    run.add("from-beyond-last", codes == ["noRecordsMatch"],
            f"from={beyond}: " + (f"error {codes}" if codes else
            f"{listed} records instead of noRecordsMatch"))  # fmt: skip


def _harvest_window(run: _Run, start: str, end: str) -> list[tuple[str, datetime | None]]:
    arguments = {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from": start, "until": end}
    found: list[tuple[str, datetime | None]] = []
    tokens: set[str] = set()
    for _ in range(MAX_PAGES):
        root = run.get(**arguments)
        for header in root.iterfind(".//oai:header", NS):
            found.append((header.findtext("oai:identifier", "", NS),
                          _parse(header.findtext("oai:datestamp", "", NS), "any")))  # fmt: skip
        following = next_token(root)
        if following is None or following in tokens:
            break
        tokens.add(following)
        arguments = {"verb": "ListIdentifiers", "resumptionToken": following}
    return found


ERROR_CASES: tuple[tuple[str, str, Callable[[str | None], dict[str, str]]], ...] = (
    ("error-bad-verb", "badVerb", lambda rid: {"verb": "Frobnicate"}),
    ("error-bad-argument", "badArgument", lambda rid: {"verb": "ListRecords"}),
    ("error-bad-argument-illegal", "badArgument",
     lambda rid: {"verb": "Identify", "frobnicate": "1"}),
    ("error-bad-token", "badResumptionToken",
     lambda rid: {"verb": "ListIdentifiers", "resumptionToken": "not-a-token-0000"}),
    ("error-cannot-disseminate", "cannotDisseminateFormat",
     lambda rid: {"verb": "ListRecords", "metadataPrefix": "no_such_format_0"}),
    ("error-id-does-not-exist", "idDoesNotExist",
     lambda rid: {"verb": "GetRecord", "metadataPrefix": "oai_dc",
                  "identifier": f"oai:{rid or 'example.org'}:no/such/record/0"}),
)  # fmt: skip


def _check_errors(run: _Run, repository_id: str | None) -> None:
    for rule, code, arguments in ERROR_CASES:
        query = arguments(repository_id)
        try:
            codes = error_codes(run.get(**query))
        except Broken as e:
            run.add(rule, False, str(e))
            continue
        shown = "&".join(f"{k}={v}" for k, v in query.items())
        run.add(rule, codes == [code], f"{shown}: {codes or 'no error'}, expected {code}")


def _parse(text: str, granularity: str) -> datetime | None:
    formats = (
        GRANULARITIES.values() if granularity == "any" else [GRANULARITIES.get(granularity, "")]
    )
    for pattern in formats:
        try:
            return datetime.strptime(text.strip(), pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def _format(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_text(results: list[Result], out: Callable[[str], None]) -> None:
    labels = {"pass": "PASS", "fail": "FAIL", "not checked": "SKIP"}
    for r in results:
        out(f"{labels[r.status]}  {r.rule}: {r.detail}")
    failed = sum(r.status == "fail" for r in results)
    out(f"{len(results)} rules: {failed} failed, "
        f"{sum(r.status == 'not checked' for r in results)} not checked")  # fmt: skip


def http_fetch(timeout: float = 60) -> Fetch:
    """GET over HTTP(S) with the standard library: (status, body), errors as statuses."""
    import urllib.error
    import urllib.request

    def fetch(url: str) -> tuple[int, bytes]:
        request = urllib.request.Request(url, headers={"User-Agent": "oaipmh-server check"})  # noqa: S310
        try:
            # http(s) only: the CLI refuses other URLs, schemas come from the same origin.
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as e:
            return int(e.code), bytes(e.read() or b"")

    return fetch
