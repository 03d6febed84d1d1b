"""CSV dumps (gzip or plain), streamed row by row: the header row names the fields.

Every value is a string, as written (an empty field is ""); blank lines are ignored and a
UTF-8 byte order mark before the header is dropped. A row whose number of fields differs
from the header's is skipped, counted in DumpStats and logged with the file and line; the
file goes on. A quote left open at the end of the file, or a last row cut short (fewer
fields and no final newline), raises DumpTruncatedError after every complete row before
it; bytes that are not UTF-8 or a NUL raise DumpFormatError naming the line.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from extractor.sources.dumps.errors import DumpFormatError, DumpTruncatedError
from extractor.sources.dumps.files import ByteStream, DumpStats, pages, read_lines, records_of_file

log = logging.getLogger(__name__)

Record = dict[str, Any]


def iter_records(path: Path, *, stats: DumpStats | None = None) -> Iterator[Record]:
    """Every row of a CSV file as a dict keyed by the header, in file order."""
    return records_of_file(path, parse_stream, stats)


def iter_pages(
    path: Path, page_size: int, *, stats: DumpStats | None = None
) -> Iterator[list[Record]]:
    """The rows of a CSV file in lists of ``page_size``."""
    return pages(iter_records(path, stats=stats), page_size)


def parse_stream(
    stream: ByteStream, *, name: str = "<stream>", stats: DumpStats | None = None
) -> Iterator[Record]:
    """Every row of an already decompressed CSV byte stream."""
    stats = stats if stats is not None else DumpStats()
    stats.file = stats.file or name
    lines = _Lines(stream, name)
    rows = csv.reader(lines, strict=True)
    header = _header(rows, lines, name)
    if header is None:
        return
    while (row := _next_row(rows, lines, name)) is not None:
        if not row:
            continue
        record = _record(header, row, lines, stats)
        if record is not None:
            stats.records += 1
            yield record


class _Lines:
    """Decoded lines for ``csv.reader``, remembering the line number and the last line."""

    def __init__(self, stream: ByteStream, name: str) -> None:
        self._raw = read_lines(stream, name)
        self.name = name
        self.number = 0
        self.last = ""

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._raw)
        self.number += 1
        try:
            self.last = raw.decode("utf-8-sig" if self.number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DumpFormatError(self.name, f"not UTF-8: {exc}", line=self.number) from None
        return self.last


def _header(rows: Iterator[list[str]], lines: _Lines, name: str) -> list[str] | None:
    """The field names: the first non-blank row (None for an empty file)."""
    while (row := _next_row(rows, lines, name)) is not None:
        if row:
            if len(set(row)) != len(row):
                raise DumpFormatError(name, f"the header names a field twice: {row}", line=1)
            return row
    return None


def _next_row(rows: Iterator[list[str]], lines: _Lines, name: str) -> list[str] | None:
    try:
        return next(rows)
    except StopIteration:
        return None
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise DumpTruncatedError(
                name, "a quoted field is still open at the end: the file is cut short"
            ) from None
        raise DumpFormatError(name, f"not CSV: {exc}", line=lines.number) from None


def _record(header: list[str], row: list[str], lines: _Lines, stats: DumpStats) -> Record | None:
    """The row as a dict, or None (counted, logged) when its field count is wrong."""
    if len(row) == len(header):
        return dict(zip(header, row, strict=True))
    reason = f"{len(row)} fields, the header has {len(header)}"
    if not lines.last.endswith("\n") and len(row) < len(header):
        raise DumpTruncatedError(
            lines.name, f"the last row is cut off ({reason})", line=lines.number
        )
    stats.skip(f"line {lines.number}", reason)
    log.warning("dump record skipped file=%s line=%d reason=%s", lines.name, lines.number, reason)
    return None
