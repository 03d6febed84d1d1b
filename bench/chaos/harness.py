"""What a scenario function gets (the run, the monitor, its dice) and the helpers it uses."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from bench.chaos.monitor import Monitor
from bench.chaos.processes import Service
from bench.chaos.run import JobRun
from bench.chaos.toxiproxy import Toxiproxy

JOB_SECONDS = 900.0  # a job that has not ended after this is a failure, not a wait


@dataclass(frozen=True)
class Reference:
    """The clean run: what both stores held, and the source requests it took."""

    counts: tuple[int, int, int]  # rows, nodes, relationships
    requests: int  # demo API responses 200
    seconds: float


@dataclass
class Chaos:
    """Handed to a scenario function: it injects ``faults`` faults while the job runs."""

    run: JobRun
    monitor: Monitor
    rng: random.Random
    faults: int
    reference: Reference
    proxy: Toxiproxy | None = None
    figures: dict[str, Any] = field(default_factory=dict)  # scenario-specific results

    def complete(self) -> bool:
        """Both stores hold as much as the reference run left (the job is over for them)."""
        counts = self.monitor.latest_counts()
        return counts is not None and all(
            now >= ref for now, ref in zip(counts, self.reference.counts, strict=True)
        )

    def progressed(self, share: float) -> bool:
        """At least ``share`` of the reference's rows are in PostgreSQL."""
        counts = self.monitor.latest_counts()
        return counts is not None and counts[0] >= share * self.reference.counts[0]

    async def until(self, share: float, seconds: float = 120.0) -> None:
        """Wait until the job has made ``share`` of its progress."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.progressed(share):  # the monitor's samples are polled, not signalled
            if loop.time() > deadline:
                raise TimeoutError(f"the job made no {share:.0%} of its progress in {seconds} s")
            await asyncio.sleep(0.1)

    async def pause(self, low: float, high: float) -> None:
        await asyncio.sleep(self.rng.uniform(low, high))


async def job_status(run: JobRun) -> str | None:
    """The job's status in the run's ledger (None before it is planned)."""
    query = sql.SQL("SELECT status FROM {}.jobs WHERE job_id = %s").format(sql.Identifier(run.name))
    try:
        async with await run.ctx.pg() as conn:
            row = await (await conn.execute(query, (run.job_id,))).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return None
    return row[0] if row else None


async def ledger_pages(run: JobRun) -> int:
    """Pages the ledger counts as confirmed so far."""
    query = sql.SQL("SELECT coalesce(sum(pages), 0) FROM {}.slices WHERE job_id = %s").format(
        sql.Identifier(run.name)
    )
    try:
        async with await run.ctx.pg() as conn:
            row = await (await conn.execute(query, (run.job_id,))).fetchone()
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return 0
    return int(row[0]) if row else 0


async def wait_job_ended(run: JobRun, process: Service, seconds: float = JOB_SECONDS) -> str | None:
    """Poll the ledger until the job is done, failed or cancelled; its status (None: timeout).

    Also returns (the status so far) once ``process``, the one following the job, exited.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        status = await job_status(run)
        if status in ("done", "failed", "cancelled") or not process.alive:
            return status
        await asyncio.sleep(0.5)
    return None
