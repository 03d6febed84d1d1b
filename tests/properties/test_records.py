"""Keys, hashes, dedupe and the COPY text encoding, by property."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import BadMessageError
from common.records import PreparedRecord, content_hash, dedupe_last_wins, prepare
from tableinator.copy_text import encode_rows
from tests.properties.strategies import INT64, JSON, RECORD, TEXT


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {key: shuffled(item, rng) for key, item in items}
    if isinstance(value, list):
        return [shuffled(item, rng) for item in value]
    return value


@given(RECORD, st.randoms())
def test_hash_ignores_key_order(record: dict[str, Any], rng: random.Random) -> None:
    assert content_hash(shuffled(record, rng)) == content_hash(record)


@given(RECORD, TEXT, JSON)
def test_hash_sees_any_change(record: dict[str, Any], name: str, value: Any) -> None:
    changed = {**record, name: value}
    assert (content_hash(changed) == content_hash(record)) == (
        orjson.dumps(changed, option=orjson.OPT_SORT_KEYS)
        == orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    )


@given(JSON)
def test_a_key_is_a_scalar_or_the_record_is_refused(key: Any) -> None:
    try:
        prepared = prepare({"id": key}, "id", "text")
    except BadMessageError as exc:
        assert exc.code == "bad_key"
        assert key is None or key == "" or isinstance(key, bool | dict | list)
        return
    assert prepared.key == str(key)


KEYED = st.lists(st.tuples(st.sampled_from("abcde") | INT64, INT64), max_size=30)


@given(KEYED)
def test_dedupe_keeps_the_last_version_of_each_key(pairs: list[tuple[Any, int]]) -> None:
    records = [prepare({"id": key, "n": n}, "id", "text") for key, n in pairs]
    deduped = dedupe_last_wins(records)
    keys = [record.key for record in deduped]
    assert len(keys) == len(set(keys))
    last = {record.key: (index, record) for index, record in enumerate(records)}
    expected = [record for _, record in sorted(last.values(), key=lambda pair: pair[0])]
    assert len(deduped) == len(expected)  # in the order each key was last seen
    assert all(got is want for got, want in zip(deduped, expected, strict=True))


def unescape_copy_field(field: bytes) -> bytes:
    """PostgreSQL's COPY text format: backslash escapes of a field (the ones we emit)."""
    out, i = bytearray(), 0
    escapes = {ord("\\"): b"\\", ord("t"): b"\t", ord("n"): b"\n", ord("r"): b"\r"}
    while i < len(field):
        if field[i] == ord("\\"):
            out += escapes[field[i + 1]]
            i += 2
        else:
            out.append(field[i])
            i += 1
    return bytes(out)


@given(st.lists(st.tuples(TEXT.filter(bool) | INT64, RECORD), min_size=1, max_size=10))
def test_copy_rows_decode_back_to_key_hash_and_document(pairs: list[tuple[Any, Any]]) -> None:
    records = [prepare({**doc, "id": key}, "id", "text") for key, doc in pairs]
    buffer = encode_rows(records)
    lines = buffer.split(b"\n")
    assert lines.pop() == b""  # every row ends with a newline, and raw newlines are escaped
    assert len(lines) == len(records)
    for line, record in zip(lines, records, strict=True):
        key, digest, doc = (unescape_copy_field(field) for field in line.split(b"\t"))
        assert key.decode() == str(record.key)
        assert digest == b"\\x" + record.hash.hex().encode()
        assert orjson.loads(doc) == record.doc


def test_unescape_helper_is_not_a_tautology() -> None:
    record = PreparedRecord(key="a\tb", hash=b"\0" * 16, doc={}, json=b'{"x":"\\\\"}')
    assert encode_rows([record]) == b"a\\tb\t\\\\x" + b"00" * 16 + b'\t{"x":"\\\\\\\\"}\n'
    with pytest.raises(KeyError):
        unescape_copy_field(b"\\q")
