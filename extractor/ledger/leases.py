"""Slice leases: which worker runs a slice, its checkpoints, and how it ends.

A worker claims a slice by taking its lease (worker id + expiry). The lease is renewed by
every checkpoint and by the worker's heartbeat; a worker that dies stops renewing it, and
once it has expired another worker may claim the slice and continue from its cursor. Every
write names the lease holder, so a worker that lost its lease cannot overwrite the new
holder's progress (it learns so from a write that changes no row).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from extractor.ledger.slices import Window
from extractor.ledger.store import Ledger


@dataclass(frozen=True)
class DetailCounts:
    """What a slice's checkpointed pages carried of its detail entity (``sources.details``)."""

    pages: int = 0
    records: int = 0
    missing: int = 0  # details that answered 404, or parent records without the field

    def plus(self, records: int, missing: int) -> DetailCounts:
        """After one more page whose details were ``records`` found and ``missing``."""
        pages = self.pages + (1 if records else 0)
        return DetailCounts(pages, self.records + records, self.missing + missing)


@dataclass(frozen=True)
class ClaimedSlice:
    """A slice this worker now holds, and where it stands."""

    job_id: str
    slice_id: str
    entity: str
    window: Window
    cursor: dict[str, Any] | None
    next_page: int
    pages: int
    records: int
    attempts: int
    errors: dict[str, int]
    file: str | None = None
    expected_records: int | None = None  # the job's estimate for the slice, if it has one
    details: DetailCounts = DetailCounts()


@dataclass(frozen=True)
class SliceState:
    """Why a claim did not succeed."""

    status: str
    job_status: str
    worker: str | None
    lease_expires: dt.datetime | None
    now: dt.datetime


@dataclass(frozen=True)
class Progress:
    """A checkpoint: the confirmed state after one page."""

    cursor: dict[str, Any] | None
    next_page: int
    pages: int
    records: int
    errors: dict[str, int]
    done: bool = False
    file_stats: dict[str, Any] | None = None
    details: DetailCounts = DetailCounts()


def _jsonb(value: dict[str, Any] | None) -> Jsonb | None:
    return None if value is None else Jsonb(value)


def _epoch(value: dt.datetime | None) -> int | None:
    return None if value is None else int(value.timestamp())


class SliceLeases:
    """The lease operations of one worker."""

    def __init__(self, ledger: Ledger, worker: str, lease_seconds: float) -> None:
        self.ledger = ledger
        self.worker = worker
        self.lease_seconds = lease_seconds

    async def claim(self, job_id: str, slice_id: str) -> ClaimedSlice | None:
        """Take the slice if it is pending or its holder's lease expired, and the job runs."""
        found = await self.ledger.row(
            "UPDATE {s}.slices SET status = 'running', worker = %(w)s,"
            " lease_expires = clock_timestamp() + make_interval(secs => %(ttl)s),"
            # Safe to run twice (the ledger retries a statement after a reconnect, and the
            # first may have committed): this worker's own hold is claimed again, not counted.
            " attempts = attempts + CASE WHEN worker = %(w)s AND status = 'running' THEN 0"
            "  ELSE 1 END, started_at = coalesce(started_at, now()), updated_at = now()"
            " WHERE job_id = %(j)s AND slice_id = %(sl)s AND status IN ('pending', 'running')"
            " AND (worker IS NULL OR worker = %(w)s OR lease_expires < clock_timestamp())"
            " AND EXISTS (SELECT 1 FROM {s}.jobs WHERE job_id = %(j)s AND status = 'running')"
            " RETURNING entity, window_start, window_end, cursor, next_page, pages, records,"
            " attempts, errors, file, expected_records, detail_pages, detail_records,"
            " detail_missing",
            self._params(job_id, slice_id),
        )
        if found is None:
            return None
        start, end = found.pop("window_start"), found.pop("window_end")
        details = DetailCounts(
            found.pop("detail_pages"), found.pop("detail_records"), found.pop("detail_missing")
        )
        return ClaimedSlice(
            job_id=job_id,
            slice_id=slice_id,
            window=Window(_epoch(start), _epoch(end)),
            details=details,
            **found,
        )

    async def state(self, job_id: str, slice_id: str) -> SliceState | None:
        found = await self.ledger.row(
            "SELECT sl.status, j.status AS job_status, sl.worker, sl.lease_expires,"
            " clock_timestamp() AS now FROM {s}.slices sl JOIN {s}.jobs j USING (job_id)"
            " WHERE sl.job_id = %s AND sl.slice_id = %s",
            (job_id, slice_id),
        )
        return SliceState(**found) if found else None

    async def cancel_unclaimed(self, job_id: str, slice_id: str) -> None:
        """A cancelling job's slice nobody holds (pending, or its holder's lease ended)."""
        await self.ledger.rows(
            "UPDATE {s}.slices SET status = 'cancelled', worker = NULL, lease_expires = NULL,"
            " updated_at = now() WHERE job_id = %s AND slice_id = %s AND (status = 'pending'"
            " OR (status = 'running' AND lease_expires < clock_timestamp()))",
            (job_id, slice_id),
        )

    async def checkpoint(self, job_id: str, slice_id: str, progress: Progress) -> str | None:
        """Record a confirmed page; the job's status, or None if the lease was lost."""
        found = await self.ledger.row(
            "UPDATE {s}.slices SET cursor = %(cursor)s, next_page = %(next_page)s,"
            " pages = %(pages)s, records = %(records)s, errors = %(errors)s,"
            " file_stats = coalesce(%(file_stats)s, file_stats),"
            " detail_pages = %(detail_pages)s, detail_records = %(detail_records)s,"
            " detail_missing = %(detail_missing)s,"
            " status = CASE WHEN %(done)s THEN 'done' ELSE status END,"
            " finished_at = CASE WHEN %(done)s THEN now() END,"
            " worker = CASE WHEN %(done)s THEN NULL ELSE worker END,"
            " lease_expires = CASE WHEN %(done)s THEN NULL"
            "  ELSE clock_timestamp() + make_interval(secs => %(ttl)s) END,"
            " updated_at = now()"
            " WHERE job_id = %(j)s AND slice_id = %(sl)s AND worker = %(w)s"
            " AND status = 'running'"
            " RETURNING (SELECT status FROM {s}.jobs WHERE job_id = %(j)s) AS job_status",
            {
                **self._params(job_id, slice_id),
                "cursor": _jsonb(progress.cursor),
                "next_page": progress.next_page,
                "pages": progress.pages,
                "records": progress.records,
                "errors": Jsonb(progress.errors),
                "file_stats": _jsonb(progress.file_stats),
                "done": progress.done,
                "detail_pages": progress.details.pages,
                "detail_records": progress.details.records,
                "detail_missing": progress.details.missing,
            },
        )
        return found["job_status"] if found else None

    async def finish(
        self,
        job_id: str,
        slice_id: str,
        status: str,
        errors: dict[str, int],
        error: tuple[str, str] | None = None,
    ) -> bool:
        """End this worker's hold: failed or cancelled (terminal) or pending (released)."""
        kind, message = error if error else (None, None)
        found = await self.ledger.row(
            "UPDATE {s}.slices SET status = %(status)s, errors = %(errors)s,"
            " last_error = coalesce(%(message)s, last_error),"
            " error_kind = coalesce(%(kind)s, error_kind), worker = NULL, lease_expires = NULL,"
            " finished_at = CASE WHEN %(status)s = 'pending' THEN NULL ELSE now() END,"
            " updated_at = now()"
            # Run twice (a retry after a commit whose answer was lost), the second finds the
            # slice already so: still this worker's ending, not a lost lease.
            " WHERE job_id = %(j)s AND slice_id = %(sl)s AND (worker = %(w)s"
            "  OR (worker IS NULL AND status = %(status)s AND status <> 'running'))"
            " RETURNING status",
            {
                **self._params(job_id, slice_id),
                "status": status,
                "errors": Jsonb(errors),
                "message": message,
                "kind": kind,
            },
        )
        return found is not None

    async def fail_crashed(self, job_id: str, slice_id: str, error: tuple[str, str]) -> None:
        """A slice whose run crashed: failed, unless another live worker holds it."""
        await self.ledger.rows(
            "UPDATE {s}.slices SET status = 'failed', error_kind = %(kind)s,"
            " last_error = %(message)s, worker = NULL, lease_expires = NULL,"
            " finished_at = now(), updated_at = now()"
            " WHERE job_id = %(j)s AND slice_id = %(sl)s AND status IN ('pending', 'running')"
            " AND (worker IS NULL OR worker = %(w)s OR lease_expires < clock_timestamp())",
            {**self._params(job_id, slice_id), "kind": error[0], "message": error[1]},
        )

    async def heartbeat(self) -> int:
        """Extend the lease of every slice this worker runs; how many it holds."""
        found = await self.ledger.rows(
            "UPDATE {s}.slices SET lease_expires = clock_timestamp()"
            " + make_interval(secs => %s) WHERE worker = %s AND status = 'running'"
            " RETURNING slice_id",
            (self.lease_seconds, self.worker),
        )
        return len(found)

    def _params(self, job_id: str, slice_id: str) -> dict[str, Any]:
        return {"j": job_id, "sl": slice_id, "w": self.worker, "ttl": self.lease_seconds}
