"""Envelope decoding, by property: every message round-trips, and any bytes at all either
decode to a message or raise BadMessageError with a known code (never another exception,
which would leave a delivery unacked)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from common.envelope import END_FIELDS, PAGE_FIELDS, EndOfJob, PageBatch, decode, encode
from common.errors import BadMessageError
from tests.properties.strategies import INT64, JSON, RECORD, TEXT

CODES = {"not_json", "bad_envelope", "bad_version"}

PAGES = st.builds(PageBatch, TEXT, TEXT, TEXT, TEXT, INT64, st.lists(RECORD, max_size=5))
ENDS = st.builds(EndOfJob, TEXT, TEXT, TEXT, INT64, INT64, st.dictionaries(TEXT, JSON, max_size=3))


def decodes_or_says_why(body: bytes) -> None:
    try:
        decode(body)
    except BadMessageError as exc:
        assert exc.code in CODES
        assert exc.reason


@given(PAGES | ENDS)
def test_every_message_round_trips(message: PageBatch | EndOfJob) -> None:
    assert decode(encode(message)) == message


@given(st.binary(max_size=300))
def test_any_bytes_decode_or_say_why(body: bytes) -> None:
    decodes_or_says_why(body)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    """Objects shaped like an envelope, some fields missing, some of the wrong type."""
    kind = draw(st.sampled_from(["page", "end_of_job", "other"]))
    names = list(PAGE_FIELDS if kind == "page" else END_FIELDS)
    raw: dict[str, Any] = {"type": kind, "v": draw(st.sampled_from([1, 1, 1, 2, True, 1.0]))}
    for name in names:
        if draw(st.integers(0, 9)) > 0:
            raw[name] = draw(JSON)
    return raw


@given(envelopes())
def test_envelope_shaped_objects_decode_only_when_every_field_has_its_type(
    raw: dict[str, Any],
) -> None:
    try:
        message = decode(orjson.dumps(raw))
    except BadMessageError as exc:
        assert exc.code in CODES
        return
    fields = PAGE_FIELDS if isinstance(message, PageBatch) else END_FIELDS
    assert type(raw["v"]) is int and raw["v"] == 1
    for name, expected in fields.items():
        assert isinstance(raw[name], expected) and not isinstance(raw[name], bool)


@settings(max_examples=500)
@given(PAGES, st.data())
def test_fuzz_mutated_messages(page: PageBatch, data: st.DataObject) -> None:
    """A short fuzz run of the decoder: real messages with bytes flipped, cut or inserted."""
    body = bytearray(encode(page))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(body)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if action == "flip" and at < len(body):
            body[at] ^= data.draw(st.integers(1, 255))
        elif action == "cut":
            del body[at:]
        else:
            body[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    decodes_or_says_why(bytes(body))
