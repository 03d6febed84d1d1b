"""While a run goes: what the stores hold, queue depths and every process's RSS, sampled;
the faults injected; and from both, how long the pipeline took to recover from each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.run import JobRun

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 0.5


@dataclass
class Fault:
    """One injected fault: what, where, and when it started and ended (monotonic)."""

    kind: str
    target: str
    started: float
    ended: float


@dataclass
class Sample:
    at: float
    counts: tuple[int, int, int] | None  # rows, nodes, relationships; None: a store was down
    depth: int | None  # messages ready in the run's consumer queues, all together


@dataclass
class Monitor:
    run: JobRun
    faults: list[Fault] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    peak_depth: int = 0

    def fault(self, kind: str, target: str, started: float | None = None) -> Fault:
        """Record a fault that has just ended (or is instantaneous, like kill -9)."""
        now = time.monotonic()
        item = Fault(kind, target, started if started is not None else now, now)
        self.faults.append(item)
        log.info("fault %s on %s", kind, target)
        return item

    async def sample_once(self) -> Sample:
        counts = depth = None
        with contextlib.suppress(Exception):  # a store being restarted: no sample this time
            counts = await self.run.ctx.store_counts(self.run.spec, self.run.name)
        with contextlib.suppress(Exception):
            depths = [await self.run.ctx.queue_depth(q) for q in self.run.consumer_queues()]
            depth = sum(depths)
            self.peak_depth = max(self.peak_depth, *depths)  # the deepest queue, as the gate
        for service in self.run.services:
            service.sample_rss()
        sample = Sample(time.monotonic(), counts, depth)
        self.samples.append(sample)
        return sample

    def latest_counts(self) -> tuple[int, int, int] | None:
        for sample in reversed(self.samples):
            if sample.counts is not None:
                return sample.counts
        return None

    def recovery_seconds(self, final: tuple[int, int, int]) -> list[float]:
        """Per fault: seconds from its end until every store moved on (or was complete)."""
        return [self._recovered_after(fault.ended, final) for fault in self.faults]

    def _recovered_after(self, ended: float, final: tuple[int, int, int]) -> float:
        before = next(
            (s.counts for s in reversed(self.samples) if s.at <= ended and s.counts), None
        )
        for sample in self.samples:
            if sample.at <= ended or sample.counts is None:
                continue
            if before is None or all(
                now > then or now >= done
                for now, then, done in zip(sample.counts, before, final, strict=True)
            ):
                return round(sample.at - ended, 2)
        return float("nan")

    def summary(self) -> dict[str, Any]:
        return {"samples": len(self.samples), "peak_queue_depth": self.peak_depth}


@contextlib.asynccontextmanager
async def monitoring(run: JobRun) -> AsyncIterator[Monitor]:
    monitor = Monitor(run)

    async def poll() -> None:
        while True:
            await monitor.sample_once()
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(poll())
    try:
        yield monitor
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
