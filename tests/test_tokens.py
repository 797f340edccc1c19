"""3.5: resumption tokens are signed, carry the whole state, and refuse anything else."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from itsdangerous import URLSafeSerializer

from oaipmh_server.errors import BadResumptionToken
from oaipmh_server.record_source import Position
from oaipmh_server.tokens import (
    ResumptionState,
    decode_token,
    encode_token,
    new_harvest_id,
    peek,
)

STATE = ResumptionState(
    verb="ListRecords",
    metadata_prefix="oai_dc",
    set_spec="com_10722_1:col_10722_5",
    from_=datetime(2015, 1, 1, tzinfo=UTC),
    until=datetime(2026, 1, 2, 3, 4, 4, tzinfo=UTC),
    position=Position(datetime(2015, 7, 21, 2, 23, 32, tzinfo=UTC), "10722/212116"),
    set_position=None,
    cursor=200,
    complete_list_size=1234,
)


def test_round_trip() -> None:
    token = encode_token(STATE, "secret")
    assert decode_token(token, "secret", "ListRecords") == STATE


def test_token_is_url_and_xml_safe() -> None:
    token = encode_token(STATE, "secret")
    assert token.isascii()
    assert all(c.isalnum() or c in "-_." for c in token)


def test_another_secret_rejects_it() -> None:
    token = encode_token(STATE, "secret")
    with pytest.raises(BadResumptionToken):
        decode_token(token, "other secret", "ListRecords")


def test_another_verb_rejects_it() -> None:
    token = encode_token(STATE, "secret")
    with pytest.raises(BadResumptionToken):
        decode_token(token, "secret", "ListIdentifiers")


def test_every_single_character_change_is_detected() -> None:
    token = encode_token(STATE, "secret")
    for i in range(len(token)):
        for replacement in "A_":
            tampered = token[:i] + replacement + token[i + 1 :]
            if tampered == token:
                continue
            try:
                decoded = decode_token(tampered, "secret", "ListRecords")
            except BadResumptionToken:
                continue
            # base64 padding bits may absorb a change without altering the payload
            assert decoded == STATE


@pytest.mark.parametrize("garbage", ["", ".", "x" * 5000, "a.b.c", "\u00e9t\u00e9", "eyJ2IjoxfQ.x"])
def test_garbage_is_bad_resumption_token(garbage: str) -> None:
    with pytest.raises(BadResumptionToken):
        decode_token(garbage, "secret", "ListRecords")


def test_truncated_tokens_are_rejected() -> None:
    token = encode_token(STATE, "secret")
    for cut in range(1, len(token)):
        with pytest.raises(BadResumptionToken):
            decode_token(token[:cut], "secret", "ListRecords")


def test_a_previous_secret_still_decodes_it() -> None:
    """Rotation: a token signed with a secret since replaced is honoured while listed."""
    token = encode_token(STATE, "old secret")
    assert decode_token(token, "new secret", "ListRecords", ["old secret"]) == STATE
    with pytest.raises(BadResumptionToken):
        decode_token(token, "new secret", "ListRecords", ["another"])


def test_harvest_id_carried_in_the_token() -> None:
    """A list's chain is named by a short id the token carries, so the access log can
    follow it page by page; a harvester sees only the token's opaque bytes."""
    state = replace(STATE, harvest=new_harvest_id())
    assert len(state.harvest or "") == 8
    token = encode_token(state, "secret")
    assert decode_token(token, "secret", "ListRecords") == state
    assert peek(token) == (state.harvest, 200)
    assert len(token) - len(encode_token(STATE, "secret")) <= 24  # the token stays short


def test_a_token_is_read_by_the_versions_before() -> None:
    """Servers of two versions share a database while an upgrade rolls through them: a
    token this version hands out is read by the readers before it (itsdangerous's
    URL-safe serializer with the same salt and secret, as 1.0.0 reads it), with the same
    payload."""
    token = encode_token(replace(STATE, harvest="abcdefgh"), "secret")
    older = URLSafeSerializer("secret", salt="oaipmh-server resumption token v1")
    assert older.loads(token) == {
        "v": "ListRecords", "c": 200, "n": 1234, "m": "oai_dc", "s": "com_10722_1:col_10722_5",
        "f": 1420070400, "u": 1767323044, "p": [1437445412, "10722/212116"], "h": "abcdefgh",
    }  # fmt: skip


def test_token_from_before_harvest_ids_still_accepted() -> None:
    """A token handed out by a version without harvest ids (this payload, these keys)
    resumes its list after an upgrade, with no id (the access line then has none)."""
    older = URLSafeSerializer("secret", salt="oaipmh-server resumption token v1").dumps(
        {"v": "ListRecords", "c": 200, "n": 1234, "m": "oai_dc", "s": "com_10722_1:col_10722_5",
         "f": 1420070400, "u": 1767323044, "p": [1437445412, "10722/212116"]}
    )  # fmt: skip
    assert decode_token(older, "secret", "ListRecords") == replace(STATE, harvest=None)
    assert peek(older) == (None, 200)


@pytest.mark.parametrize("garbage", ["", "x", "not.a.token", ".eJwrzs8tKEotLs7Mz1OyUgIAMQ8FdA.x"])
def test_peek_at_garbage_claims_nothing(garbage: str) -> None:
    assert peek(garbage) == (None, None)


def test_harvest_id_of_the_wrong_type_is_refused() -> None:
    forged = URLSafeSerializer("secret", salt="oaipmh-server resumption token v1").dumps(
        {"v": "ListRecords", "c": 0, "n": 1, "m": "oai_dc", "u": 1767323044, "h": 7}
    )
    with pytest.raises(BadResumptionToken):
        decode_token(forged, "secret", "ListRecords")


FORGER = URLSafeSerializer("secret", salt="oaipmh-server resumption token v1")
SIGNED = {"v": "ListRecords", "c": 3, "n": 50, "m": "oai_dc", "u": 1767323044,
          "p": [1437445412, "10722/212116"]}  # fmt: skip


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"u": 2**63}, id="until-past-the-platform-clock"),
        pytest.param({"u": -(2**63)}, id="until-before-the-platform-clock"),
        pytest.param({"f": 10**17}, id="from-past-the-platform-clock"),
        pytest.param({"p": [-(2**63), "10722/212116"]}, id="position-before-the-clock"),
        pytest.param({"n": 0}, id="an-empty-list-goes-on"),
        pytest.param({"p": None}, id="no-position"),
        pytest.param({"p": 1e308}, id="position-a-number"),
        pytest.param({"p": "col_10722_5"}, id="position-a-set-spec"),
        pytest.param({"p": [1437445412, ["10722/212116"]]}, id="local-id-not-a-string"),
        pytest.param({"p": [1437445412, "10722/212116", 1]}, id="position-too-long"),
    ],
)
def test_a_signed_token_of_a_shape_never_written_is_refused(changes: dict[str, object]) -> None:
    """Found by fuzzing tokens re-signed with the secret: a time past what the platform's
    clock holds was a 500 (OSError from fromtimestamp); a completeListSize of 0 made the
    page schema-invalid; a token without a position of its verb's kind restarted the list
    from its first record with the cursor of a later page. None of these is a token we
    write (every token continues after the last item of a page), so each is refused."""
    payload = {k: v for k, v in {**SIGNED, **changes}.items() if v is not None}
    with pytest.raises(BadResumptionToken):
        decode_token(FORGER.dumps(payload), "secret", "ListRecords")


def test_a_list_sets_token_needs_a_set_position() -> None:
    for position in ([1437445412, "10722/212116"], None, 7):
        payload = {"v": "ListSets", "c": 3, "n": 10, "p": position}
        with pytest.raises(BadResumptionToken):
            decode_token(FORGER.dumps(payload), "secret", "ListSets")
    ours = FORGER.dumps({"v": "ListSets", "c": 3, "n": 10, "p": "col_10722_5"})
    assert decode_token(ours, "secret", "ListSets").set_position == "col_10722_5"
