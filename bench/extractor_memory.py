"""Peak RSS of ``python -m extractor run --no-wait`` as the job grows 10x.

The demo spec (30 daily slices) against a demo API, then two jobs 10x longer: 10x the
records over the same 30 days (each slice has 10x the pages), and 10x the records over 10x
the days (300 slices, each as long as before). Nothing rate limits these runs (the API has
no limit, the spec's maximum is the demo's 2,000 requests/s); the pages go to the
namespace's sink queue. The extractor runs as its own process, as a user starts it: its
peak RSS is the child's VmHWM from ``/proc/PID/status``, sampled every 0.2 s with VmRSS for
the curve (``ru_maxrss`` from ``os.wait4`` would include the benchmark's own RSS).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench.extractor_api import DEFAULT_DAYS, demo_api
from bench.extractor_context import ExtractorBenchContext, Namespace

UNLIMITED = 2000.0  # the bundled demo spec's maximum; the API itself has no limit here
SAMPLE_SECONDS = 0.2
TIMEOUT_SECONDS = 600.0  # a job that hangs is killed (and reported as failed) after this


@dataclass
class MemoryRun:
    """One extractor process: its job, how long it took, and its memory."""

    label: str
    slices: int
    pages: int
    records: int
    seconds: float
    peak_rss_mib: float
    ru_maxrss_mib: float
    exit_code: int
    cpu_seconds: float
    rss_series: list[tuple[float, float]] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        counted = {name: getattr(self, name) for name in ("label", "slices", "pages", "records")}
        return {
            **counted,
            "seconds": round(self.seconds, 3),
            "pages_per_second": round(self.pages / self.seconds, 1),
            "records_per_second": round(self.records / self.seconds, 1),
            "peak_rss_mib": round(self.peak_rss_mib, 1),
            "ru_maxrss_mib_includes_parent": round(self.ru_maxrss_mib, 1),
            "exit_code": self.exit_code,
            "cpu_seconds": round(self.cpu_seconds, 2),
            "rss_series": self.rss_series,
        }


def _memory_mib(pid: int) -> tuple[float, float] | None:
    """VmRSS (now) and VmHWM (the peak since the process exec'd), MiB, from /proc."""
    fields: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    if len(fields) < 2:
        return None
    return fields["VmRSS"], fields["VmHWM"]


@dataclass(frozen=True)
class _Exit:
    code: int
    seconds: float
    peak_rss_mib: float
    ru_maxrss_mib: float
    cpu_seconds: float
    rss_series: list[tuple[float, float]]


def _run_measured(command: list[str], env: dict[str, str], log: Path) -> _Exit:
    """Run a child to its end (in a thread), sampling its memory; CPU from ``wait4``.

    The peak is the child's VmHWM, not ``wait4``'s ``ru_maxrss``: a child started by
    ``Popen`` (vfork, then exec) inherits its parent's high-water mark in ``ru_maxrss``, so
    the benchmark's own RSS would hide the extractor's.
    """
    series: list[tuple[float, float]] = []
    peak = 0.0
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > TIMEOUT_SECONDS:
            process.kill()
        memory = _memory_mib(process.pid)
        if memory is not None:
            series.append((round(time.monotonic() - started, 2), round(memory[0], 1)))
            peak = max(peak, memory[1])
        time.sleep(SAMPLE_SECONDS)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return _Exit(
        process.returncode,
        time.monotonic() - started,
        peak,
        usage.ru_maxrss / 1024,
        usage.ru_utime + usage.ru_stime,
        series,
    )


def _read_report(log: Path, report: Path, label: str, done: _Exit) -> dict[str, Any]:
    if done.code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{label}: extractor exited {done.code}:\n{tail}")
    body: dict[str, Any] = orjson.loads(report.read_bytes())
    return body


async def extractor_process(
    ctx: ExtractorBenchContext, ns: Namespace, url: str, log: Path, label: str, days: int
) -> MemoryRun:
    """``python -m extractor run --no-wait`` over the ``days`` daily slices before 2026."""
    spec = ns.write_spec(url, UNLIMITED, UNLIMITED, days)
    report = ctx.workdir / f"{ns.name}.report.json"
    env = dict(
        os.environ,
        AMQP_CONSUMERS="",
        EXTRACTOR_LEDGER_SCHEMA=ns.name,
        EXTRACTOR_WORK_QUEUE=ctx.work_queue_prefix,
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, "-m", "extractor", "run", "--no-wait", "--spec", str(spec)]
    command += ["--source-url", url, "--report-json", str(report)]
    await ctx.declare_sink(ns)
    done = await asyncio.to_thread(_run_measured, command, env, log)
    body = await asyncio.to_thread(_read_report, log, report, label, done)
    return MemoryRun(
        label,
        sum(entity["slices_done"] for entity in body["entities"].values()),
        body["pages"],
        body["records"],
        done.seconds,
        done.peak_rss_mib,
        done.ru_maxrss_mib,
        done.code,
        done.cpu_seconds,
        done.rss_series,
    )


async def memory_runs(
    ctx: ExtractorBenchContext, size: int, *, latency_ms: float, growth: int = 10
) -> list[MemoryRun]:
    """The 1x job, then two jobs ``growth`` times longer, each against a fresh demo API:
    ``growth``x the pages in each of the same 30 daily slices, and ``growth``x the days
    (slices) with as many pages each as at 1x."""
    shapes = (
        ("1x", size, DEFAULT_DAYS),
        (f"{growth}x pages per slice", size * growth, DEFAULT_DAYS),
        (f"{growth}x slices (days)", size * growth, DEFAULT_DAYS * growth),
    )
    log = ctx.workdir / "extractor-memory.log"

    async def once(label: str, records: int, days: int) -> MemoryRun:
        ns = ctx.namespace()
        try:
            async with demo_api(records, latency_ms=latency_ms, rate_limit=0, days=days) as api:
                return await extractor_process(ctx, ns, api.url, log, label, days)
        finally:
            await ctx.cleanup(ns)

    return [
        await ctx.unspoiled(f"the {label} job", partial(once, label, records, days))
        for label, records, days in shapes
    ]
