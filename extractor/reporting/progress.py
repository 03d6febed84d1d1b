"""Progress with ETA: a bar on a terminal, periodic log lines otherwise.

Fed with ledger snapshots, so it shows the whole job (every worker, every process), not
only this process's share. Dump jobs count the bytes of their files read; other jobs
records against the estimate when there is one, slices otherwise.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType

from prometheus_client import REGISTRY
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from extractor import metrics
from extractor.ledger.snapshot import JobSnapshot

log = logging.getLogger(__name__)


class JobProgress:
    def __init__(self, console: Console, *, log_every: float = 10.0) -> None:
        self.console = console
        self.log_every = log_every
        self._last_log = time.monotonic()
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}  {task.fields[detail]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self._task = self._bar.add_task("backfill", total=None, unit="", detail="")

    def __enter__(self) -> JobProgress:
        self._bar.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._bar.__exit__(kind, exc, tb)

    def update(self, snapshot: JobSnapshot) -> None:
        estimate = snapshot.estimated_records
        slices = f"{snapshot.slices_ended}/{snapshot.slices_total} slices"
        # Held back by a consumer queue, the rate only falls: say what it waits for instead.
        rate = snapshot.waiting_for or f"{snapshot.records_per_second:,.0f} rec/s"
        if snapshot.bytes_total:  # dump files: how much of them is read
            completed, total = round(100 * snapshot.bytes_read / snapshot.bytes_total), 100
            unit, detail = "% of the files read", f"{snapshot.records:,} records  {slices}  {rate}"
        elif estimate:
            completed, total, unit = snapshot.records, max(estimate, snapshot.records), "records"
            detail = f"{slices}  {rate}"
        else:
            completed, total, unit = snapshot.slices_ended, snapshot.slices_total, "slices"
            detail = f"{snapshot.records:,} records  {rate}"
        self._bar.update(self._task, completed=completed, total=total, unit=unit, detail=detail)
        now = time.monotonic()
        if not self.console.is_terminal and now - self._last_log >= self.log_every:
            self._last_log = now
            eta = snapshot.eta_seconds
            log.info(
                "progress job=%s status=%s slices=%d/%d records=%d estimate=%s rate=%.0f/s"
                " eta=%s%s",
                snapshot.job.job_id,
                snapshot.job.status,
                snapshot.slices_ended,
                snapshot.slices_total,
                snapshot.records,
                estimate if estimate is not None else "-",
                snapshot.records_per_second,
                "-" if eta is None else f"{eta:.0f}s",
                f" {snapshot.waiting_for}" if snapshot.waiting_for else "",
            )


def observe_job(snapshot: JobSnapshot, now: float | None = None) -> None:
    """The driver's view of the whole job (every worker), for dashboards and alerts."""
    dataset = snapshot.job.dataset
    before = REGISTRY.get_sample_value("backfill_job_records", {"dataset": dataset})
    if before is None or snapshot.records != before:
        metrics.JOB_LAST_PROGRESS.labels(dataset).set(time.time() if now is None else now)
    metrics.JOB_RECORDS.labels(dataset).set(snapshot.records)
    estimate = snapshot.estimated_records
    metrics.JOB_ESTIMATE.labels(dataset).set(estimate if estimate is not None else -1)
    fraction = 1.0 if snapshot.job.status == "done" else snapshot.fraction_done
    metrics.JOB_PROGRESS.labels(dataset).set(-1.0 if fraction is None else fraction)
    eta = snapshot.eta_seconds
    metrics.JOB_ETA.labels(dataset).set(-1.0 if eta is None else eta)
    for status, count in snapshot.slices.items():
        metrics.JOB_SLICES.labels(dataset, status).set(count)
