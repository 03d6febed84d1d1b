"""One entry point over the dump readers: records of a file (or a byte stream) by format.

The spec's ``source.format`` names the reader; a Discogs file is read as the entity of the
same name when there is one (else the entity its file name or root element says).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from extractor.sources.dumps import csv, discogs, jsonl
from extractor.sources.dumps.files import ByteStream, DumpStats

Format = Literal["jsonl", "csv", "discogs_xml"]
Record = dict[str, Any]


def _discogs_entity(entity: str | None) -> str | None:
    return entity if entity in discogs.ENTITIES else None


def iter_records(
    form: Format, path: Path, entity: str | None, *, stats: DumpStats
) -> Iterator[Record]:
    """Every record of a dump file in file order, with bounded memory."""
    if form == "discogs_xml":
        return discogs.iter_records(path, _discogs_entity(entity), stats=stats)
    if form == "csv":
        return csv.iter_records(path, stats=stats)
    return jsonl.iter_records(path, stats=stats)


def parse_stream(
    form: Format, stream: ByteStream, entity: str | None, *, name: str, stats: DumpStats
) -> Iterator[Record]:
    """Every record of an already decompressed byte stream (a sample of a file, say)."""
    if form == "discogs_xml":
        return discogs.parse_stream(stream, _discogs_entity(entity), name=name, stats=stats)
    if form == "csv":
        return csv.parse_stream(stream, name=name, stats=stats)
    return jsonl.parse_stream(stream, name=name, stats=stats)
