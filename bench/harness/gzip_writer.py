"""A gzip file written from text, the compressing (zlib lets go of the GIL) in a thread
beside the caller's generating; an error in that thread is raised to the writer."""

from __future__ import annotations

import gzip
import queue
import threading
from pathlib import Path
from types import TracebackType

COMPRESS_LEVEL = 1  # a benchmark's input: speed over size


class GzipWriter:
    """A gzip file written by a thread, so compressing overlaps generating the next batch.

    The header holds no time (mtime 0), so the same text makes the same bytes. An error in
    the thread is raised by the next ``write`` or on exit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bytes_in = 0
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name=f"gzip {path.name}")

    def __enter__(self) -> GzipWriter:
        self._thread.start()
        return self

    def write(self, text: str) -> None:
        self._raise_error()
        data = text.encode()
        self.bytes_in += len(data)
        self._chunks.put(data)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._chunks.put(None)
        self._thread.join()
        if kind is None:
            self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise OSError(f"writing {self.path} failed: {self._error}") from self._error

    def _drain(self) -> None:
        try:
            with gzip.GzipFile(self.path, "wb", compresslevel=COMPRESS_LEVEL, mtime=0) as out:
                while (chunk := self._chunks.get()) is not None:
                    out.write(chunk)
        except BaseException as exc:  # handed to the writing thread, which raises it
            self._error = exc
            while self._chunks.get() is not None:  # let the writer finish putting
                pass
