"""Keys, hashes and in-batch dedupe."""

from __future__ import annotations

import pytest

from common.errors import BadMessageError
from common.records import content_hash, dedupe_last_wins, get_path, prepare


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
