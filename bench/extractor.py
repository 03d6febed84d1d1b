"""``python -m bench extractor``: pages/s against a rate-limited API, and memory as a job grows.

In one run, against the bundled demo API in its own process (50 ms per page, a token bucket
of R requests/s with a one-second burst, 429 + Retry-After + RateLimit-* headers), for each
R (50 and 200 by default), each measurement with a fresh API:

1. the baseline: one page at a time, ``sleep(0.5)`` between pages, fixed timeouts, each
   page published with its confirm awaited (``bench.extractor_baseline``);
2. the project's path, ``extractor.backfill.run_backfill`` over the demo spec's 30 daily
   slices: (a) its maximum configured right (initial = maximum = R), (b) a maximum of 2R
   from an initial R/2, so the limiter must find the API's limit itself from 429s and
   RateLimit-* headers;
3. optionally (b) and (a) again with another ``EXTRACTOR_CONCURRENCY``.

Then memory: peak RSS of ``python -m extractor run --no-wait`` for a job and for two jobs
10x longer, in pages per slice and in slices (``bench.extractor_memory``). The share of the
allowed rate is the requests answered 200 over what the API's bucket could have admitted in
the job's window (``bench.extractor_rates``).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp

from bench.extractor_api import demo_api
from bench.extractor_baseline import sequential_baseline
from bench.extractor_context import ExtractorBenchContext, extractor_context
from bench.extractor_memory import memory_runs
from bench.extractor_project import Limits, project_run
from bench.extractor_rates import RequestWindow
from bench.harness.measure import git_revision, load_average, machine_info
from common.settings import ExtractorSettings

log = logging.getLogger(__name__)

TARGET_SHARE = 0.95
TARGET_RSS_GROWTH = 1.2
PAGE_SIZE = 50  # the demo spec's
WORK_QUEUE_PREFIX = "bench.extractor.work"


@dataclass(frozen=True)
class Options:
    """What ``python -m bench extractor`` measures, and how much."""

    rates: tuple[int, ...] = (50, 200)
    latency_ms: float = 50.0
    job_seconds: float = 25.0
    baseline_pages: int = 40
    skip_baseline: bool = False
    concurrency_variant: int | None = None
    memory_records: int = 50_000
    memory_growth: int = 10
    skip_memory: bool = False


def job_records(rate: float, seconds: float) -> int:
    """Records for a job of about ``seconds`` at ``rate`` pages/s (pages of 50)."""
    return int(rate * seconds * PAGE_SIZE)


async def run_bench(options: Options) -> dict[str, Any]:
    """Every measurement of the run; the result is what ``--json`` writes."""
    started = dt.datetime.now(dt.UTC)
    load_at_start = load_average()
    revision = git_revision()
    concurrency = ExtractorSettings().extractor_concurrency
    windows: list[dict[str, Any]] = []
    memory: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-extractor-") as workdir:
        async with extractor_context(Path(workdir), WORK_QUEUE_PREFIX) as ctx:
            versions = {"postgresql": str(await ctx.postgres_scalar("SHOW server_version"))}
            for rate in options.rates:
                for name, window in await _rate_runs(ctx, options, rate, concurrency):
                    windows.append({"name": name, **window.as_dict()})
                    log.warning(
                        "%s R=%s: %.1f pages/s, %.1f%% of allowed, %d x 429",
                        name,
                        rate,
                        window.pages / window.seconds,
                        100 * window.share_of_allowed,
                        window.throttled,
                    )
            if not options.skip_memory:
                runs = await memory_runs(
                    ctx,
                    options.memory_records,
                    latency_ms=options.latency_ms,
                    growth=options.memory_growth,
                )
                memory = [run.as_dict() for run in runs]
    return {
        "benchmark": "extractor",
        "date": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "git": revision,
        "load_average": {"start": load_at_start, "end": load_average()},
        "versions": {
            **versions,
            "aiohttp": aiohttp.__version__,
            "aio_pika": aio_pika.__version__,
        },
        "options": asdict(options),
        "extractor_concurrency": concurrency,
        "measurements": windows,
        "memory": memory,
        "summary": summarise(windows, memory),
    }


async def _rate_runs(
    ctx: ExtractorBenchContext, options: Options, rate: int, concurrency: int | None
) -> list[tuple[str, RequestWindow]]:
    """The baseline and the project's runs at one rate limit, each against a fresh API."""
    records = job_records(rate, options.job_seconds)
    runs: list[tuple[str, RequestWindow]] = []
    if not options.skip_baseline:
        runs.append(("baseline", await _measure(ctx, options, rate, records, None, None)))
    variants = [concurrency]
    if options.concurrency_variant and options.concurrency_variant != concurrency:
        variants.append(options.concurrency_variant)
    for workers in variants:
        suffix = "" if workers == concurrency else f"@{workers}"
        for mode, limits in (
            ("configured", Limits(rate, rate)),
            ("discovering", Limits(rate / 2, rate * 2)),
        ):
            window = await _measure(ctx, options, rate, records, limits, workers)
            runs.append((f"project_{mode}{suffix}", window))
    return runs


async def _measure(
    ctx: ExtractorBenchContext,
    options: Options,
    rate: int,
    records: int,
    limits: Limits | None,
    concurrency: int | None,
) -> RequestWindow:
    """One path against a fresh demo API: the baseline when ``limits`` is None."""

    async def once() -> RequestWindow:
        ns = ctx.namespace()
        try:
            async with demo_api(records, latency_ms=options.latency_ms, rate_limit=rate) as api:
                if limits is None:
                    return await sequential_baseline(ctx, ns, api, options.baseline_pages)
                return await project_run(ctx, ns, api, limits, concurrency)
        finally:
            await ctx.cleanup(ns)

    workers = concurrency or "sized from the maximum rate"
    what = "the baseline" if limits is None else f"{limits} with concurrency {workers}"
    return await ctx.unspoiled(f"{what} at R={rate}", once)


def summarise(windows: list[dict[str, Any]], memory: list[dict[str, Any]]) -> dict[str, Any]:
    """Per rate: each project run's share of the allowed rate and its ratio to the baseline;
    the memory growth; whether each target is met."""
    by_rate: dict[str, dict[str, Any]] = {}
    for window in windows:
        rate = f"{window['rate_limit']:g}"
        by_rate.setdefault(rate, {})[window["name"]] = window
    summary: dict[str, Any] = {
        "target_share_of_allowed": TARGET_SHARE,
        "target_rss_growth": TARGET_RSS_GROWTH,
        "rates": {},
    }
    for rate, runs in by_rate.items():
        baseline = runs.get("baseline")
        row: dict[str, Any] = {}
        for name, window in runs.items():
            if name == "baseline":
                continue
            entry = {
                "share_of_allowed": window["share_of_allowed"],
                "steady_share_of_rate": window["steady_share_of_rate"],
                "met": window["share_of_allowed"] >= TARGET_SHARE,
                "requests_throttled": window["requests_throttled"],
            }
            if baseline:
                entry["vs_baseline"] = round(
                    window["pages_per_second"] / baseline["pages_per_second"], 1
                )
            row[name] = entry
        summary["rates"][rate] = row
    if len(memory) > 1:
        base = memory[0]["peak_rss_mib"]
        growth = {run["label"]: round(run["peak_rss_mib"] / base, 3) for run in memory[1:]}
        summary["rss_growth"] = growth
        summary["rss_target_met"] = max(growth.values()) <= TARGET_RSS_GROWTH
    return summary
