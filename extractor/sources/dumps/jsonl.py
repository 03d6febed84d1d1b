"""JSON Lines dumps (one JSON object per line, gzip or plain), streamed line by line.

Blank lines are ignored. A line that is not JSON, or not a JSON object, is skipped,
counted in DumpStats and logged with the file and line number; the file goes on. A gzip
stream cut short raises DumpTruncatedError after every complete line before the break; so
does a plain file whose last line has no newline and is not valid JSON (a cut-off line).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from extractor.sources.dumps.errors import DumpTruncatedError, RecordError
from extractor.sources.dumps.files import ByteStream, DumpStats, pages, read_lines, records_of_file

log = logging.getLogger(__name__)

Record = dict[str, Any]


def iter_records(path: Path, *, stats: DumpStats | None = None) -> Iterator[Record]:
    """Every object of a JSON Lines file, in file order, with bounded memory."""
    return records_of_file(path, parse_stream, stats)


def iter_pages(
    path: Path, page_size: int, *, stats: DumpStats | None = None
) -> Iterator[list[Record]]:
    """The objects of a JSON Lines file in lists of ``page_size``."""
    return pages(iter_records(path, stats=stats), page_size)


def parse_stream(
    stream: ByteStream, *, name: str = "<stream>", stats: DumpStats | None = None
) -> Iterator[Record]:
    """Every object of an already decompressed JSON Lines byte stream."""
    stats = stats if stats is not None else DumpStats()
    stats.file = stats.file or name
    for number, line in enumerate(read_lines(stream, name), start=1):
        if not line.strip():
            continue
        record = _decode(line, number, name, stats)
        if record is not None:
            stats.records += 1
            yield record


def _decode(line: bytes, number: int, name: str, stats: DumpStats) -> Record | None:
    """One line's object, or None (counted, logged) when it is not a JSON object."""
    try:
        record = _object(line)
    except RecordError as exc:
        if not line.endswith(b"\n"):
            raise DumpTruncatedError(
                name, f"the last line is cut off ({exc})", line=number
            ) from None
        stats.skip(f"line {number}", str(exc))
        log.warning("dump record skipped file=%s line=%d reason=%s", name, number, exc)
        return None
    return record


def _object(line: bytes) -> Record:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RecordError(f"a JSON {type(value).__name__}, not an object")
    return value
