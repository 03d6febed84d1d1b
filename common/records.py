"""Field paths, record keys and content hashes: the pure logic both consumers share."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import orjson

from common.envelope import KeyedPage, PageBatch, line_hash
from common.errors import BadMessageError
from common.paths import MISSING, compile_path
from common.spec import EntitySpec, KeyType

_MISSING: Any = object()


def get_path(record: Any, path: str, default: Any = None) -> Any:
    """The value at a path (``a.b.c``, ``a[0].b``, ``a[*].b``: ``common.paths``), or
    ``default``."""
    if "." not in path and "[" not in path:  # the common case, on every record
        return record.get(path, default) if isinstance(record, dict) else default
    value = compile_path(path)(record)  # compiled once, when the spec was loaded
    return default if value is MISSING else value


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
    return line_hash(canonical_json(record))


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
    return PreparedRecord(key, line_hash(json), json, record)


def prepare_line(
    line: bytes, key: Any, key_type: KeyType, *, parse: bool, digest: bytes | None = None
) -> PreparedRecord:
    """Key and hash a record of a keyed page from its line (``digest``: its hash, as the
    publisher sent it), parsing it only if ``parse``."""
    if not line.startswith(b"{"):
        raise BadMessageError("record is not a JSON object", code="bad_record")
    record = PreparedRecord(cast_key(key, key_type), digest or line_hash(line), line)
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
) -> list[PreparedRecord | Rejected]:
    """Each record of a page prepared, or rejected with the reason, in page order."""
    if isinstance(page, KeyedPage):
        fast = None if parse else _prepare_plain_lines(page, entity.key_type)
        if fast is not None:
            return fast
        ready: list[PreparedRecord | Rejected] = []
        digests: list[bytes | None] = [*page.hashes] if page.hashes else [None] * len(page.lines)
        for key, line, digest in zip(page.keys, page.lines, digests, strict=True):
            try:
                ready.append(prepare_line(line, key, entity.key_type, parse=parse, digest=digest))
            except BadMessageError as exc:
                ready.append(Rejected(line.decode(errors="replace"), exc))
        return ready
    prepared: list[PreparedRecord | Rejected] = []
    for record in page.records:
        try:
            prepared.append(prepare(record, entity.key, entity.key_type))
        except BadMessageError as exc:
            prepared.append(Rejected(record, exc))
    return prepared


_starts_an_object = operator.methodcaller("startswith", b"{")


def _prepare_plain_lines(
    page: KeyedPage, key_type: KeyType
) -> list[PreparedRecord | Rejected] | None:
    """The common case in bulk: every key already of its type (as the extractor writes
    them), every line an object. None when any record needs a look of its own."""
    keys, lines = page.keys, page.lines
    types = set(map(type, keys))  # in bulk, in C: this runs on every record of every page
    plain = types == {int} if key_type == "bigint" else types == {str} and "" not in keys
    if keys and (not plain or not all(map(_starts_an_object, lines))):
        return None
    hashes = page.hashes or [line_hash(line) for line in lines]
    return list(map(PreparedRecord, keys, hashes, lines))


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
    return list(by_last_key(records).values())


def by_last_key(records: list[PreparedRecord]) -> dict[str | int, PreparedRecord]:
    """Each key's last record, in the order the keys were last seen."""
    by_key = {record.key: record for record in records}
    if len(by_key) == len(records):  # the common case: no key twice, order as given
        return by_key
    by_key = {}
    for record in records:
        by_key.pop(record.key, None)
        by_key[record.key] = record
    return by_key
