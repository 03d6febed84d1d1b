"""Keys, hashes and in-batch dedupe."""

from __future__ import annotations

import pytest

from common.errors import BadMessageError
from common.records import (
    canonical_json,
    content_hash,
    dedupe_last_wins,
    get_path,
    prepare,
    prepare_line,
    record_keys,
)


def test_get_path() -> None:
    assert get_path({"a": {"b": 1}}, "a.b") == 1
    assert get_path({"a": 1}, "a.b") is None
    assert get_path({}, "x", "d") == "d"


def test_hash_ignores_key_order_and_sees_changes() -> None:
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


@pytest.mark.parametrize("record", [{"name": "x"}, {"id": None}, {"id": ""}, {"id": [1]}, "text"])
def test_record_without_a_usable_key_is_bad(record: object) -> None:
    with pytest.raises(BadMessageError):
        prepare(record, "id", "text")


def test_bigint_key() -> None:
    assert prepare({"id": "42"}, "id", "bigint").key == 42
    with pytest.raises(BadMessageError, match="not an integer"):
        prepare({"id": "4x"}, "id", "bigint")


def test_dedupe_last_wins_keeps_the_last_version() -> None:
    records = [prepare({"id": k, "v": v}, "id", "text") for k, v in [("a", 1), ("b", 1), ("a", 2)]]
    deduped = dedupe_last_wins(records)
    assert [(r.key, r.doc["v"]) for r in deduped] == [("b", 1), ("a", 2)]


def test_a_record_line_hashes_as_its_parsed_record_does() -> None:
    record = {"id": "r1", "b": [1, {"y": 2, "x": "\t"}], "a": None}
    line = canonical_json(record)
    from_line = prepare_line(line, "r1", "text", parse=False)
    parsed = prepare(record, "id", "text")
    assert (from_line.key, from_line.hash, from_line.json) == (parsed.key, parsed.hash, parsed.json)
    assert from_line.doc == record  # parsed when read


@pytest.mark.parametrize(
    ("line", "key", "parse", "code"),
    [
        (b'{"id": 1}', None, False, "bad_key"),  # the extractor found no key
        (b"[1, 2]", "k", False, "bad_record"),
        (b'"text"', "k", True, "bad_record"),
        (b"{not json", "k", True, "bad_record"),
    ],
)
def test_a_bad_record_line_says_why(line: bytes, key: object, parse: bool, code: str) -> None:
    with pytest.raises(BadMessageError) as caught:
        prepare_line(line, key, "text", parse=parse)
    assert caught.value.code == code


def test_an_unparsable_line_is_dead_lettered_as_its_text() -> None:
    record = prepare_line(b'{"id": "k", oops}', "k", "text", parse=False)
    assert record.for_dead_letter() == '{"id": "k", oops}'


def test_record_keys_are_cast_and_missing_ones_are_none() -> None:
    records = [{"id": 7}, {"id": "8"}, {"other": 1}, {"id": [1]}, "not an object"]
    assert record_keys(records, "id", "bigint") == [7, 8, None, None, None]
    assert record_keys([{"a": {"b": "x"}}], "a.b", "text") == ["x"]
