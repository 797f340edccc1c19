"""The harvest report: who harvests the repository, and whether each list harvest got every page,
read back from the server's own JSON access lines.

Each list page the server answers writes the harvest it belongs to in its access line: the
chain's id (drawn at the first page and carried in the resumption token), the page's
position, how many items it held, the list's size and whether a token was handed out. A
harvest is complete only when its first page, its last page and every page between them
(positions that follow on) are in the log; otherwise it stopped, and the report says at
which position, and why when the log says (a 503, a refused token, an OAI error).

It streams: several logs (several servers behind a proxy) are merged by time, and the state
kept is one entry per chain still open and one per harvester, and the harvests closed,
which the report lists (a few hundred bytes each: a month of 450,000 small incremental
harvests, a million lines, takes about 220 MB). A chain that goes quiet for `quiet` (an
hour) is closed as incomplete, so chains left open do not pile up. Lines that are not
access lines (the start-up line, warnings, a line cut short, journalctl's prefixes) are
skipped; lines written by an older version, without harvest ids, are followed by
harvester and verb, and never counted complete, since nothing in them says where a list
ended.
"""

from __future__ import annotations

import heapq
import json
import re
import statistics
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import orjson

from .harvesters import known_name

LIST_VERBS = frozenset({"ListRecords", "ListIdentifiers", "ListSets"})
QUIET = timedelta(hours=1)
Line = dict[str, Any]
Key = tuple[str | None, str | None]  # (user agent, client address)
# The access line's time: UTC, milliseconds, so that times compare as text. [0-9], not
# \d, which matches the digits of every script.
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


def access_lines(stream: Iterable[str]) -> Iterator[Line]:
    """The access lines of a log: each line's JSON object from its first `{` (so journalctl's
    and syslog's prefixes do not matter); anything else is skipped."""
    for raw in stream:
        start = raw.find("{")
        if start < 0:
            continue
        try:
            line = orjson.loads(raw[start:])  # a third of the time json takes: most of the read
        except orjson.JSONDecodeError:
            continue
        if isinstance(line, dict) and _is_time(line.get("time")):
            yield line


def _is_time(value: Any) -> bool:
    """Whether `value` is an access line's time, a real moment (not a 30 February): the
    report computes with it (when a chain went quiet, how long it ran)."""
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        return False
    try:
        _parse(value) - QUIET
    except (ValueError, OverflowError):
        return False
    return True


def merged(streams: Iterable[Iterable[str]]) -> Iterator[Line]:
    """The access lines of several logs (one per server) in time order, read side by side:
    each server writes its lines in time order, so a chain served by several is followed
    page by page. Times are the server's fixed-width UTC ISO form, compared as text."""
    lines = [access_lines(s) for s in streams]
    return lines[0] if len(lines) == 1 else heapq.merge(*lines, key=_time)


def _time(line: Line) -> str:
    return str(line["time"])


@dataclass(slots=True)
class Harvest:
    """One list chain: a first page and the pages its tokens led to.

    The report keeps every harvest of the log, so a month of incremental harvests is
    hundreds of thousands of these: slots, the list arguments that recur shared (see
    `_shared`) and no list of missing pages until one is missing keep each to a few
    hundred bytes (about 900 before)."""

    id: str | None
    owner: Key
    verb: str
    format: str | None
    set: str | None
    from_: str | None
    until: str | None
    first: str
    last: str
    started: bool  # its first page is in the log
    tracked: bool = True  # its lines carry positions (not an older version's)
    pages: int = 0
    records: int = 0
    next_cursor: int | None = 0  # where the next page starts; None while unknown
    size: int | None = None
    ended: bool = False  # its last page was served
    missing: list[tuple[int, int]] | tuple[()] = ()
    failure: str | None = None  # the last failed request since the last page served
    reason: str | None = None

    @property
    def complete(self) -> bool:
        return self.started and self.ended and self.tracked and not self.missing

    def settle(self, why: str) -> None:
        """Why it is incomplete, as a repository manager would read it; `why` is what
        closed it when it did not end (quiet, the log's end)."""
        reasons = []
        if not self.tracked:
            reasons.append(
                "logged without harvest ids (an older version): "
                "whether every page was served is unknown"
            )
        if not self.started:
            reasons.append("its first page is not in the log (begun before it?)")
        reasons += [
            f"pages missing from the log: positions {a} to {b - 1}" for a, b in self.missing
        ]
        if not self.ended and self.tracked:
            reasons.append(f"{self.failure}, then {why}" if self.failure else why)
        self.reason = "; ".join(reasons) or None

    def as_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {
            "id": self.id,
            "verb": self.verb,
            "format": self.format,
            "set": self.set,
            "from": self.from_,
            "until": self.until,
            "pages": self.pages,
            "records": self.records,
            "list_size": self.size,
            "first_request": self.first,
            "last_request": self.last,
            "duration_seconds": seconds_between(self.first, self.last),
        }
        if not self.complete:
            value["stopped_at"] = self.next_cursor
            value["reason"] = self.reason
        return value


@dataclass
class Harvester:
    """One user agent at one client address, and what it did."""

    agent: str | None
    address: str | None
    first_seen: str
    last_seen: str
    requests: int = 0
    complete: list[Harvest] = field(default_factory=list)
    incomplete: list[Harvest] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    key: Key = field(init=False)  # the one its harvests name as their owner

    def __post_init__(self) -> None:
        self.key = (self.agent, self.address)

    @property
    def name(self) -> str | None:
        return known_name(self.agent)

    def cadence(self) -> list[dict[str, Any]]:
        """How often each kind of list (verb, format, set) was begun, and from which
        `from`: an incremental harvester's rhythm."""
        begun: dict[tuple[str, str | None, str | None], list[Harvest]] = {}
        for harvest in sorted([*self.complete, *self.incomplete], key=lambda h: h.first):
            if harvest.started:
                begun.setdefault((harvest.verb, harvest.format, harvest.set), []).append(harvest)
        rhythm = []
        for (verb, prefix, spec), harvests in begun.items():
            gaps = [seconds_between(a.first, b.first) for a, b in pairwise(harvests)]
            rhythm.append({
                "verb": verb, "format": prefix, "set": spec, "harvests": len(harvests),
                "every_seconds": statistics.median(gaps) if gaps else None,
                "from": [h.from_ for h in harvests],
            })  # fmt: skip
        return rhythm

    def as_json(self) -> dict[str, Any]:
        return {
            "user_agent": self.agent,
            "address": self.address,
            "name": self.name,
            "requests": self.requests,
            "complete": [h.as_json() for h in self.complete],
            "incomplete": [h.as_json() for h in self.incomplete],
            "cadence": self.cadence(),
            "errors": dict(sorted(self.errors.items())),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        }


class Report:
    """Access lines in (in time order, through `feed`), harvesters out (`finish`)."""

    def __init__(self, quiet: timedelta = QUIET) -> None:
        self.quiet = quiet
        self.harvesters: dict[Key, Harvester] = {}
        self.chains: dict[str, Harvest] = {}  # open chains by harvest id
        self.untracked: dict[tuple[Key, str], Harvest] = {}  # open chains without ids
        # Chains closed as quiet, by id: a harvester that comes back with the next token
        # after a long pause takes its chain up again (they are in the report anyway).
        self.paused: dict[str, Harvest] = {}
        self._minute = ""

    def feed(self, line: Line) -> None:
        arguments = line.get("arguments")
        if not isinstance(arguments, dict) or "verb" not in arguments:
            return  # not an OAI-PMH request (a page, /healthz, a static file)
        now = _time(line)
        if now[:16] != self._minute:  # once a minute: close the chains gone quiet
            self._minute = now[:16]
            self._close_quiet(now)
        agent, client = line.get("agent"), line.get("client")
        key = (agent if type(agent) is str else None, client if type(client) is str else None)
        who = self.harvesters.get(key)
        if who is None:
            who = self.harvesters[key] = Harvester(key[0], key[1], now, now)
        key = who.key  # not this line's: its strings would be kept by each harvest
        who.requests += 1
        who.last_seen = now
        errors = line.get("errors")
        errors = [str(code) for code in errors] if errors and isinstance(errors, list) else []
        if errors:
            who.errors.update(errors)
        status = line.get("status")
        if status != 200 and isinstance(status, int) and status >= 400:
            who.errors[f"HTTP {status}"] += 1
        verb = arguments.get("verb")
        if verb in LIST_VERBS:
            self._list_request(line, key, str(verb), arguments, errors, status)

    def finish(self) -> list[Harvester]:
        """Close what is still open (in progress when the log ends) and return the
        harvesters, ordered by user agent and address."""
        for harvest in [*self.chains.values(), *self.untracked.values()]:
            self._close(harvest, "still under way when the log ends")
        self.chains.clear()
        self.untracked.clear()
        return sorted(self.harvesters.values(), key=lambda h: (h.agent or "", h.address or ""))

    def _list_request(
        self,
        line: Line,
        key: Key,
        verb: str,
        arguments: dict[str, Any],
        errors: list[str],
        status: Any,
    ) -> None:
        now = _time(line)
        page = line.get("harvest") if isinstance(line.get("harvest"), dict) else None
        harvest_id = _text(page.get("id")) if page else None
        served = status == 200 and not errors
        older = "harvest" not in line  # written by a version without harvest ids
        if "resumptionToken" not in arguments:
            if not served:
                return  # a list refused at its first page: only an error
            chain = Harvest(
                harvest_id, key, sys.intern(verb), _shared(arguments.get("metadataPrefix")),
                _shared(arguments.get("set")), _shared(arguments.get("from")),
                _shared(arguments.get("until")), now, now, started=True, tracked=not older,
            )  # fmt: skip
            if older:
                previous = self.untracked.pop((key, verb), None)
                if previous is not None:
                    self._close(previous, "a new list begun")
                self.untracked[(key, verb)] = chain
            elif harvest_id is not None:
                self.chains[harvest_id] = chain
            self._page(chain, line, page)
            return
        if page is None and not older:
            # A token this version could not even read (it logs every token it can, even
            # one it refuses): never one it handed out, so no harvest of it; only an error.
            return
        chain = self._chain(harvest_id, key, verb, now, tracked=page is not None)
        chain.last = now
        if served:
            self._page(chain, line, page)
        elif errors == ["noRecordsMatch"] and status == 200:
            # Every record left in the list changed after it began: the server ends it
            # there (the changes are in the next incremental harvest), nothing is lost.
            chain.ended, chain.failure = True, None
            self._close(chain, "")
        else:
            chain.failure = _failure(errors, status)

    def _chain(
        self, harvest_id: str | None, key: Key, verb: str, now: str, tracked: bool
    ) -> Harvest:
        """The open chain a resumed request continues: by its id; without one (an older
        version's line, or a token handed out before ids), the harvester's open chain of
        that verb. A chain not open is one begun before the log (or closed as quiet)."""
        chain = self.chains.get(harvest_id) if harvest_id else self.untracked.get((key, verb))
        if chain is None and harvest_id in self.paused:
            chain = self.chains[harvest_id] = self.paused.pop(harvest_id)
            self.harvesters[chain.owner].incomplete.remove(chain)
            chain.reason = None
        if chain is None:
            chain = Harvest(harvest_id, key, sys.intern(verb), None, None, None, None, now, now,
                            started=False, tracked=tracked, next_cursor=None)  # fmt: skip
            if harvest_id:
                self.chains[harvest_id] = chain
            else:
                self.untracked[(key, verb)] = chain
        return chain

    def _page(self, chain: Harvest, line: Line, page: dict[str, Any] | None) -> None:
        """A page served in `chain`: counted once (a page asked again is a retry), checked
        to follow on from the one before, and the chain closed at its last page."""
        chain.last = _time(line)
        chain.failure = None
        records: int = line["records"] if isinstance(line.get("records"), int) else 0
        cursor = page.get("cursor") if page else None
        count = page.get("count") if page else None
        if page is None or not isinstance(cursor, int) or not isinstance(count, int):
            chain.pages += 1  # no position: an older version's line, counted as it comes
            chain.records += records
            chain.next_cursor = None
            if page is not None and page.get("more") is False:
                chain.ended = True
                self._close(chain, "")
            return
        if chain.next_cursor is not None:
            if cursor < chain.next_cursor:
                return  # served before: the harvester asked again
            if cursor > chain.next_cursor:
                chain.missing = [*chain.missing, (chain.next_cursor, cursor)]
        chain.pages += 1
        chain.records += count if chain.verb == "ListSets" else records
        chain.next_cursor = cursor + count
        if isinstance(page.get("size"), int):
            chain.size = page["size"]
        if page.get("more") is False:
            chain.ended = True
            self._close(chain, "")

    def _close(self, chain: Harvest, why: str) -> None:
        if chain.id is not None:
            self.chains.pop(chain.id, None)
        elif self.untracked.get((chain.owner, chain.verb)) is chain:
            del self.untracked[(chain.owner, chain.verb)]
        if not chain.complete:
            chain.settle(why)
        who = self.harvesters[chain.owner]
        (who.complete if chain.complete else who.incomplete).append(chain)

    def _close_quiet(self, now: str) -> None:
        since = _format(_parse(now) - self.quiet)
        quiet = [c for c in [*self.chains.values(), *self.untracked.values()] if c.last < since]
        for chain in quiet:
            self._close(chain, f"no request for {_duration(self.quiet.total_seconds())}")
            if chain.id is not None:
                self.paused[chain.id] = chain


def report(lines: Iterable[Line], quiet: timedelta = QUIET) -> list[Harvester]:
    """The harvesters of a stream of access lines in time order (see `merged`)."""
    state = Report(quiet)
    for line in lines:
        state.feed(line)
    return state.finish()


def _failure(errors: list[str], status: Any) -> str:
    if status == 503:
        return "turned away with 503 (too many harvests at once, or the database did not answer)"
    if "badResumptionToken" in errors:
        return "its token was refused (badResumptionToken)"
    if errors:
        return f"answered with {', '.join(errors)}"
    return f"answered with HTTP {status}"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _shared(value: Any) -> str | None:
    """A list argument as text, one string for all the harvests that share it: a verb, a
    format, a set, a `from` recur in every harvest of a month, and each line's parse
    makes them anew."""
    return sys.intern(value) if isinstance(value, str) else None


def _parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_between(first: str, last: str) -> float:
    try:
        return round((_parse(last) - _parse(first)).total_seconds(), 3)
    except ValueError:
        return 0.0


def _duration(seconds: float) -> str:
    """A span a person reads: 45 s, 3 min 10 s, 2 h 5 min, 1 d 3 h."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{seconds:.3g} s" if seconds < 10 else f"{whole} s"


def as_json(harvesters: list[Harvester]) -> Iterator[str]:
    """The JSON report (an array, indented by 2), in pieces of a harvester each: the whole
    document of a month's log is hundreds of MB as text and several times that as Python
    objects, which it never is at once."""
    if not harvesters:
        yield "[]"
        return
    for n, who in enumerate(harvesters):
        text = json.dumps(who.as_json(), indent=2, ensure_ascii=False)
        yield ("[\n  " if n == 0 else ",\n  ") + text.replace("\n", "\n  ")
    yield "\n]"


def as_table(harvesters: list[Harvester]) -> Iterator[str]:
    """The report for a person: one block per harvester, one line per harvest."""
    if not harvesters:
        yield "No OAI-PMH requests in the log."
    for who in harvesters:
        name = f"{who.name}: " if who.name else ""
        yield f"{name}{who.agent or '(no user agent)'}"
        address = who.address or "unknown"
        yield f"  address {address}, {who.requests:,} requests, last seen {who.last_seen}"
        for label, harvests in (("complete", who.complete), ("incomplete", who.incomplete)):
            for h in harvests:
                size = f" of {h.size:,}" if h.size is not None else ""
                pages = f"{h.pages:,} page{'' if h.pages == 1 else 's'}"
                noun = ("set" if h.verb == "ListSets" else "record") + "s" * (h.records != 1)
                records = f"{h.records:,} {noun}{size if label == 'incomplete' else ''}"
                when = f"{h.first} for {_duration(seconds_between(h.first, h.last))}"
                yield f"  {label:<10} {_what(h.verb, h.format, h.set, h.from_, h.until)}: " + (
                    f"{pages}, {records}, {when}"
                )
                if label == "incomplete":
                    where = "unknown" if h.next_cursor is None else f"{h.next_cursor:,}{size}"
                    yield f"             stopped at position {where}: {h.reason}"
        for rhythm in who.cadence():
            if rhythm["harvests"] > 1:
                froms = ", ".join(f or "the beginning" for f in rhythm["from"][-3:])
                what = _what(rhythm["verb"], rhythm["format"], rhythm["set"], None, None)
                yield (
                    f"  cadence    {what}: "
                    f"{rhythm['harvests']} lists, every {_duration(rhythm['every_seconds'])}, "
                    f"from {froms}"
                )
        if who.errors:
            counted = ", ".join(f"{code} {n}" for code, n in sorted(who.errors.items()))
            yield f"  errors     {counted}"
        yield ""


def _what(
    verb: str, prefix: str | None, spec: str | None, from_: str | None, until: str | None
) -> str:
    parts = [verb] if verb == "ListSets" else [verb, prefix or "?"]  # sets have no format
    parts += [
        f"{name}={value}"
        for name, value in (("set", spec), ("from", from_), ("until", until))
        if value
    ]
    return " ".join(parts)
