"""Size estimates for dump jobs: records, pages and parse time, from the head of each file.

The first ~2 MiB of each file are decompressed and parsed: records in the sample over its
length give bytes per record; the sample's compression ratio (or, for a gzip file under
4 GiB, the exact size in its trailer) gives the decompressed size of the whole file; the
time the sample took to decompress and parse gives a rate. A file that fits in the sample
is counted exactly. Everything else is an estimate, and is labelled so.
"""

from __future__ import annotations

import io
import logging
import math
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from extractor.ledger.slices import Slice
from extractor.sources.dumps import DumpError, DumpStats
from extractor.sources.dumps.files import GZIP_MAGIC
from extractor.sources.dumps.formats import Format, parse_stream

SAMPLE_BYTES = 2 * 1024 * 1024
READ_SIZE = 64 * 1024
GZIP_ISIZE_WRAP = 2**32


@dataclass(frozen=True)
class FileSample:
    """The decompressed head of a file and what it cost on disk."""

    data: bytes
    consumed: int  # bytes of the file on disk the sample took
    whole: bool  # the sample is the whole file
    seconds: float


@dataclass(frozen=True)
class FileEstimate:
    slice_id: str
    file: str
    size: int
    records: int | None
    decompressed: int | None
    exact: bool
    records_per_second: float | None
    error: str | None = None


@dataclass(frozen=True)
class DumpEstimate:
    """What a dump job will publish; ``None`` where a file could not be sampled."""

    method: str
    slices: int
    records: int | None
    pages: int | None
    bytes: int
    decompressed_bytes: int | None
    seconds: float | None
    records_per_second: float | None
    per_slice: dict[str, int | None]
    files: list[FileEstimate] = field(default_factory=list)

    def as_dict(self, *, with_slices: bool = False) -> dict[str, Any]:
        data = asdict(self)
        if not with_slices:
            del data["per_slice"], data["files"]
        return data


def sample_head(path: Path, limit: int = SAMPLE_BYTES) -> FileSample:
    """Up to ``limit`` decompressed bytes from the start of a (gzip or plain) file."""
    started = time.perf_counter()
    with path.open("rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            raw.seek(0)
            data = raw.read(limit + 1)
            whole = len(data) <= limit
            data = data[:limit]
            return FileSample(data, len(data), whole, time.perf_counter() - started)
        raw.seek(0)
        inflater = zlib.decompressobj(wbits=31)
        out, fed, pending = bytearray(), 0, b""
        while len(out) < limit and not inflater.eof:
            if not pending:
                pending = raw.read(READ_SIZE)
                fed += len(pending)
                if not pending:
                    break
            out += inflater.decompress(pending, limit - len(out))
            pending = inflater.unconsumed_tail
        consumed = fed - len(pending) - len(inflater.unused_data)
        whole = inflater.eof and not inflater.unused_data and not raw.read(1)
    return FileSample(bytes(out), consumed, whole, time.perf_counter() - started)


def gzip_isize(path: Path) -> int | None:
    """The decompressed size modulo 2**32 from a gzip file's trailer."""
    with path.open("rb") as raw:
        if raw.read(2) != GZIP_MAGIC:
            return None
        raw.seek(-4, io.SEEK_END)
        return int.from_bytes(raw.read(4), "little")


def decompressed_size(path: Path, size: int, sample: FileSample) -> int:
    """The whole file's decompressed size: exact when sampled whole, else from the ratio."""
    if sample.whole:
        return len(sample.data)
    guess = round(size * len(sample.data) / max(1, sample.consumed))
    isize = gzip_isize(path)
    if isize is not None and guess < GZIP_ISIZE_WRAP and abs(isize - guess) < guess / 2:
        return max(isize, len(sample.data))  # the trailer is exact for a file under 4 GiB
    return guess


def estimate_file(form: Format, base_path: Path, item: Slice) -> FileEstimate:
    """One file's records and parse rate, from its head."""
    assert item.file is not None
    path = base_path / item.file
    size = path.stat().st_size
    try:
        sample = sample_head(path)
    except (OSError, zlib.error) as exc:
        return FileEstimate(item.slice_id, item.file, size, None, None, False, None, str(exc))
    stats = DumpStats()
    started = time.perf_counter()
    try:
        for _ in parse_stream(
            form, io.BytesIO(sample.data), item.entity, name=str(path), stats=stats
        ):
            pass
    except DumpError as exc:
        if sample.whole:  # the whole file is broken, not just the sample's end
            error = str(exc)
            return FileEstimate(item.slice_id, item.file, size, None, None, False, None, error)
    if not sample.whole and not stats.records:
        error = f"no complete record in the first {len(sample.data):,} bytes"
        return FileEstimate(item.slice_id, item.file, size, None, None, False, None, error)
    seconds = sample.seconds + time.perf_counter() - started
    total = decompressed_size(path, size, sample)
    records = stats.records if sample.whole else round(stats.records * total / len(sample.data))
    rate = stats.records / seconds if stats.records and seconds > 0 else None
    return FileEstimate(item.slice_id, item.file, size, records, total, sample.whole, rate)


@contextmanager
def quiet_readers() -> Iterator[None]:
    """The readers log each skipped record; in a sample that is noise, so hold it back."""
    readers = logging.getLogger("extractor.sources.dumps")
    level = readers.level
    readers.setLevel(logging.ERROR)
    try:
        yield
    finally:
        readers.setLevel(level)


def estimate_files(
    form: Format, base_path: Path, slices: list[Slice], page_size: int
) -> DumpEstimate:
    """Every file's estimate, and the job's totals (blocking: run it in a thread)."""
    with quiet_readers():
        files = [estimate_file(form, base_path, item) for item in slices]
    known = [f for f in files if f.records is not None]
    complete = len(known) == len(files)
    records = sum(f.records or 0 for f in known) if complete else None
    seconds = sum((f.records or 0) / f.records_per_second for f in known if f.records_per_second)
    parsed = sum(f.records or 0 for f in known if f.records_per_second)
    exact = all(f.exact for f in files)
    method = (
        "counted every file"
        if exact
        else f"sampled the first {SAMPLE_BYTES >> 20} MiB of each file"
    )
    return DumpEstimate(
        method=method,
        slices=len(slices),
        records=records,
        pages=sum(math.ceil((f.records or 0) / page_size) for f in files) if complete else None,
        bytes=sum(f.size for f in files),
        decompressed_bytes=sum(f.decompressed or 0 for f in files) if complete else None,
        seconds=seconds if complete else None,
        records_per_second=parsed / seconds if seconds else None,
        per_slice={f.slice_id: f.records for f in files},
        files=files,
    )
