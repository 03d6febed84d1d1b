"""What the ledger says about a job right now: for progress, ``status`` and ``report``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from extractor.ledger.holds import QueueHold, read_holds
from extractor.ledger.schema import TERMINAL
from extractor.ledger.store import JobRecord, Ledger

STATUSES = ("pending", "running", "done", "failed", "cancelled")


@dataclass(frozen=True)
class EntityTotals:
    pages: int = 0
    records: int = 0
    slices: dict[str, int] = field(default_factory=dict)
    bytes_read: int = 0  # dump files: bytes on disk read (a done file counts whole)
    bytes_total: int = 0
    detail_pages: int = 0  # of the entity's detail entity, carried by its slices
    detail_records: int = 0
    detail_missing: int = 0


@dataclass(frozen=True)
class DetailTotals:
    """A detail entity's published pages and records, and its details that were missing."""

    parent: str
    pages: int
    records: int
    missing: int


@dataclass(frozen=True)
class FailedSlice:
    slice_id: str
    error_kind: str | None
    last_error: str | None
    attempts: int


@dataclass(frozen=True)
class JobSnapshot:
    job: JobRecord
    now: dt.datetime
    entities: dict[str, EntityTotals]
    errors: dict[str, int] = field(default_factory=dict)
    failed: list[FailedSlice] = field(default_factory=list)
    workers: int = 0
    rate: float | None = None
    throttled: int = 0
    files: list[dict[str, Any]] = field(default_factory=list)
    holds: list[QueueHold] = field(default_factory=list)  # queues holding fetching back

    @property
    def waiting_for(self) -> str | None:
        """While consumer queues hold fetching back: "waiting for <consumer> (...)"."""
        if not self.holds or self.job.terminal:
            return None
        hold = self.holds[0]
        text = f"waiting for {hold.consumer} ({hold.queue}: {hold.ready:,} ready"
        text += ", no consumer" if hold.consumers == 0 else f", {hold.consumers} consumer(s)"
        return text + f", {hold.seconds:.0f} s)"

    @property
    def slices(self) -> dict[str, int]:
        totals = dict.fromkeys(STATUSES, 0)
        for entity in self.entities.values():
            for status, count in entity.slices.items():
                totals[status] = totals.get(status, 0) + count
        return totals

    @property
    def records(self) -> int:
        return sum(e.records for e in self.entities.values())

    @property
    def details(self) -> dict[str, DetailTotals]:
        """Per detail entity of the job's spec: what its parent's slices carried of it."""
        totals = {}
        for name, entity in self.job.spec_body.get("entities", {}).items():
            parent = (entity.get("parent") or {}).get("entity")
            if parent is not None:
                of = self.entities.get(parent, EntityTotals())
                totals[name] = DetailTotals(
                    parent, of.detail_pages, of.detail_records, of.detail_missing
                )
        return totals

    @property
    def detail_missing(self) -> int:
        """Details that answered 404 (or whose parent record lacked the path's field)."""
        return sum(e.detail_missing for e in self.entities.values())

    @property
    def pages(self) -> int:
        return sum(e.pages for e in self.entities.values())

    @property
    def bytes_read(self) -> int:
        return sum(e.bytes_read for e in self.entities.values())

    @property
    def bytes_total(self) -> int:
        return sum(e.bytes_total for e in self.entities.values())

    @property
    def fraction_done(self) -> float | None:
        """How far the job is: bytes of its dump files read, else records of the estimate."""
        if self.bytes_total:
            return min(1.0, self.bytes_read / self.bytes_total)
        estimate = self.estimated_records
        return min(1.0, self.records / estimate) if estimate else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the job's pace so far; None while unknown."""
        fraction = self.fraction_done
        if self.job.terminal:
            return 0.0
        if not fraction:
            return None
        return self.seconds * (1 - fraction) / fraction

    @property
    def slices_total(self) -> int:
        return sum(self.slices.values())

    @property
    def slices_ended(self) -> int:
        return sum(count for status, count in self.slices.items() if status in TERMINAL)

    @property
    def estimated_records(self) -> int | None:
        value = (self.job.estimate or {}).get("records")
        return value if isinstance(value, int) else None

    @property
    def seconds(self) -> float:
        """From creation to the end (or now, while it runs)."""
        end = self.job.finished_at or self.now
        return max(1e-9, (end - self.job.created_at).total_seconds())

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds

    def as_dict(self) -> dict[str, Any]:
        job = self.job
        return {
            "job_id": job.job_id,
            "dataset": job.dataset,
            "spec": job.spec,
            "status": job.status,
            "created_at": job.created_at.isoformat(),
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
            "end_published": job.end_published_at is not None,
            "duration_seconds": round(self.seconds, 3),
            "slices": self.slices,
            "pages": self.pages,
            "records": self.records,
            "records_per_second": round(self.records_per_second, 1),
            "pages_per_second": round(self.pages / self.seconds, 2),
            "estimate": job.estimate,
            "entities": self._entities_dict(),
            "detail_missing": self.detail_missing,
            "errors": self.errors,
            "failed_slices": [vars(f) for f in self.failed],
            "workers": self.workers,
            "rate_limit": {"rate": self.rate, "throttled": self.throttled},
            "held_back": [
                {
                    "consumer": h.consumer,
                    "queue": h.queue,
                    "ready": h.ready,
                    "limit": h.limit,
                    "consumers": h.consumers,
                    "seconds": round(h.seconds, 1),
                }
                for h in self.holds
            ],
            **self._dump_dict(),
        }

    def _entities_dict(self) -> dict[str, Any]:
        """Per entity, its slices' pages and records; a detail entity's from its parent's."""
        return {
            **{
                name: {"pages": e.pages, "records": e.records, "slices": e.slices}
                for name, e in self.entities.items()
            },
            **{
                name: {
                    "pages": d.pages,
                    "records": d.records,
                    "slices": {},
                    "detail_of": d.parent,
                    "detail_missing": d.missing,
                }
                for name, d in self.details.items()
            },
        }

    def _dump_dict(self) -> dict[str, Any]:
        if not self.bytes_total:
            return {}
        return {
            "bytes": {"read": self.bytes_read, "total": self.bytes_total},
            "files": self.files,
        }


async def read_snapshot(ledger: Ledger, job_id: str, *, details: bool = True) -> JobSnapshot:
    """Counts by entity and status; with ``details`` also errors, failures, workers, rate."""
    job = await ledger.require_job(job_id)
    rows = await ledger.rows(
        "SELECT entity, status, count(*) AS slices, sum(pages)::bigint AS pages,"
        " sum(records)::bigint AS records, clock_timestamp() AS now,"
        " coalesce(sum((file_stats->>CASE WHEN status = 'done' THEN 'bytes_total'"
        "  ELSE 'bytes_read' END)::bigint), 0)::bigint AS bytes_read,"
        " coalesce(sum((file_stats->>'bytes_total')::bigint), 0)::bigint AS bytes_total,"
        " sum(detail_pages)::bigint AS detail_pages,"
        " sum(detail_records)::bigint AS detail_records,"
        " sum(detail_missing)::bigint AS detail_missing"
        " FROM {s}.slices WHERE job_id = %s GROUP BY entity, status ORDER BY entity",
        (job_id,),
    )
    now = rows[0]["now"] if rows else dt.datetime.now(dt.UTC)
    holds = [] if job.terminal else await read_holds(ledger, job_id)
    snapshot = JobSnapshot(job=job, now=now, entities=_entities(rows), holds=holds)
    if not details:
        return snapshot
    return JobSnapshot(
        job=job,
        now=now,
        entities=snapshot.entities,
        holds=holds,
        errors=await _errors(ledger, job_id),
        failed=await _failed(ledger, job_id),
        files=await _files(ledger, job_id) if snapshot.bytes_total else [],
        **await _activity(ledger, job_id),
    )


def _entities(rows: list[dict[str, Any]]) -> dict[str, EntityTotals]:
    entities: dict[str, EntityTotals] = {}
    for row in rows:
        before = entities.get(row["entity"], EntityTotals())
        entities[row["entity"]] = EntityTotals(
            pages=before.pages + row["pages"],
            records=before.records + row["records"],
            slices={**before.slices, row["status"]: row["slices"]},
            bytes_read=before.bytes_read + row["bytes_read"],
            bytes_total=before.bytes_total + row["bytes_total"],
            detail_pages=before.detail_pages + row["detail_pages"],
            detail_records=before.detail_records + row["detail_records"],
            detail_missing=before.detail_missing + row["detail_missing"],
        )
    return entities


async def _errors(ledger: Ledger, job_id: str) -> dict[str, int]:
    rows = await ledger.rows(
        "SELECT e.key AS kind, sum(e.value::bigint)::bigint AS count"
        " FROM {s}.slices, jsonb_each_text(errors) AS e WHERE job_id = %s"
        " GROUP BY e.key ORDER BY count DESC",
        (job_id,),
    )
    return {row["kind"]: row["count"] for row in rows}


async def _failed(ledger: Ledger, job_id: str, limit: int = 100) -> list[FailedSlice]:
    rows = await ledger.rows(
        "SELECT slice_id, error_kind, last_error, attempts FROM {s}.slices"
        " WHERE job_id = %s AND status = 'failed' ORDER BY seq LIMIT %s",
        (job_id, limit),
    )
    return [FailedSlice(**row) for row in rows]


async def _files(ledger: Ledger, job_id: str, limit: int = 200) -> list[dict[str, Any]]:
    """Each dump slice's file and what its reader did: bytes, records, skipped and why."""
    rows = await ledger.rows(
        "SELECT slice_id, file, status, records, coalesce(file_stats, '{{}}') AS stats"
        " FROM {s}.slices WHERE job_id = %s AND file IS NOT NULL ORDER BY seq LIMIT %s",
        (job_id, limit),
    )
    return [
        {
            "slice_id": row["slice_id"],
            "file": row["file"],
            "status": row["status"],
            "records": row["records"],
            "bytes_read": row["stats"].get("bytes_read", 0),
            "bytes_total": row["stats"].get("bytes_total", 0),
            "skipped": row["stats"].get("skipped", 0),
            "skip_samples": row["stats"].get("skip_samples", []),
            "unknown_tags": row["stats"].get("unknown_tags", {}),
        }
        for row in rows
    ]


async def _activity(ledger: Ledger, job_id: str) -> dict[str, Any]:
    """Workers holding live leases; the shared rate limit (HTTP jobs only)."""
    row = await ledger.row(
        "SELECT (SELECT count(DISTINCT worker) FROM {s}.slices WHERE job_id = %(j)s"
        "  AND status = 'running' AND lease_expires > clock_timestamp()) AS workers,"
        " (SELECT rate FROM {s}.rate_limits WHERE job_id = %(j)s) AS rate,"
        " coalesce((SELECT throttled FROM {s}.rate_limits WHERE job_id = %(j)s), 0) AS throttled",
        {"j": job_id},
    )
    return row or {}
