"""What one measurement records, the process's memory while it runs, and the machine."""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.harness.context import running
from extractor.ledger.completion import CompletionWaiter

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass
class Measurement:
    """One timed path: how many records it committed in how many seconds."""

    name: str
    label: str
    records: int
    seconds: float
    peak_rss_mib: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "records_per_second": round(self.rate, 1)}


def current_rss_mib() -> float:
    """Resident set size of this process now (Linux /proc)."""
    try:
        resident = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return resident * _PAGE_BYTES / 2**20


def cpu_seconds() -> float:
    """User + system CPU time this process has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class RssSampler:
    """The highest RSS seen while a block runs (sampled every ``interval`` seconds)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0.0

    async def run(self) -> None:
        while True:
            self.peak = max(self.peak, current_rss_mib())
            await asyncio.sleep(self.interval)


@asynccontextmanager
async def sampling_rss(interval: float = 0.05) -> AsyncIterator[RssSampler]:
    sampler = RssSampler(interval)
    try:
        async with running(sampler.run()):
            yield sampler
    finally:
        sampler.peak = max(sampler.peak, current_rss_mib())


class Stopwatch:
    """Monotonic seconds since ``start()``."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def start(self) -> None:
        self.started = time.monotonic()

    def elapsed(self, until: float | None = None) -> float:
        return (time.monotonic() if until is None else until) - self.started


def git_revision() -> dict[str, Any]:
    """The commit measured, and whether the working tree differed from it."""
    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": bool(git("status", "--short"))}


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    return [round(value, 2) for value in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """Cores, CPU, memory and Python: what a reader needs to compare figures."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        mem_kib = 0
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


async def run_until_finalised(
    name: str,
    service: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
    waiter: CompletionWaiter,
    entity: str,
    seconds_allowed: float,
) -> tuple[float, float]:
    """Run a consumer from a cold start until it reports the job; (seconds, peak RSS).

    ``service(stop)`` runs the consumer until ``stop`` is set; ``waiter`` hears its
    end-of-job event (``name`` and ``entity``).
    """
    stop = asyncio.Event()
    async with sampling_rss() as rss:
        watch = Stopwatch()
        consumer = asyncio.create_task(service(stop))
        finalised = asyncio.create_task(waiter.wait([(name, entity)], seconds_allowed))
        try:
            await asyncio.wait({consumer, finalised}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # raises what stopped it
                raise RuntimeError(f"{name} stopped before finalising the job")
            if not finalised.result():
                raise TimeoutError(f"{name} did not finalise within {seconds_allowed} s")
            seconds = watch.elapsed(waiter.events[(name, entity)]["received_at"])
        finally:
            stop.set()
            finalised.cancel()
            await asyncio.gather(consumer, finalised, return_exceptions=True)
    return seconds, rss.peak
