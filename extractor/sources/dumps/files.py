"""Opening dump files for streaming: gzip or plain by magic bytes, read in bounded chunks."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Protocol

from extractor.sources.dumps.errors import DumpFormatError, DumpTruncatedError

GZIP_MAGIC = b"\x1f\x8b"
CHUNK_SIZE = 256 * 1024


class ByteStream(Protocol):
    """Anything bytes can be read from in chunks or lines: a file, a GzipFile, a BytesIO."""

    def read(self, size: int = -1, /) -> bytes: ...

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass
class DumpStats:
    """What reading one dump file did, for logs, metrics and the job report."""

    file: str = ""
    records: int = 0
    skipped: int = 0
    bytes_read: int = 0
    bytes_total: int = 0
    skip_samples: list[str] = field(default_factory=list)
    unknown_tags: dict[str, int] = field(default_factory=dict)

    def skip(self, where: str, reason: str, *, keep: int = 20) -> None:
        """Count a skipped record; keep the first few places and reasons for the report."""
        self.skipped += 1
        if len(self.skip_samples) < keep:
            self.skip_samples.append(f"{where}: {reason}")


class DumpFile:
    """One dump file opened for streaming: its decompressed bytes and progress on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._raw: BinaryIO = path.open("rb")
        self.compressed = self._raw.read(2) == GZIP_MAGIC
        self._raw.seek(0)
        self.stream: ByteStream = (
            gzip.GzipFile(fileobj=self._raw, mode="rb") if self.compressed else self._raw
        )

    @property
    def size(self) -> int:
        """Bytes of the file on disk (compressed, if it is)."""
        return self.path.stat().st_size

    @property
    def position(self) -> int:
        """Bytes of the file on disk consumed so far: progress against ``size``."""
        return self._raw.tell()

    def close(self) -> None:
        if isinstance(self.stream, gzip.GzipFile):
            self.stream.close()
        self._raw.close()

    def __enter__(self) -> DumpFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_chunks(stream: ByteStream, name: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The stream's bytes in chunks; a cut-short or corrupt gzip stream raises a DumpError.

    ``read1`` where the stream has it: a buffered ``read`` that fails part way through
    drops what it had already decompressed, and with it the last complete records.
    """
    read = getattr(stream, "read1", stream.read)
    while True:
        with gzip_errors(name):
            chunk = read(chunk_size)
        if not chunk:
            return
        yield chunk


def read_lines(stream: ByteStream, name: str) -> Iterator[bytes]:
    """The stream's lines (each with its newline, but maybe the last); errors as above."""
    while True:
        with gzip_errors(name):
            line = stream.readline()
        if not line:
            return
        yield line


@contextmanager
def gzip_errors(name: str) -> Iterator[None]:
    """Turn a cut-short or corrupt gzip stream into a DumpError that names the file."""
    try:
        yield
    except EOFError as exc:
        raise DumpTruncatedError(
            name, "the gzip stream ends before its end marker: the file is cut short"
        ) from exc
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise DumpFormatError(name, f"corrupt gzip data: {exc}") from exc


def pages(records: Iterable[dict[str, Any]], page_size: int) -> Iterator[list[dict[str, Any]]]:
    """Records in lists of ``page_size`` (the last may be shorter): the extractor's pages."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, not {page_size}")
    page: list[dict[str, Any]] = []
    for record in records:
        page.append(record)
        if len(page) == page_size:
            yield page
            page = []
    if page:
        yield page


class StreamParser(Protocol):
    def __call__(
        self, stream: ByteStream, *, name: str, stats: DumpStats
    ) -> Iterator[dict[str, Any]]: ...


PROGRESS_EVERY = 1000


def records_of_file(
    path: Path, parse: StreamParser, stats: DumpStats | None = None
) -> Iterator[dict[str, Any]]:
    """Every record ``parse`` finds in a dump file (gzip or plain), with read progress."""
    stats = stats if stats is not None else DumpStats()
    with DumpFile(path) as dump:
        stats.file, stats.bytes_total = str(path), dump.size
        for record in parse(dump.stream, name=str(path), stats=stats):
            if stats.records % PROGRESS_EVERY == 0:
                stats.bytes_read = dump.position
            yield record
        stats.bytes_read = dump.position
