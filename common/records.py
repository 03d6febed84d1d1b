"""Field paths, record keys and content hashes: the pure logic both consumers share."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from common.envelope import KeyedPage, PageBatch
from common.errors import BadMessageError
from common.spec import EntitySpec, KeyType

_MISSING: Any = object()
_blake2b = hashlib.blake2b
HASH_BYTES = 16  # BLAKE2b digest size of every content hash


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
    return hashlib.blake2b(canonical_json(record), digest_size=HASH_BYTES).digest()


class PreparedRecord:
    """A record ready for a sink: its key, content hash, canonical JSON and document.

    The hash is of the JSON text. A record that came as a line of a keyed page is parsed
    only when something reads ``doc`` (tableinator never does: PostgreSQL reads the text).
    """

    __slots__ = ("_doc", "hash", "json", "key")

    def __init__(self, key: str | int, hash: bytes, json: bytes, doc: Any = _MISSING) -> None:
        self.key = key
        self.hash = hash
        self.json = json
        self._doc = doc

    @property
    def doc(self) -> Any:
        """The record as Python objects; BadMessageError if its line is not JSON."""
        if self._doc is _MISSING:
            try:
                self._doc = orjson.loads(self.json)
            except orjson.JSONDecodeError as exc:
                raise BadMessageError(
                    f"record is not valid JSON: {exc}", code="bad_record"
                ) from None
        return self._doc

    def for_dead_letter(self) -> Any:
        """The document if it parses, else its text: what a dead letter carries."""
        try:
            return self.doc
        except BadMessageError:
            return self.json.decode(errors="replace")


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
    digest = hashlib.blake2b(json, digest_size=HASH_BYTES).digest()
    return PreparedRecord(key, digest, json, record)


def prepare_line(line: bytes, key: Any, key_type: KeyType, *, parse: bool) -> PreparedRecord:
    """Key and hash a record of a keyed page from its line, parsing it only if ``parse``."""
    if not line.startswith(b"{"):
        raise BadMessageError("record is not a JSON object", code="bad_record")
    record = PreparedRecord(
        cast_key(key, key_type), _blake2b(line, digest_size=HASH_BYTES).digest(), line
    )
    if parse and not isinstance(record.doc, dict):
        raise BadMessageError("record is not a JSON object", code="bad_record")
    return record


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record of a page that cannot be prepared, and why."""

    record: Any
    error: BadMessageError


def page_size(page: PageBatch | KeyedPage) -> int:
    return len(page.lines) if isinstance(page, KeyedPage) else len(page.records)


def prepare_page(
    page: PageBatch | KeyedPage, entity: EntitySpec, *, parse: bool
) -> Iterator[PreparedRecord | Rejected]:
    """Each record of a page prepared, or rejected with the reason, in page order."""
    if isinstance(page, KeyedPage):
        for key, line in zip(page.keys, page.lines, strict=True):
            try:
                yield prepare_line(line, key, entity.key_type, parse=parse)
            except BadMessageError as exc:
                yield Rejected(line.decode(errors="replace"), exc)
        return
    for record in page.records:
        try:
            yield prepare(record, entity.key, entity.key_type)
        except BadMessageError as exc:
            yield Rejected(record, exc)


def record_keys(records: list[Any], key_path: str, key_type: KeyType) -> list[str | int | None]:
    """Each record's key as the spec reads it, None where it is missing or not a key: the
    keys a keyed page carries (the consumer dead-letters a record whose key is None)."""
    keys: list[str | int | None] = []
    for record in records:
        try:
            keys.append(cast_key(get_path(record, key_path), key_type))
        except BadMessageError:
            keys.append(None)
    return keys


def dedupe_last_wins(records: list[PreparedRecord]) -> list[PreparedRecord]:
    """One record per key, the last one seen winning (a batch may hold a key twice)."""
    by_key: dict[str | int, PreparedRecord] = {}
    for record in records:
        by_key.pop(record.key, None)
        by_key[record.key] = record
    return list(by_key.values())
