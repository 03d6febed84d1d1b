"""Field paths, record keys and content hashes: the pure logic both consumers share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from common.errors import BadMessageError
from common.spec import KeyType

_MISSING: Any = object()


def get_path(record: Any, path: str, default: Any = None) -> Any:
    """The value at a dotted path (``a.b.c``) in nested dicts, or ``default``."""
    if "." not in path:  # the common case, on every record
        return record.get(path, default) if isinstance(record, dict) else default
    value = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return default
        value = value.get(part, _MISSING)
        if value is _MISSING:
            return default
    return value


def cast_key(value: Any, key_type: KeyType) -> str | int:
    """A key as its declared type; raises BadMessageError for a missing or wrong key."""
    if value is None or value == "" or isinstance(value, bool | dict | list):
        raise BadMessageError(f"key is missing or not a scalar: {value!r}", code="bad_key")
    if key_type == "bigint":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise BadMessageError(f"key {value!r} is not an integer", code="bad_key") from None
    return str(value)


def canonical_json(record: dict[str, Any]) -> bytes:
    """The record as JSON with sorted keys: what is hashed, and what PostgreSQL stores."""
    # Copied: orjson's result keeps a ~4 KiB allocation however small the document, and
    # thousands of these are held while a batch fills.
    return bytes(memoryview(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)))


def content_hash(record: dict[str, Any]) -> bytes:
    """A stable 16-byte hash of a record's content (key order does not matter)."""
    return hashlib.blake2b(canonical_json(record), digest_size=16).digest()


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs ~1 us a record
class PreparedRecord:
    """A record ready for a sink: its key, content hash, document and canonical JSON."""

    key: str | int
    hash: bytes
    doc: dict[str, Any]
    json: bytes


def prepare(record: Any, key_path: str, key_type: KeyType) -> PreparedRecord:
    """Key and hash a record; raises BadMessageError if it is not an object or has no key."""
    if not isinstance(record, dict):
        raise BadMessageError(
            f"record is a {type(record).__name__}, not an object", code="bad_record"
        )
    key = cast_key(get_path(record, key_path), key_type)
    try:
        json = canonical_json(record)
    except orjson.JSONEncodeError as exc:  # e.g. nesting deeper than orjson allows
        raise BadMessageError(f"record cannot be serialised: {exc}", code="bad_record") from None
    digest = hashlib.blake2b(json, digest_size=16).digest()
    return PreparedRecord(key=key, hash=digest, doc=record, json=json)


def dedupe_last_wins(records: list[PreparedRecord]) -> list[PreparedRecord]:
    """One record per key, the last one seen winning (a batch may hold a key twice)."""
    by_key: dict[str | int, PreparedRecord] = {}
    for record in records:
        by_key.pop(record.key, None)
        by_key[record.key] = record
    return list(by_key.values())
