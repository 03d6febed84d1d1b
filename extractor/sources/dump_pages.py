"""A dump file's pages, parsed in a thread of their own.

Parsing is synchronous CPU work, so each page is read by a single-thread executor that the
slice run owns (one file, one thread, pages in order) while the event loop publishes the
page before it. A page's position is the number of the file's records before it: gzip
cannot seek, so a resume parses the file again and skips that many records, and the same
pages (the same message ids) follow. A broken file (a gzip stream cut short, malformed
XML) fails the slice, but only after a last page holding every complete record before the
break. Records the reader skips as malformed are counted as ``skipped_record``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

from common.outcomes import FailSlice
from extractor.sources.dumps import DumpError, DumpStats, DumpTruncatedError
from extractor.sources.dumps.formats import Format, iter_records
from extractor.sources.fetch import SourceError
from extractor.sources.paginators import Page

Record = dict[str, Any]
SKIPPED = "skipped_record"
STOP_CHECK_EVERY = 1000  # records skipped between looks at the stop flag on a resume


class _Stopped(Exception):
    """The slice run ended while the file was being skipped to its checkpoint."""


def file_stats(stats: DumpStats) -> dict[str, Any]:
    """What the reader has done so far, as the ledger keeps it (JSON)."""
    return {
        "bytes_read": stats.bytes_read,
        "bytes_total": stats.bytes_total,
        "records": stats.records,
        "skipped": stats.skipped,
        "skip_samples": list(stats.skip_samples),
        "unknown_tags": dict(stats.unknown_tags),
    }


def error_kind(exc: DumpError) -> str:
    return "dump_truncated" if isinstance(exc, DumpTruncatedError) else "dump_format"


class DumpPages:
    """The pages of one dump file, from any record position, read in a worker thread."""

    def __init__(self, path: Path, form: Format, entity: str, page_size: int) -> None:
        self.path = path
        self.form = form
        self.entity = entity
        self.page_size = page_size
        self.stats = DumpStats()
        self._records: Iterator[Record] | None = None
        self._position = 0
        self._failure: SourceError | None = None
        self._stop = threading.Event()
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dump-pages")

    def first_position(self) -> int:
        return 0

    async def page(self, position: int, errors: Counter[str]) -> Page:
        """The page of records from ``position`` on; a broken file raises SourceError."""
        try:
            return await asyncio.wrap_future(self._thread.submit(self._read_page, position))
        except SourceError as exc:
            errors[exc.kind] += 1
            raise
        finally:
            if self.stats.records or self.stats.skipped:  # set, not added: a resume recounts
                errors[SKIPPED] = self.stats.skipped
            if not errors[SKIPPED]:
                del errors[SKIPPED]

    def _read_page(self, position: int) -> Page:
        """In the thread: the next page, opening the file (and skipping to ``position``)."""
        if self._failure is not None:
            raise self._failure
        if self._records is None:
            self._records = self._open_at(position)
        elif position != self._position:
            raise FailSlice(f"{self.path}: asked for record {position}, at {self._position}")
        records = self._take()
        self._position += len(records)
        if self._failure is not None and not records:
            raise self._failure
        done = self._failure is None and len(records) < self.page_size
        return Page(records, None if done else self._position, file_stats(self.stats))

    def _open_at(self, position: int) -> Iterator[Record]:
        records = iter_records(self.form, self.path, self.entity, stats=self.stats)
        skipped = 0
        try:
            for skipped in range(position):
                if skipped % STOP_CHECK_EVERY == 0 and self._stop.is_set():
                    raise _Stopped(self.path)
                next(records)
        except StopIteration:
            raise SourceError(
                f"{self.path}: holds {skipped} records, fewer than the {position} already "
                "published: the file changed since",
                "dump_changed",
            ) from None
        except DumpError as exc:
            raise SourceError(str(exc), error_kind(exc)) from None
        except OSError as exc:
            raise SourceError(f"{self.path}: {exc.strerror or exc}", "dump_file") from None
        self._position = position
        return records

    def _take(self) -> list[Record]:
        """Up to a page of records; a broken file is remembered for the next call."""
        assert self._records is not None
        records: list[Record] = []
        try:
            for record in self._records:
                records.append(record)
                if len(records) == self.page_size:
                    break
        except DumpError as exc:
            self._failure = SourceError(str(exc), error_kind(exc))
        except OSError as exc:
            self._failure = SourceError(f"{self.path}: {exc.strerror or exc}", "dump_file")
        return records

    def _close(self) -> None:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()

    async def __aenter__(self) -> DumpPages:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop a skip under way, wait for the thread's page, close the file."""
        self._stop.set()
        try:
            await asyncio.shield(asyncio.wrap_future(self._thread.submit(self._close)))
        finally:
            self._thread.shutdown(wait=False)
