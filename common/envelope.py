"""The versioned message contract between the extractor and the consumers.

One page batch per message (orjson), plus one end-of-job control message per dataset and
entity. Decoding validates by hand, not with a model, because it runs on every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from common.errors import BadMessageError

ENVELOPE_VERSION = 1
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class PageBatch:
    """One page of records fetched from a source."""

    job_id: str
    dataset: str
    entity: str
    slice_id: str
    page: int
    records: list[Any]
    v: int = ENVELOPE_VERSION

    @property
    def message_id(self) -> str:
        return f"{self.job_id}/{self.slice_id}/{self.page}"


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


Message = PageBatch | EndOfJob


def encode(message: Message) -> bytes:
    """The wire form of a message."""
    kind = "page" if isinstance(message, PageBatch) else "end_of_job"
    body = {"type": kind, **{name: getattr(message, name) for name in message.__slots__}}
    return orjson.dumps(body)


def decode(body: bytes) -> Message:
    """Parse and validate a message body; raises BadMessageError naming what is wrong."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadMessageError(f"not valid JSON: {exc}", code="not_json") from None
    if not isinstance(raw, dict):
        raise BadMessageError("message is not a JSON object", code="bad_envelope")
    version = raw.get("v")
    if version != ENVELOPE_VERSION:
        raise BadMessageError(
            f"unknown envelope version {version!r} (this consumer reads {ENVELOPE_VERSION})",
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


PAGE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "job_id": str,
    "dataset": str,
    "entity": str,
    "slice_id": str,
    "page": int,
    "records": list,
}
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
