"""One run from start to compared stores: processes up, faults (if any), the job's end,
the stores settled, every service drained by SIGTERM, both stores snapshotted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from bench.chaos.context import graph_lock
from bench.chaos.harness import JOB_SECONDS, job_status, wait_job_ended
from bench.chaos.monitor import Monitor, monitoring
from bench.chaos.run import JobRun
from bench.chaos.stores import Snapshot, snapshot, wipe_graph

log = logging.getLogger(__name__)
SETTLE_SECONDS = 180.0  # after the job ended, the stores must reach the reference by then
STALL_SECONDS = 20.0  # no change for this long with empty queues: nothing more will come
SNAPSHOT_ATTEMPTS = 5
STABLE_SECONDS = 3.0  # the reference run: counts unchanged this long with empty queues


@dataclass
class Outcome:
    """How a run ended, before its stores are compared."""

    status: str | None = None  # the job's status in the ledger
    extractor_exit: int | None = None  # of `run`, `resume` or the driver of a worker's job
    settled: bool = False
    drain_exits: dict[str, int | None] = field(default_factory=dict)
    dead_letters: int = 0
    seconds: float = 0.0
    snapshot: Snapshot = field(default_factory=Snapshot)
    counts: tuple[int, int, int] | None = None

    @property
    def finished_alone(self) -> bool:
        """Done, every store reached the reference, every service drained and exited 0."""
        return (
            self.status == "done"
            and self.extractor_exit == 0
            and self.settled
            and all(code == 0 for code in self.drain_exits.values())
        )


Inject = Callable[[Monitor], Awaitable[None]]


async def execute(
    run: JobRun, inject: Inject | None, target: tuple[int, int, int] | None, worker: bool
) -> tuple[Outcome, Monitor]:
    """Run the job (with ``inject`` injecting faults), then compare-ready stores."""
    outcome = Outcome()
    async with graph_lock():
        await wipe_graph(run.ctx.driver, run.spec)
        try:
            async with monitoring(run) as monitor:
                await _start(run, worker)
                if inject is not None:
                    await inject(monitor)
                await _finish(run, monitor, target, outcome, worker)
                outcome.seconds = run.elapsed()
        finally:
            run.stop_all()
        outcome.snapshot = await _snapshot(run)
        await wipe_graph(run.ctx.driver, run.spec)  # leave no 400k-item graph to the next user
    outcome.counts = monitor.latest_counts()
    outcome.dead_letters = sum([await run.ctx.queue_depth(q) for q in run.dead_letter_queues()])
    return outcome, monitor


async def _snapshot(run: JobRun) -> Snapshot:
    """Both stores; again if PostgreSQL restarts under it (other sessions share the server)."""
    for attempt in range(SNAPSHOT_ATTEMPTS):
        try:
            async with await run.ctx.pg() as conn:
                return await snapshot(conn, run.ctx.driver, run.spec, run.name)
        except psycopg.OperationalError:
            if attempt == SNAPSHOT_ATTEMPTS - 1:
                raise
            log.warning("snapshot interrupted by a PostgreSQL restart; again")
            await asyncio.sleep(5.0)
    raise AssertionError("unreachable")


async def _start(run: JobRun, worker: bool) -> None:
    run.start_consumers()
    if not worker:
        run.start_extractor()
        return
    driver = run.start_driver()
    async with asyncio.timeout(120):
        while await job_status(run) is None:
            if not driver.alive:
                raise RuntimeError(f"extractor run --enqueue-only ended; see {driver.log}")
            await asyncio.sleep(0.2)
    run.start_extractor(["worker"])


async def _finish(
    run: JobRun,
    monitor: Monitor,
    target: tuple[int, int, int] | None,
    outcome: Outcome,
    worker: bool,
) -> None:
    waited = run.driver if worker else run.extractor
    assert waited is not None
    outcome.status = await wait_job_ended(run, waited, JOB_SECONDS)
    outcome.extractor_exit = await waited.wait(JOB_SECONDS)
    outcome.settled = await settle(monitor, target)
    for service in run.services:
        if service.alive:
            outcome.drain_exits[service.name] = await service.terminate()


async def settle(monitor: Monitor, target: tuple[int, int, int] | None) -> bool:
    """Wait until the stores hold ``target`` with the queues empty (True), or stall (False).

    Without a target (the reference run): until the counts hold still with empty queues.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    last: tuple[int, int, int] | None = None
    since = loop.time()
    while loop.time() < deadline:
        sample = await monitor.sample_once()
        if sample.counts != last:
            last, since = sample.counts, loop.time()
        idle = sample.depth == 0 and loop.time() - since
        if target is not None and sample.counts == target and sample.depth == 0:
            return True
        if target is None and idle and idle >= STABLE_SECONDS:
            return True
        if target is not None and idle and idle >= STALL_SECONDS:
            log.warning("stores stalled at %s, reference %s", sample.counts, target)
            return False
        await asyncio.sleep(0.5)
    return False


def describe(outcome: Outcome) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "extractor_exit": outcome.extractor_exit,
        "settled": outcome.settled,
        "drain_exits": outcome.drain_exits,
        "dead_letters": outcome.dead_letters,
        "seconds": round(outcome.seconds, 1),
        "counts": outcome.counts,
    }
