"""Progress with ETA: a bar on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import logging
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from extractor.job import JobStats

log = logging.getLogger(__name__)


class JobProgress:
    """Shows slices done out of planned, records published and the rate."""

    def __init__(self, console: Console, total_slices: int, *, log_every: float = 10.0) -> None:
        self.console = console
        self.total = total_slices
        self.log_every = log_every
        self._last_log = time.monotonic()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("slices  {task.fields[records]:,} records  {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._bar.add_task("backfill", total=total_slices, records=0, rate=0.0)

    def __enter__(self) -> JobProgress:
        self._bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def update(self, stats: JobStats) -> None:
        done = sum(e.slices_done + e.slices_failed for e in stats.entities.values())
        elapsed = max(time.monotonic() - stats.started, 1e-9)
        rate = stats.records / elapsed
        self._bar.update(self._task, completed=done, records=stats.records, rate=rate)
        now = time.monotonic()
        if not self.console.is_terminal and now - self._last_log >= self.log_every:
            self._last_log = now
            log.info(
                "progress job=%s slices=%d/%d records=%d rate=%.0f/s",
                stats.job_id,
                done,
                self.total,
                stats.records,
                rate,
            )
