"""The six verbs and their arguments (OAI-PMH 2.0, section 4), declared as data.

`parse_request` turns the raw (name, value) pairs of a GET query or POST body into a typed
`Request`, or raises badVerb / badArgument. It settles presence, repetition and syntax;
whether a prefix, set or identifier exists is for the verb to decide (cannotDisseminateFormat,
idDoesNotExist). Syntax is the XSD's: a value the schema would reject is never echoed back,
so it is a badArgument here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from .datestamps import Granularity, end_of, parse_datestamp
from .errors import BadArgument, BadVerb
from .xml import has_illegal_characters


@dataclass(frozen=True)
class Verb:
    name: str
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    exclusive: str | None = None  # resumptionToken: valid only on its own


_LIST = frozenset({"from", "until", "set"})
VERBS: dict[str, Verb] = {
    v.name: v
    for v in (
        Verb("Identify"),
        Verb("ListMetadataFormats", optional=frozenset({"identifier"})),
        Verb("ListSets", exclusive="resumptionToken"),
        Verb("ListIdentifiers", frozenset({"metadataPrefix"}), _LIST, "resumptionToken"),
        Verb("ListRecords", frozenset({"metadataPrefix"}), _LIST, "resumptionToken"),
        Verb("GetRecord", frozenset({"identifier", "metadataPrefix"})),
    )
}

# Patterns of OAI-PMH.xsd (metadataPrefixType, setSpecType), anchored by fullmatch.
METADATA_PREFIX = re.compile(r"[A-Za-z0-9\-_\.!~\*'\(\)]+", re.ASCII)
SET_SPEC = re.compile(r"[A-Za-z0-9\-_\.!~\*'\(\)]+(:[A-Za-z0-9\-_\.!~\*'\(\)]+)*", re.ASCII)
# An absolute URI of RFC 3986 (scheme ":" hier-part ["?" query] ["#" fragment]). OAI
# identifiers are xs:anyURI, whose lexical space is that of RFC 3986 (as libxml2 and Xerces
# check it): a `%` must begin an escape (`%2F`), `#` comes once, `[` `]` only around an IP
# address. See `is_uri`.
_UNRESERVED, _SUB_DELIMS, _ESCAPE = r"A-Za-z0-9\-._~", r"!$&'()*+,;=", r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_ESCAPE})"
_AUTHORITY = (
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_ESCAPE})*@)?"  # userinfo
    rf"(?:\[[{_UNRESERVED}{_SUB_DELIMS}:]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_ESCAPE})*)"  # host
    r"(?::[0-9]*)?"  # port
)
_HIER_PART = (
    rf"(?://{_AUTHORITY}(?:/{_PCHAR}*)*"  # //authority/path
    rf"|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"  # /path
    rf"|{_PCHAR}+(?:/{_PCHAR}*)*"  # path (oai:repository.example.org:10722/1)
    r"|)"
)
URI = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.\-]*:{_HIER_PART}"
    rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?",
    re.ASCII,
)
# Bounds no honest request comes near; longer values are not echoed.
MAX_VALUE_LENGTH = 2048


@dataclass(frozen=True)
class Request:
    """A syntactically valid request. `arguments` is what <request> may echo."""

    verb: str
    arguments: dict[str, str] = field(default_factory=dict)
    identifier: str | None = None
    metadata_prefix: str | None = None
    set_spec: str | None = None
    from_: datetime | None = None
    until: datetime | None = None  # inclusive: a day-granularity until covers the whole day
    resumption_token: str | None = None


def parse_request(pairs: Iterable[tuple[str, str]]) -> Request:
    """Validate the arguments of one request against the VERBS table and the XSD patterns."""
    pairs = list(pairs)
    verbs = [value for name, value in pairs if name == "verb"]
    if not verbs:
        raise BadVerb("The verb argument is missing.")
    if len(verbs) > 1:
        raise BadVerb("The verb argument is repeated.")
    verb = VERBS.get(verbs[0])
    if verb is None:
        raise BadVerb("The value of the verb argument is not a legal OAI-PMH verb.")

    arguments: dict[str, str] = {}
    allowed = verb.required | verb.optional | ({verb.exclusive} if verb.exclusive else set())
    for name, value in pairs:
        if name == "verb":
            continue
        if name not in allowed:
            raise BadArgument(f"{verb.name} does not take the argument {_shown(name)}.")
        if name in arguments:
            raise BadArgument(f"The argument {name} is repeated.")
        if len(value) > MAX_VALUE_LENGTH or has_illegal_characters(value):
            raise BadArgument(f"The value of {name} is too long or has illegal characters.")
        arguments[name] = value

    if verb.exclusive and verb.exclusive in arguments:
        others = sorted(set(arguments) - {verb.exclusive})
        if others:
            raise BadArgument(
                f"{verb.exclusive} is exclusive: it cannot go with {', '.join(others)}."
            )
        return Request(verb.name, arguments, resumption_token=arguments[verb.exclusive])

    missing = sorted(verb.required - set(arguments))
    if missing:
        raise BadArgument(f"{verb.name} requires the argument {', '.join(missing)}.")

    prefix = arguments.get("metadataPrefix")
    if prefix is not None and not METADATA_PREFIX.fullmatch(prefix):
        raise BadArgument("The metadataPrefix is not of the form the schema allows.")
    set_spec = arguments.get("set")
    if set_spec is not None and not SET_SPEC.fullmatch(set_spec):
        raise BadArgument("The set is not a setSpec of the form the schema allows.")
    identifier = arguments.get("identifier")
    if identifier is not None and not is_uri(identifier):
        raise BadArgument("The identifier is not a URI.")
    from_, until = _date_range(arguments.get("from"), arguments.get("until"))
    return Request(
        verb.name,
        arguments,
        identifier=identifier,
        metadata_prefix=prefix,
        set_spec=set_spec,
        from_=from_,
        until=until,
    )


def is_uri(text: str) -> bool:
    """Whether `text` is an absolute URI, as an OAI identifier (xs:anyURI) must be. The one
    check for identifiers both ways: a request's `identifier` that is not one is a
    badArgument (it would make the echo in <request> invalid), and a record id is loaded only
    if the OAI identifier made from it is one (else every response naming it is invalid)."""
    return URI.fullmatch(text) is not None


def _date_range(
    from_text: str | None, until_text: str | None
) -> tuple[datetime | None, datetime | None]:
    """from and until: each a real date of either granularity, the same one, from <= until."""
    parsed: dict[str, tuple[datetime, Granularity]] = {}
    for name, text in (("from", from_text), ("until", until_text)):
        if text is None:
            continue
        try:
            parsed[name] = parse_datestamp(text)
        except ValueError:
            raise BadArgument(
                f"The {name} argument must be a valid date, YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ."
            ) from None
    if len(parsed) == 2:
        (start, start_granularity), (end, end_granularity) = parsed["from"], parsed["until"]
        if start_granularity is not end_granularity:
            raise BadArgument("The from and until arguments have different granularities.")
        if start > end:
            raise BadArgument("The from argument is later than the until argument.")
    from_ = parsed["from"][0] if "from" in parsed else None
    until = end_of(*parsed["until"]) if "until" in parsed else None
    return from_, until


def _shown(name: str) -> str:
    """An argument name fit for a message: short; illegal characters are replaced later."""
    return repr(name if len(name) <= 40 else name[:40] + "…")
