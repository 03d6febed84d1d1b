"""The figures of a job's full report, gathered from the ledger, the stores and the DLQs.

- published: the ledger (pages, records, slices, failures, errors by kind);
- landed: what each consumer reported when it finalised the job (saved in the ledger by
  the driver, so a past job's report has them too): rows in the table, nodes and
  relationships in the graph;
- written by this job (PostgreSQL): rows whose ``updated_at`` falls in the job's window,
  counted in the table itself; unchanged and skipped = published - written - dead-lettered
  (a concurrent job on the same tables would blur this; the graph keeps no timestamps);
- dead-lettered: this job's dead letters still in the dataset's DLQs, by consumer and code;
- phases: plan (the ledger keeps how long planning took), fetch and publish (job created
  to its last slice ended), drain to the stores (to the last consumer's finalised event);
- throughput over time: records confirmed per second (a trigger fills the ledger's table).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from common.settings import ExtractorSettings
from common.spec import DatasetSpec
from common.topology import Topology
from extractor.dlq.queues import DeadLetterQueues, Selection, group
from extractor.ledger.snapshot import JobSnapshot, read_snapshot
from extractor.ledger.store import Ledger, open_ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreFigures:
    """One consumer's account of one entity of the job."""

    service: str
    entity: str
    landed: dict[str, Any]
    published: int
    finalised_at: dt.datetime
    written: int | None = None
    dead_lettered: int = 0

    @property
    def unchanged(self) -> int | None:
        if self.written is None:
            return None
        return max(self.published - self.written - self.dead_lettered, 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "entity": self.entity,
            "landed": self.landed,
            "published": self.published,
            "written": self.written,
            "unchanged": self.unchanged,
            "dead_lettered": self.dead_lettered,
            "finalised_at": self.finalised_at.isoformat(),
        }


@dataclass(frozen=True)
class FullReport:
    snapshot: JobSnapshot
    stores: list[StoreFigures]
    dead_letters: list[dict[str, Any]] | None  # None: the broker could not be asked
    phases: dict[str, float | None]
    timeline: list[tuple[float, int]]  # (seconds after the job was created, records)
    notes: list[str] = field(default_factory=list)

    @property
    def job_id(self) -> str:
        return self.snapshot.job.job_id

    def next_steps(self) -> list[str]:
        """What to run if something failed."""
        steps = []
        job, dataset = self.snapshot.job, self.snapshot.job.dataset
        spec = f" --spec {job.spec}" if job.spec != "demo" else ""
        if self.snapshot.failed:
            steps.append(f"extractor retry-failed {self.job_id}")
        if job.status in ("cancelled", "running", "cancelling"):
            steps.append(f"extractor resume {self.job_id}")
        if self.dead_letters:
            steps.append(f"extractor dlq list{spec} --job {self.job_id}  (dataset {dataset})")
            steps.append(f"extractor dlq replay{spec} --job {self.job_id}  (after a fix)")
        return steps

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.snapshot.as_dict(),
            "stores": [store.as_dict() for store in self.stores],
            "dead_letters": self.dead_letters,
            "phases": self.phases,
            "timeline": [{"second": s, "records": r} for s, r in self.timeline],
            "notes": self.notes,
            "next": self.next_steps(),
        }


async def save_events(
    ledger: Ledger, job_id: str, events: dict[tuple[str, str], dict[str, Any]]
) -> None:
    """Keep the consumers' finalised events of a run (their monotonic time made wall time)."""
    offset = time.time() - time.monotonic()
    for (service, entity), event in events.items():
        body = {k: v for k, v in event.items() if k != "received_at"}
        await ledger.rows(
            "INSERT INTO {s}.job_events (job_id, service, entity, event, received_at)"
            " VALUES (%s, %s, %s, %s, to_timestamp(%s)) ON CONFLICT (job_id, service, entity)"
            " DO UPDATE SET event = EXCLUDED.event, received_at = EXCLUDED.received_at",
            (job_id, service, entity, Jsonb(body), event["received_at"] + offset),
        )


async def gather_report(settings: ExtractorSettings, ledger: Ledger, job_id: str) -> FullReport:
    snapshot = await read_snapshot(ledger, job_id)
    notes: list[str] = []
    groups = await _dead_letters(settings, snapshot, notes)
    dead = _dead_by_store(groups or [])
    stores = [
        await _store(ledger, snapshot, row, dead.get((row["service"], row["entity"]), 0))
        for row in await ledger.rows(
            "SELECT service, entity, event, received_at FROM {s}.job_events"
            " WHERE job_id = %s ORDER BY service, entity",
            (job_id,),
        )
    ]
    if not stores:
        notes.append("no consumer reported this job finalised (run without waiting, or not yet)")
    return FullReport(
        snapshot=snapshot,
        stores=stores,
        dead_letters=groups,
        phases=_phases(snapshot, stores),
        timeline=await _timeline(ledger, job_id),
        notes=notes,
    )


async def _store(
    ledger: Ledger, snapshot: JobSnapshot, row: dict[str, Any], dead_lettered: int
) -> StoreFigures:
    event, received = row["event"], row["received_at"]
    landed = event.get("landed", {})
    written = None
    if "table" in landed:
        written = await _written(ledger, landed["table"], snapshot.job.created_at, received)
    return StoreFigures(
        service=row["service"],
        entity=row["entity"],
        landed=landed,
        published=int(event.get("published_records", 0)),
        finalised_at=received,
        written=written,
        dead_lettered=dead_lettered,
    )


async def _written(
    ledger: Ledger, table: str, since: dt.datetime, until: dt.datetime
) -> int | None:
    """Rows the job inserted or changed: their ``updated_at`` is inside its window."""
    schema, _, name = table.rpartition(".")
    query = sql.SQL("SELECT count(*) FROM {} WHERE updated_at BETWEEN %s AND %s").format(
        sql.Identifier(schema, name) if schema else sql.Identifier(name)
    )
    try:
        async with ledger.pool.connection() as conn:
            cur = await conn.execute(query, (since, until))
            found = await cur.fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return int(found[0]) if found else None


async def _dead_letters(
    settings: ExtractorSettings, snapshot: JobSnapshot, notes: list[str]
) -> list[dict[str, Any]] | None:
    """This job's dead letters still in the DLQs, grouped (looked at, never taken)."""
    spec = DatasetSpec.model_validate(snapshot.job.spec_body)
    try:
        connection = await aio_pika.connect(settings.amqp.url)
    except (OSError, aio_pika.exceptions.AMQPError) as exc:
        notes.append(f"dead letters unknown: the broker is unreachable ({exc})")
        return None
    async with connection:
        topology = Topology(settings.amqp.amqp_exchange)
        queues = DeadLetterQueues(connection, topology, spec, settings.amqp.consumers)
        letters = await queues.scan(Selection(job_id=snapshot.job.job_id))
    return group(letters)


def _dead_by_store(groups: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for g in groups:
        key = (g["consumer"], g["entity"])
        counts[key] = counts.get(key, 0) + g["count"]
    return counts


def _phases(snapshot: JobSnapshot, stores: list[StoreFigures]) -> dict[str, float | None]:
    job = snapshot.job
    plan = job.options.get("plan_seconds")
    fetch = (job.finished_at - job.created_at).total_seconds() if job.finished_at else None
    drained = max((s.finalised_at for s in stores), default=None)
    drain = (drained - job.finished_at).total_seconds() if drained and job.finished_at else None
    total = (drained or job.finished_at or snapshot.now) - job.created_at
    return {
        "plan": float(plan) if isinstance(plan, int | float) else None,
        "fetch_and_publish": fetch,
        "drain_to_stores": max(drain, 0.0) if drain is not None else None,
        "total": total.total_seconds() + (float(plan) if isinstance(plan, int | float) else 0),
    }


async def _timeline(ledger: Ledger, job_id: str) -> list[tuple[float, int]]:
    rows = await ledger.rows(
        "SELECT extract(epoch FROM t.second - j.created_at)::float8 AS at,"
        " sum(t.records)::bigint AS records FROM {s}.throughput t JOIN {s}.jobs j USING (job_id)"
        " WHERE t.job_id = %s GROUP BY t.second, j.created_at ORDER BY t.second",
        (job_id,),
    )
    return [(row["at"], row["records"]) for row in rows]


async def load_report(settings: ExtractorSettings, job_id: str) -> FullReport:
    """The full report of a job in the ledger (now, or long after it ended)."""
    async with open_ledger(settings) as ledger:
        return await gather_report(settings, ledger, job_id)
