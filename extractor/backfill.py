"""The public Python API: plan and run a backfill job."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aiohttp
from rich.console import Console

from common.amqp import robust_channel
from common.errors import ConfigError
from common.settings import ExtractorSettings
from common.spec import DatasetSpec, HttpSourceSpec, load_spec
from common.topology import Topology
from extractor.completion import CompletionWaiter
from extractor.fetch import JsonFetcher
from extractor.job import JobRunner
from extractor.planner import Slice, plan_slices
from extractor.progress import JobProgress
from extractor.ratelimit import AdaptiveRateLimiter
from extractor.report import JobReport, build_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    """What a person chooses per run (the rest comes from settings and the spec)."""

    start: dt.date | dt.datetime | None = None
    end: dt.date | dt.datetime | None = None
    wait: bool = True
    wait_timeout: float = 3600.0
    job_id: str | None = None


def new_job_id(dataset: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{dataset}-{stamp}-{secrets.token_hex(3)}"


def plan(spec: DatasetSpec, options: JobOptions) -> list[Slice]:
    """The slices a job would run (a dry run publishes nothing)."""
    source = _http_source(spec)
    return plan_slices(list(spec.entities), source.slicing, options.start, options.end)


async def run_backfill(
    settings: ExtractorSettings, options: JobOptions, console: Console | None = None
) -> JobReport:
    """Fetch every slice, publish its pages, and (if asked) wait for both stores."""
    console = console or Console(stderr=True)
    spec = load_spec(settings.dataset.dataset_spec)
    source = _http_source(spec)
    slices = plan(spec, options)
    job_id = options.job_id or new_job_id(spec.name)
    topology = Topology(settings.amqp.amqp_exchange)
    async with AsyncExitStack() as stack:
        _connection, channel = await stack.enter_async_context(
            robust_channel(settings.amqp.url, name="extractor")
        )
        exchange = await topology.declare_exchanges(channel)
        expected = await topology.declare_dataset(channel, settings.amqp.consumers, spec)
        waiter = CompletionWaiter(channel, topology, job_id)
        await waiter.listen()
        stack.push_async_callback(waiter.close)
        session = await stack.enter_async_context(_http_session(settings, source))
        limiter = AdaptiveRateLimiter(source.rate_limit.initial, source.rate_limit.maximum)
        fetcher = JsonFetcher(
            session,
            settings.extractor_source_url or source.base_url,
            limiter,
            max_retries=settings.extractor_max_retries,
        )
        log.info("starting job=%s dataset=%s slices=%d", job_id, spec.name, len(slices))
        with JobProgress(console, len(slices)) as progress:
            runner = JobRunner(
                spec=spec,
                job_id=job_id,
                fetcher=fetcher,
                exchange=exchange,
                concurrency=settings.extractor_concurrency,
                on_progress=progress.update,
            )
            stats = await runner.run(slices)
        complete = True
        if options.wait:
            console.print(f"published {stats.records:,} records; waiting for the consumers")
            complete = await waiter.wait(expected, options.wait_timeout)
        return build_report(stats, waiter.events, complete)


def _http_source(spec: DatasetSpec) -> HttpSourceSpec:
    if not isinstance(spec.source, HttpSourceSpec):
        raise ConfigError(
            f"dataset {spec.name}: source kind {spec.source.kind} is not supported yet"
        )
    return spec.source


def _http_session(settings: ExtractorSettings, source: HttpSourceSpec) -> aiohttp.ClientSession:
    timeout = aiohttp.ClientTimeout(
        sock_connect=settings.extractor_connect_timeout, sock_read=settings.extractor_read_timeout
    )
    connector = aiohttp.TCPConnector(limit=settings.extractor_concurrency * 2)
    return aiohttp.ClientSession(
        timeout=timeout, connector=connector, headers=source.headers, raise_for_status=False
    )
