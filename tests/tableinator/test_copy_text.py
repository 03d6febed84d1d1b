"""COPY text encoding: pure logic."""

from __future__ import annotations

from common.records import prepare
from tableinator.copy_text import encode_key, encode_rows


def test_keys_are_escaped_for_copy_text() -> None:
    assert encode_key("plain") == b"plain"
    assert encode_key(42) == b"42"
    assert encode_key("a\tb\\N\nc\r") == b"a\\tb\\\\N\\nc\\r"


def test_rows_double_the_backslashes_of_json_escapes() -> None:
    record = prepare({"id": "k", "text": 'tab\t"q"\\'}, "id", "text")
    line = encode_rows([record])
    key, digest, doc = line.rstrip(b"\n").split(b"\t")
    assert key == b"k"
    assert digest == b"\\\\x" + record.hash.hex().encode()
    assert doc == record.json.replace(b"\\", b"\\\\")
    assert b"\t" not in doc and b"\n" not in doc
