"""The versioned message contract between the extractor and the consumers.

One page batch per message, plus one end-of-job control message per dataset and entity.
Decoding validates by hand, not with a model, because it runs on every message.

Two page formats are read:

- version 1, one JSON object whose ``records`` is an array of the records;
- version 2, *keyed* (what the extractor publishes): the envelope as a JSON object on the
  first line, holding each record's key (``keys``), then each record on a line of its own as
  canonical JSON (sorted keys, orjson: never a raw newline). The header also carries each
  line's content hash (``hashes``: 16-byte BLAKE2b digests, hex, one string), computed once
  by the publisher rather than once per consumer; a page without them is hashed by the
  consumer. So a record the store already holds costs a lookup, not a parse, a
  re-serialisation and a hash: that is what makes re-running unchanged data cheap.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import BadMessageError

ENVELOPE_VERSION = 1
KEYED_VERSION = 2
CONTENT_TYPE = "application/json"
HASH_BYTES = 16  # BLAKE2b digest size of every content hash


@dataclass(frozen=True, slots=True)
class PageHeader:
    """Where a page comes from: job, dataset, entity, slice and its place in the slice."""

    job_id: str
    dataset: str
    entity: str
    slice_id: str
    page: int

    @property
    def message_id(self) -> str:
        return f"{self.job_id}/{self.slice_id}/{self.page}"


@dataclass(frozen=True, slots=True)
class PageBatch(PageHeader):
    """One page of records fetched from a source."""

    records: list[Any]
    keys: list[Any] | None = None  # each record's key: set, the page is sent keyed (v2)
    v: int = ENVELOPE_VERSION


@dataclass(frozen=True, slots=True)
class KeyedPage(PageHeader):
    """A page as a consumer reads a keyed (v2) message: keys and unparsed record lines."""

    keys: list[Any]
    lines: list[bytes]
    hashes: list[bytes] | None = None  # each line's content hash, when the publisher sent them


@dataclass(frozen=True, slots=True)
class EndOfJob:
    """The extractor published everything of this entity for this job; the counts it sent."""

    job_id: str
    dataset: str
    entity: str
    pages: int
    records: int
    extra: dict[str, Any] = field(default_factory=dict)
    v: int = ENVELOPE_VERSION

    @property
    def message_id(self) -> str:
        return f"{self.job_id}/end/{self.entity}"


Message = PageBatch | KeyedPage | EndOfJob
PAGE_HEADER = ("job_id", "dataset", "entity", "slice_id", "page")


def encode(message: PageBatch | EndOfJob) -> bytes:
    """The wire form of a message: a page with ``keys`` keyed (v2), anything else v1."""
    if isinstance(message, EndOfJob):
        fields = ("job_id", "dataset", "entity", "pages", "records", "extra")
        return orjson.dumps(
            {"type": "end_of_job", "v": ENVELOPE_VERSION, **_named(message, fields)}
        )
    if message.keys is None:
        body = {"type": "page", "v": ENVELOPE_VERSION, **_named(message, PAGE_HEADER)}
        return orjson.dumps({**body, "records": message.records})
    return _encode_keyed(message, message.keys)


def _named(message: PageBatch | EndOfJob, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(message, name) for name in names}


def _encode_keyed(page: PageBatch, keys: list[Any]) -> bytes:
    if len(keys) != len(page.records):
        raise ValueError(f"{len(keys)} keys for {len(page.records)} records")
    sort = orjson.OPT_SORT_KEYS
    lines = [orjson.dumps(record, option=sort) for record in page.records]
    hashes = b"".join([line_hash(line) for line in lines]).hex()
    head = {
        "type": "page",
        "v": KEYED_VERSION,
        **_named(page, PAGE_HEADER),
        "keys": keys,
        "hashes": hashes,
    }
    return orjson.dumps(head) + b"\n" + b"\n".join(lines)


def line_hash(line: bytes) -> bytes:
    """The content hash of a record's canonical JSON line."""
    return hashlib.blake2b(line, digest_size=HASH_BYTES).digest()


def decode(body: bytes) -> Message:
    """Parse and validate a message body; raises BadMessageError naming what is wrong."""
    head, newline, rest = body.partition(b"\n")
    if newline:
        keyed = _keyed_head(head)
        if keyed is not None:
            return _keyed_page(keyed, rest)
    raw = _json_object(body)
    version = raw.get("v")
    if version == KEYED_VERSION and type(version) is int:
        raise BadMessageError("a keyed (v2) page without its record lines", code="bad_envelope")
    if type(version) is not int or version != ENVELOPE_VERSION:  # true == 1.0 == 1 in Python
        raise BadMessageError(
            f"unknown envelope version {version!r} (this consumer reads {ENVELOPE_VERSION}"
            f" and {KEYED_VERSION})",
            code="bad_version",
        )
    kind = raw.get("type")
    if kind == "page":
        return PageBatch(**_fields(raw, PAGE_FIELDS))
    if kind == "end_of_job":
        fields = _fields(raw, END_FIELDS)
        extra = raw.get("extra", {})
        return EndOfJob(**fields, extra=extra if isinstance(extra, dict) else {})
    raise BadMessageError(f"unknown message type {kind!r}", code="bad_envelope")


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadMessageError(f"not valid JSON: {exc}", code="not_json") from None
    if not isinstance(raw, dict):
        raise BadMessageError("message is not a JSON object", code="bad_envelope")
    return raw


def _keyed_head(head: bytes) -> dict[str, Any] | None:
    """The first line as a keyed envelope, or None: then the body is read as version 1 (a
    version-1 message written by another JSON encoder may hold newlines)."""
    try:
        raw = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or type(raw.get("v")) is not int or raw["v"] != KEYED_VERSION:
        return None
    return raw


def _keyed_page(raw: dict[str, Any], rest: bytes) -> KeyedPage:
    if raw.get("type") != "page":
        raise BadMessageError(f"unknown message type {raw.get('type')!r}", code="bad_envelope")
    fields = _fields(raw, KEYED_FIELDS)
    lines = rest.split(b"\n") if rest else []
    if len(lines) != len(fields["keys"]):
        raise BadMessageError(
            f"{len(fields['keys'])} keys for {len(lines)} record lines", code="bad_envelope"
        )
    hashes = _hashes(raw.get("hashes"), len(lines))
    return KeyedPage(**fields, lines=lines, hashes=hashes)


def _hashes(value: Any, count: int) -> list[bytes] | None:
    """The header's ``hashes`` as one digest per line; None if the publisher sent none."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 2 * HASH_BYTES * count:
        raise BadMessageError(
            f"'hashes' must be a string of {2 * HASH_BYTES} hex digits per record line",
            code="bad_envelope",
        )
    try:
        digests = bytes.fromhex(value)
    except ValueError:
        raise BadMessageError("'hashes' is not hexadecimal", code="bad_envelope") from None
    return [digests[at : at + HASH_BYTES] for at in range(0, len(digests), HASH_BYTES)]


PAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "job_id": str,
    "dataset": str,
    "entity": str,
    "slice_id": str,
    "page": int,
    "records": list,
}
KEYED_FIELDS = {**{name: PAGE_FIELDS[name] for name in PAGE_HEADER}, "keys": list}
END_FIELDS: dict[str, type | tuple[type, ...]] = {
    "job_id": str,
    "dataset": str,
    "entity": str,
    "pages": int,
    "records": int,
}


def _fields(raw: dict[str, Any], spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    values = {}
    for name, expected in spec.items():
        value = raw.get(name)
        if value is None:
            raise BadMessageError(f"field {name!r} is missing", code="bad_envelope")
        if not isinstance(value, expected) or isinstance(value, bool):
            raise BadMessageError(
                f"field {name!r} has type {type(value).__name__}", code="bad_envelope"
            )
        values[name] = value
    return values
