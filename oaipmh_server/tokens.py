"""Signed, stateless resumption tokens (OAI-PMH 2.0, 3.5).

A token carries everything needed to answer the next page: the verb and the original
arguments, the `until` cut-off frozen when the harvest began, the keyset position reached
(the last datestamp and local id served, or the last set spec), the cursor and the
completeListSize counted on the first page. Nothing is kept on the server, so tokens never
expire, survive restarts and work on any worker sharing the secret. An HMAC (itsdangerous)
makes forged or damaged tokens fail as badResumptionToken instead of reaching the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from itsdangerous import BadData, URLSafeSerializer
from itsdangerous.encoding import base64_encode

from .errors import BadResumptionToken
from .record_source import Position

_SALT = "oaipmh-server resumption token v1"


@dataclass(frozen=True)
class ResumptionState:
    """Where a list harvest stands; the whole content of a token."""

    verb: str
    metadata_prefix: str | None
    set_spec: str | None
    from_: datetime | None
    until: datetime | None
    position: Position | None
    set_position: str | None
    cursor: int
    complete_list_size: int
    # The harvest this list belongs to: drawn at its first page, carried unchanged through
    # its chain, written in each access line so a report can follow a chain page by page.
    # None in a token handed out before harvest ids existed (still accepted).
    harvest: str | None = None


def new_harvest_id() -> str:
    """A short random id for a list's chain: 6 random bytes, 8 URL-safe characters (a
    token grows by about 20 characters). Unique enough to tell apart the chains of a day
    of logs, not a secret: it is in the token's readable payload and in the access log."""
    return secrets.token_urlsafe(6)


def encode_token(state: ResumptionState, secret: str) -> str:
    payload: dict[str, Any] = {"v": state.verb, "c": state.cursor, "n": state.complete_list_size}
    if state.metadata_prefix is not None:
        payload["m"] = state.metadata_prefix
    if state.set_spec is not None:
        payload["s"] = state.set_spec
    if state.from_ is not None:
        payload["f"] = _seconds(state.from_)
    if state.until is not None:
        payload["u"] = _seconds(state.until)
    if state.position is not None:
        payload["p"] = [_seconds(state.position.datestamp), state.position.local_id]
    if state.set_position is not None:
        payload["p"] = state.set_position
    if state.harvest is not None:
        payload["h"] = state.harvest
    return str(_serializer((secret,)).dumps(payload))


def decode_token(
    token: str, secret: str, verb: str, previous: Sequence[str] = ()
) -> ResumptionState:
    """The state a token carries, or BadResumptionToken if it is not one of ours for `verb`.
    A token signed with one of the `previous` secrets is ours too: harvests in progress go
    on while the secret is rotated (itsdangerous tries each key, newest last)."""
    try:
        payload = _serializer((*previous, secret)).loads(token)
    except (BadData, ValueError, UnicodeError):
        raise BadResumptionToken("The resumptionToken is not valid (damaged or forged).") from None
    try:
        if payload["v"] != verb:
            raise BadResumptionToken(f"This resumptionToken continues {payload['v']}, not {verb}.")
        position = payload["p"]
        list_sets = verb == "ListSets"
        return ResumptionState(
            verb=verb,
            metadata_prefix=_optional(payload, "m", str),
            set_spec=_optional(payload, "s", str),
            from_=_time(payload.get("f")),
            until=_time(payload.get("u")),
            position=None if list_sets else _position(position),
            set_position=_kind(position, str) if list_sets else None,
            cursor=_non_negative(payload["c"]),
            complete_list_size=_positive(payload["n"]),
            harvest=_optional(payload, "h", str),
        )
    # OSError: a time past what the platform's clock holds (fromtimestamp, EOVERFLOW).
    except (KeyError, TypeError, IndexError, ValueError, OverflowError, OSError):
        # Signed by us but not of a shape we wrote: a token from an incompatible version.
        raise BadResumptionToken("The resumptionToken is not valid (unknown format).") from None


class _TokenSerializer(URLSafeSerializer):
    """itsdangerous's URL-safe serializer, writing the payload uncompressed (orjson, then
    base64) where it tries zlib on every payload: compressing a token's 130 bytes of JSON
    (zlib's set-up alone allocates a quarter of a megabyte) was three quarters of the 42 µs
    of making a token, which every page of a harvest does, and saved 11 characters. The
    signature is the same; tokens compressed before are read as ever (a leading "."), and
    the versions before read these (`test_a_token_is_read_by_the_versions_before`)."""

    def dump_payload(self, obj: Any) -> bytes:
        return base64_encode(orjson.dumps(obj))


@lru_cache(maxsize=8)
def _serializer(keys: tuple[str, ...]) -> URLSafeSerializer:
    """The serializer for these secrets (the newest last), made once: making one is a
    sixth of a token's encoding and checking, which every page of a harvest does."""
    return _TokenSerializer(list(keys), salt=_SALT)


def peek(token: str) -> tuple[str | None, int | None]:
    """The harvest id and cursor a token claims, read without checking its signature: for
    the access line of a request turned away before its token is checked (503) or whose
    token is refused, so the report can tell which chain stopped there. Never used to
    answer anything; (None, None) for anything that is not a readable token."""
    try:
        payload = URLSafeSerializer("", salt=_SALT).load_payload(token.rsplit(".", 1)[0].encode())
    except (BadData, ValueError, UnicodeError):
        return None, None
    if not isinstance(payload, dict):
        return None, None
    harvest, cursor = payload.get("h"), payload.get("c")
    return (
        harvest if isinstance(harvest, str) else None,
        cursor if isinstance(cursor, int) and not isinstance(cursor, bool) else None,
    )


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _time(value: Any) -> datetime | None:
    return None if value is None else _required_time(value)


def _required_time(value: Any) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("time is not an integer")
    return datetime.fromtimestamp(value, UTC)


def _position(value: Any) -> Position:
    """A records list's keyset position, [seconds, local id], as encode_token writes it:
    every token we hand out continues after the last record of a page, so a token with
    no position, or one of another shape, is not ours (it would restart the list from
    its first record, under the cursor of a later page)."""
    if not isinstance(value, list) or len(value) != 2:
        raise TypeError("position is not [seconds, local id]")
    return Position(_required_time(value[0]), _kind(value[1], str))


def _kind(value: Any, kind: type) -> Any:
    if not isinstance(value, kind):
        raise TypeError(kind.__name__)
    return value


def _optional(payload: dict[str, Any], key: str, kind: type) -> Any:
    value = payload.get(key)
    if value is not None and not isinstance(value, kind):
        raise TypeError(key)
    return value


def _positive(value: Any) -> int:
    """A completeListSize: a list with a next page holds at least one item (and the
    schema's positiveInteger refuses 0)."""
    count = _non_negative(value)
    if count == 0:
        raise ValueError("an empty list has no token")
    return count


def _non_negative(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a count")
    return value
