"""A slice, the unit of work the ledger holds, and the window of the source it covers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """The part of the source a slice covers: [start, end) as unix seconds, or unbounded."""

    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Slice:
    """An independent unit of work: one entity over one window, or one dump file."""

    entity: str
    slice_id: str
    window: Window
    file: str | None = None  # a dump file, relative to the job's base path
    file_size: int | None = None
