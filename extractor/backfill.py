"""The public Python API: plan, estimate, run, resume, retry, cancel, status, report, work.

Schedulers (Airflow, Prefect) call these; the CLI is a thin layer over them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from contextlib import AsyncExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from common.amqp import robust_channel
from common.errors import BackfillError, ConfigError
from common.metrics import serve_metrics
from common.resilience import Stopped, unless_stopped
from common.settings import ExtractorSettings
from common.spec import DatasetSpec, load_spec
from common.spec_details import sliced_entities
from common.spec_source import DumpSourceSpec, HttpSourceSpec
from extractor import incremental
from extractor.driver import Interrupted, drive
from extractor.incremental import NothingToDo, SinceLast
from extractor.ledger.slices import Slice
from extractor.ledger.snapshot import JobSnapshot, read_snapshot
from extractor.ledger.store import NewJob, open_ledger
from extractor.options import JobOptions
from extractor.pacing.breaker import CircuitBreaker
from extractor.pacing.ratelimit import AdaptiveRateLimiter, rate_policy, slice_concurrency
from extractor.planner import plan_slices
from extractor.reporting.report import JobReport
from extractor.sources.auth import credentials
from extractor.sources.dump_estimate import DumpEstimate, estimate_files
from extractor.sources.dump_files import FilePlan, plan_files, resolve_base_path
from extractor.sources.estimate import JobEstimate, estimate_job
from extractor.sources.fetch import JsonFetcher, http_session
from extractor.sources.preflight import check_source
from extractor.stores import choose_stores, routed_entities
from extractor.worker import WorkerPool

__all__ = [
    "Interrupted",
    "JobOptions",
    "JobReport",
    "NothingToDo",
    "cancel",
    "create_job",
    "estimate",
    "job_report",
    "job_status",
    "plan",
    "resume_backfill",
    "retry_failed",
    "run_backfill",
    "run_worker",
    "since_last",
]
log = logging.getLogger(__name__)


def new_job_id(dataset: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    return f"{dataset}-{stamp}-{secrets.token_hex(3)}"


def http_source(spec: DatasetSpec) -> HttpSourceSpec:
    if not isinstance(spec.source, HttpSourceSpec):
        raise ConfigError(f"dataset {spec.name}: source kind {spec.source.kind} is not http")
    return spec.source


def plan(spec: DatasetSpec, options: JobOptions, *, dump_path: str | None = None) -> list[Slice]:
    """The slices a job would run (a dry run publishes nothing).

    HTTP sources: the date range in windows. Dumps: one slice per (entity, file) under the
    base path (``dump_path`` overrides the spec's); a glob matching nothing is an error.
    """
    if isinstance(spec.source, DumpSourceSpec):
        return plan_dump(spec, options, dump_path=dump_path).slices
    source = http_source(spec)
    return plan_slices(sliced_entities(spec), source.slicing, options.start, options.end)


def plan_dump(spec: DatasetSpec, options: JobOptions, *, dump_path: str | None) -> FilePlan:
    """A dump job's files, with a note per entity on which were chosen."""
    base_path = resolve_base_path(spec, dump_path)
    return plan_files(spec, base_path, all_files=options.all_files)


async def estimate(
    settings: ExtractorSettings, spec: DatasetSpec, slices: list[Slice]
) -> JobEstimate | DumpEstimate:
    """Records, pages and duration of the slices, asking the source or reading files (dry run)."""
    if isinstance(spec.source, DumpSourceSpec):
        base_path = resolve_base_path(spec, settings.extractor_dump_path)
        form, size = spec.source.format, spec.source.page_size
        return await asyncio.to_thread(estimate_files, form, base_path, slices, size)
    source = http_source(spec)
    policy = rate_policy(spec)
    assert policy is not None
    concurrency = slice_concurrency(settings.extractor_concurrency, policy)
    base_url = settings.extractor_source_url or source.base_url
    async with http_session(settings, concurrency) as session:
        fetcher = JsonFetcher(
            session,
            base_url,
            AdaptiveRateLimiter(policy.initial, policy.maximum),
            max_retries=settings.extractor_max_retries,
            breaker=CircuitBreaker(
                settings.extractor_breaker_failures, settings.extractor_breaker_cooldown
            ),
            headers=source.headers,
            dataset=spec.name,
            credentials=credentials(source.auth, base_url=base_url),
            latency_pacing=source.rate_limit.latency_pacing,
        )
        sized = await estimate_job(fetcher, spec, slices, policy)
        return replace(sized, quota_left=fetcher.quota_trend.spendable())


def largest_first(slices: list[Slice], sized: JobEstimate | DumpEstimate | None) -> list[str]:
    """Slice ids, the largest by the estimate first (else in plan order).

    Slices run side by side, so the job ends with whatever starts last: small slices at the
    end keep the tail short, while the source's rate limit is still used in full.
    """
    sizes = sized.per_slice if sized is not None else {}
    ordered = sorted(slices, key=lambda item: -(sizes.get(item.slice_id) or 0))
    return [item.slice_id for item in ordered]


async def run_backfill(
    settings: ExtractorSettings,
    options: JobOptions = JobOptions(),  # noqa: B008 - frozen, so a shared default is safe
    console: Console | None = None,
    interrupt: asyncio.Event | None = None,
) -> JobReport:
    """Plan a new job into the ledger, run it, and (if asked) wait for its stores."""
    interrupt = interrupt or asyncio.Event()
    try:
        job_id, todo = await unless_stopped(create_job(settings, options), interrupt)
    except Stopped:
        raise Interrupted("") from None  # before the job was in the ledger: nothing to resume
    async with open_ledger(settings) as ledger:
        console = console or Console(stderr=True)
        return await drive(settings, ledger, job_id, todo, options, console, interrupt)


async def create_job(
    settings: ExtractorSettings,
    options: JobOptions = JobOptions(),  # noqa: B008
) -> tuple[str, list[str]]:
    """Plan a new job into the ledger (nothing queued or run); its id and slices in run order."""
    planning = time.monotonic()
    if options.since_last:  # NothingToDo when the ledger's coverage reaches the end already
        options = (await since_last(settings, options)).options(options)
    spec = load_spec(settings.dataset.dataset_spec)
    await check_source(settings, spec)  # before anything is planned into the ledger
    requested = list(options.stores) if options.stores else None
    stores = choose_stores(settings.amqp.consumers, spec, requested)
    routed = routed_entities(spec, stores)
    slices = [
        s for s in plan(spec, options, dump_path=settings.extractor_dump_path) if s.entity in routed
    ]
    job_id = options.job_id or new_job_id(spec.name)
    sized = await _quiet_estimate(settings, spec, slices) if options.estimate else None
    plan_seconds = round(time.monotonic() - planning, 3)  # the report's "plan" phase
    async with open_ledger(settings) as ledger:
        job = NewJob(
            job_id=job_id,
            dataset=spec.name,
            spec=settings.dataset.dataset_spec,
            spec_body=spec.model_dump(mode="json"),
            options={
                **_job_options(settings, spec, options),
                # Only a narrower choice is kept: a job to every store publishes by
                # ``dataset.entity``, which any queue bound to it (an audit tap) also gets.
                "stores": stores if set(stores) != set(settings.amqp.consumers) else None,
                "plan_seconds": plan_seconds,
            },
            estimate=sized.as_dict() if sized else None,
            expected_records=sized.per_slice if sized else {},
            quota_left=sized.quota_left if isinstance(sized, JobEstimate) else None,
        )
        await ledger.create_job(job, slices, rate_policy(spec))
    log.info("job planned job=%s dataset=%s slices=%d", job_id, spec.name, len(slices))
    return job_id, largest_first(slices, sized)


async def since_last(
    settings: ExtractorSettings, options: JobOptions, now: dt.datetime | None = None
) -> SinceLast:
    """The window of an incremental run (``options.since_last``): from where the ledger's
    complete coverage of the dataset ends (``extractor.incremental``) to ``options.end``
    or now."""
    return await incremental.resolve(settings, options, now)


async def resume_backfill(
    settings: ExtractorSettings,
    job_id: str,
    options: JobOptions = JobOptions(),  # noqa: B008
    console: Console | None = None,
    interrupt: asyncio.Event | None = None,
    *,
    failed_too: bool = False,
) -> JobReport:
    """Continue every unfinished (and cancelled) slice from its last confirmed cursor."""
    async with open_ledger(settings) as ledger:
        job = await ledger.require_job(job_id)
        moved = _moved_source(settings, job.options)
        if moved:
            await ledger.save_options(job_id, {**job.options, **moved})
        todo = await ledger.reopen(job_id, retry_failed=failed_too)
        log.info("job resumed job=%s slices=%d retry_failed=%s", job_id, len(todo), failed_too)
        console = console or Console(stderr=True)
        return await drive(settings, ledger, job_id, todo, options, console, interrupt)


async def retry_failed(
    settings: ExtractorSettings,
    job_id: str,
    options: JobOptions = JobOptions(),  # noqa: B008
    console: Console | None = None,
    interrupt: asyncio.Event | None = None,
) -> JobReport:
    """Failed slices back to pending (attempts and cursor kept), then resume the job."""
    return await resume_backfill(settings, job_id, options, console, interrupt, failed_too=True)


async def cancel(settings: ExtractorSettings, job_id: str) -> str:
    """Ask the job's workers to stop after their in-flight pages; the job's status."""
    async with open_ledger(settings) as ledger:
        await ledger.require_job(job_id)
        status = await ledger.request_cancel(job_id)
        if await ledger.complete_job(job_id):
            status = (await ledger.require_job(job_id)).status
        return status


async def job_status(settings: ExtractorSettings, job_id: str) -> JobSnapshot:
    async with open_ledger(settings) as ledger:
        return await read_snapshot(ledger, job_id)


async def job_report(settings: ExtractorSettings, job_id: str) -> dict[str, Any]:
    """The ledger's account of a job, JSON-ready."""
    return (await job_status(settings, job_id)).as_dict()


async def recent_jobs(settings: ExtractorSettings, limit: int = 20) -> list[dict[str, Any]]:
    async with open_ledger(settings) as ledger:
        return await ledger.recent_jobs(limit)


async def run_worker(settings: ExtractorSettings, stop: asyncio.Event) -> None:
    """Work on slice tasks of the dataset's jobs until ``stop`` is set (``extractor worker``)."""
    spec = load_spec(settings.dataset.dataset_spec)
    concurrency = slice_concurrency(settings.extractor_concurrency, rate_policy(spec))
    async with AsyncExitStack() as stack:
        ledger = await stack.enter_async_context(open_ledger(settings))
        try:  # RabbitMQ away at the start is waited for, until a stop
            connection, channel = await unless_stopped(
                stack.enter_async_context(
                    robust_channel(settings.amqp.url, name="extractor-worker")
                ),
                stop,
            )
        except Stopped:
            return
        await stack.enter_async_context(
            serve_metrics(settings.observability, lambda: not connection.is_closed)
        )
        session = await stack.enter_async_context(http_session(settings, concurrency))
        pool = WorkerPool(
            settings,
            ledger,
            connection,
            channel,
            session,
            dataset=spec.name,
            concurrency=concurrency,
        )
        await pool.run(stop)


def _job_options(
    settings: ExtractorSettings, spec: DatasetSpec, options: JobOptions
) -> dict[str, Any]:
    """What the ledger keeps of a run's choices; workers read the source's place here."""
    if isinstance(spec.source, DumpSourceSpec):
        base_path = resolve_base_path(spec, settings.extractor_dump_path)
        return {"base_path": str(base_path), "all_files": options.all_files}
    return {
        "start": options.start.isoformat() if options.start else None,
        "end": options.end.isoformat() if options.end else None,
        "base_url": settings.extractor_source_url or http_source(spec).base_url,
    }


def _moved_source(settings: ExtractorSettings, job_options: dict[str, Any]) -> dict[str, str]:
    """A resume's new source URL or dump directory, if it names one the job did not have."""
    moved: dict[str, str] = {}
    source_url = settings.extractor_source_url
    if source_url and "base_url" in job_options and source_url != job_options["base_url"]:
        moved["base_url"] = source_url
    dump_path = settings.extractor_dump_path
    if dump_path and "base_path" in job_options:
        base_path = str(Path(dump_path).expanduser().resolve())
        if base_path != job_options["base_path"]:
            moved["base_path"] = base_path
    return moved


async def _quiet_estimate(
    settings: ExtractorSettings, spec: DatasetSpec, slices: list[Slice]
) -> JobEstimate | DumpEstimate | None:
    """The estimate for the progress bar; a job does not fail for want of one."""
    try:
        return await estimate(settings, spec, slices)
    except (BackfillError, ValueError) as exc:
        log.warning("no estimate job_dataset=%s error=%s", spec.name, exc)
        return None
