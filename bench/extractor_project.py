"""The project's path: ``extractor.backfill.run_backfill`` against the rate-limited demo API.

In this process, as a scheduler would call it: the bundled demo spec under a fresh dataset
name (30 daily slices), the rate limit under test, ``JobOptions(wait=False)`` (nothing
consumes; the pages go to the namespace's sink queue), every other setting at its default
or from the ``EXTRACTOR_*`` environment. The clock runs from the call until it returns:
planning, the estimate's count requests, fetching, publishing and the end-of-job message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import psycopg
from psycopg import sql
from rich.console import Console

from bench.extractor_api import DemoApi
from bench.extractor_context import ExtractorBenchContext, Namespace
from bench.extractor_rates import RequestWindow, observed
from bench.harness.context import running
from bench.harness.measure import sampling_rss
from common.settings import AmqpSettings, DatasetSettings, ExtractorSettings
from extractor.backfill import JobOptions, run_backfill
from extractor.pacing.ratelimit import RatePolicy, slice_concurrency

TIMEOUT_SECONDS = 600.0  # give up on a job that does not end
POLL_SECONDS = 0.25  # how often the limiter's rate is read from the ledger


@dataclass(frozen=True)
class Limits:
    """The spec's rate limit: where the limiter starts and the most it may reach."""

    initial: float
    maximum: float


def project_settings(
    ctx: ExtractorBenchContext, ns: Namespace, spec_path: str, url: str, concurrency: int | None
) -> ExtractorSettings:
    """Settings from the environment, with this namespace's spec, source, ledger and queue."""
    return ExtractorSettings().model_copy(
        update={
            "extractor_concurrency": concurrency,
            "dataset": DatasetSettings(dataset_spec=spec_path),
            "amqp": AmqpSettings(amqp_consumers=""),
            "extractor_source_url": url,
            "extractor_ledger_schema": ns.name,
            "extractor_work_queue": ctx.work_queue_prefix,
        }
    )


async def project_run(
    ctx: ExtractorBenchContext, ns: Namespace, api: DemoApi, limits: Limits, concurrency: int | None
) -> RequestWindow:
    """One job over the whole demo range; what the API saw while it ran."""
    spec = ns.write_spec(api.url, limits.initial, limits.maximum)
    settings = project_settings(ctx, ns, str(spec), api.url, concurrency)
    await ctx.declare_sink(ns)
    async with sampling_rss() as rss, following_limit(ctx, ns) as limit:
        started = time.time()
        async with asyncio.timeout(TIMEOUT_SECONDS):
            report = await run_backfill(settings, JobOptions(wait=False), Console(quiet=True))
        ended = time.time()
    if report.status != "done" or report.failed_slices:
        raise RuntimeError(f"job {report.job_id} ended {report.status}: {report.failed_slices}")
    return await observed(
        api,
        "project",
        (started, ended),
        pages=report.pages,
        records=report.records,
        peak_rss_mib=rss.peak,
        details={
            "job_id": report.job_id,
            "initial_rate": limits.initial,
            "maximum_rate": limits.maximum,
            "errors": report.errors,
            "fetch_seconds": round(report.fetch_seconds, 3),
            "concurrency": slice_concurrency(
                settings.extractor_concurrency, RatePolicy(limits.initial, limits.maximum)
            ),
            "limiter": limit.series(started),
            "limiter_decreases": limit.throttled,
        },
    )


@dataclass
class LimitTrace:
    """The shared limiter's rate as the ledger held it, sampled every ``POLL_SECONDS``."""

    samples: list[tuple[float, float]] = field(default_factory=list)
    throttled: int = 0

    def series(self, started: float) -> list[tuple[float, float]]:
        """(seconds since ``started``, requests/s) pairs."""
        return [(round(t - started, 2), round(rate, 1)) for t, rate in self.samples]


@contextlib.asynccontextmanager
async def following_limit(ctx: ExtractorBenchContext, ns: Namespace) -> AsyncIterator[LimitTrace]:
    """Poll the namespace's ``rate_limits`` row (one job per ledger schema) while a job runs."""
    trace = LimitTrace()
    query = sql.SQL("SELECT rate, throttled FROM {}.rate_limits").format(sql.Identifier(ns.name))

    async def poll() -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    ctx.postgres.conninfo, autocommit=True
                ) as conn:
                    while True:
                        with contextlib.suppress(psycopg.errors.UndefinedTable):
                            row = await (await conn.execute(query)).fetchone()
                            if row is not None:
                                trace.samples.append((time.time(), float(row[0])))
                                trace.throttled = int(row[1])
                        await asyncio.sleep(POLL_SECONDS)
            except psycopg.OperationalError:  # PostgreSQL restarted: the run is measured again
                await asyncio.sleep(POLL_SECONDS)

    async with running(poll()):
        yield trace
