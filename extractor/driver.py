"""Driving a job that is in the ledger: enqueue its slices, work, wait, report.

Used by ``run`` (a new job), ``resume`` and ``retry-failed``. The driver enqueues slice
tasks, runs this process's workers (unless told to leave the work to ``extractor worker``
processes), follows the job in the ledger with a progress display until every slice is
terminal and the end-of-job messages are out, then waits for the consumers' "finalised"
events and builds the report.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from rich.console import Console

from common.amqp import robust_channel
from common.metrics import serve_metrics
from common.resilience import Stopped, unless_stopped
from common.settings import ExtractorSettings
from common.spec import DatasetSpec
from common.topology import Topology
from extractor.finish import finish_job, publish_end
from extractor.ledger.completion import CompletionWaiter
from extractor.ledger.snapshot import JobSnapshot, read_snapshot
from extractor.ledger.store import JobRecord, Ledger
from extractor.ledger.tasks import SliceTask, enqueue, work_queue_name
from extractor.options import JobOptions
from extractor.pacing.ratelimit import rate_policy, slice_concurrency
from extractor.reporting.progress import JobProgress, observe_job
from extractor.reporting.report import JobReport, build_report
from extractor.reporting.report_data import save_events
from extractor.sources.fetch import http_session
from extractor.stores import job_stores
from extractor.worker import WorkerPool

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5  # how often the progress display reads the ledger


class Interrupted(Exception):
    """The driver was asked to stop (SIGTERM/SIGINT); the job is left to resume.

    Its text is the job's id ("" when the job was not planned yet).
    """


async def drive(
    settings: ExtractorSettings,
    ledger: Ledger,
    job_id: str,
    todo: list[str],
    options: JobOptions,
    console: Console,
    interrupt: asyncio.Event | None = None,
) -> JobReport:
    started = time.monotonic()
    interrupt = interrupt or asyncio.Event()
    job = await ledger.require_job(job_id)
    was_finished = job.terminal and job.end_published_at is not None and not todo
    async with AsyncExitStack() as stack:
        try:  # RabbitMQ away at the start is waited for, until a stop
            broker = await unless_stopped(_Broker.open(stack, settings, job), interrupt)
        except Stopped:
            raise Interrupted(job_id) from None
        await stack.enter_async_context(
            serve_metrics(settings.observability, lambda: not broker.connection.is_closed)
        )
        queue = work_queue_name(settings.extractor_work_queue, job.dataset)
        queued = await enqueue(broker.channel, queue, [SliceTask(job_id, s) for s in todo])
        log.info("job queued job=%s dataset=%s slices=%d", job_id, job.dataset, queued)
        watch = _Watch(ledger, broker.exchange, job_id, interrupt, settings.extractor_lease_seconds)
        async with _local_workers(settings, ledger, broker, watch, options):
            with JobProgress(console) as progress:
                snapshot = await watch.until_finished(progress)
        fetched = time.monotonic()
        complete = True
        if options.wait and not was_finished and snapshot.job.status != "cancelled":
            stores = ", ".join(sorted({consumer for consumer, _ in broker.expected}))
            console.print(f"published {snapshot.records:,} records; waiting for {stores}")
            try:
                complete = await unless_stopped(
                    broker.waiter.wait(broker.expected, options.wait_timeout), interrupt
                )
            except Stopped:
                raise Interrupted(job_id) from None
        await save_events(ledger, job_id, broker.waiter.events)  # for `extractor report JOB`
        return build_report(
            await read_snapshot(ledger, job_id),
            broker.waiter.events,
            complete,
            started=started,
            fetched=fetched,
            now=time.monotonic(),
        )


@dataclass(frozen=True)
class _Broker:
    """The driver's connection, its exchange and queues, and the consumers' events."""

    connection: AbstractRobustConnection
    channel: AbstractRobustChannel
    exchange: AbstractExchange
    expected: list[tuple[str, str]]
    waiter: CompletionWaiter
    spec: DatasetSpec

    @classmethod
    async def open(
        cls, stack: AsyncExitStack, settings: ExtractorSettings, job: JobRecord
    ) -> _Broker:
        topology = Topology(settings.amqp.amqp_exchange)
        connection, channel = await stack.enter_async_context(
            robust_channel(settings.amqp.url, name="extractor")
        )
        exchange = await topology.declare_exchanges(channel)
        spec = DatasetSpec.model_validate(job.spec_body)
        stores = job_stores(job.options, settings.amqp.consumers)
        expected = await topology.declare_dataset(channel, stores, spec)
        waiter = CompletionWaiter(channel, topology, job.job_id)
        await waiter.listen()  # before anything can publish the end of the job
        stack.push_async_callback(waiter.close)
        return cls(connection, channel, exchange, expected, waiter, spec)


@asynccontextmanager
async def _local_workers(
    settings: ExtractorSettings,
    ledger: Ledger,
    broker: _Broker,
    watch: _Watch,
    options: JobOptions,
) -> AsyncIterator[None]:
    """This process's workers for as long as the driver follows the job."""
    if not options.local_workers:
        yield
        return
    concurrency = slice_concurrency(settings.extractor_concurrency, rate_policy(broker.spec))
    async with http_session(settings, concurrency) as session:
        stop = asyncio.Event()
        pool = WorkerPool(
            settings,
            ledger,
            broker.connection,
            broker.channel,
            session,
            dataset=broker.spec.name,
            concurrency=concurrency,
            on_slice_end=watch.wake,
        )
        task = asyncio.create_task(pool.run(stop))
        watch.tasks.append(task)
        try:
            yield
        finally:
            stop.set()
            await task


class _Watch:
    """Follows a job in the ledger until it is terminal and its end-of-job is out."""

    def __init__(
        self,
        ledger: Ledger,
        exchange: AbstractExchange,
        job_id: str,
        interrupt: asyncio.Event,
        grace: float,
    ) -> None:
        self.ledger = ledger
        self.exchange = exchange
        self.job_id = job_id
        self.interrupt = interrupt
        self.grace = grace
        self.wake = asyncio.Event()
        self._terminal_since: float | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def until_finished(self, progress: JobProgress) -> JobSnapshot:
        """The job's snapshot once it ended; Interrupted as soon as a stop is asked for,
        even while the ledger or the broker does not answer."""
        while True:
            try:
                snapshot = await unless_stopped(self._look(progress), self.interrupt)
            except Stopped:
                raise Interrupted(self.job_id) from None
            if snapshot is not None:
                return snapshot
            self._check_workers()
            if self.interrupt.is_set():
                raise Interrupted(self.job_id)
            await self._pause()

    async def _look(self, progress: JobProgress) -> JobSnapshot | None:
        """One round: end the job if it can be, show it; its snapshot once it is over."""
        await finish_job(self.ledger, self.exchange, self.job_id)
        snapshot = await read_snapshot(self.ledger, self.job_id, details=False)
        progress.update(snapshot)
        observe_job(snapshot)
        job = snapshot.job
        if job.terminal and (job.status == "cancelled" or job.end_published_at):
            return snapshot
        if job.terminal:
            self._terminal_since = self._terminal_since or time.monotonic()
            if time.monotonic() - self._terminal_since > self.grace:
                # Whoever ended the job died before publishing its end: do it here.
                await publish_end(self.ledger, self.exchange, self.job_id)
        return None

    def _check_workers(self) -> None:
        for task in self.tasks:
            if task.done():
                task.result()  # raises what stopped the workers
                raise RuntimeError("the local workers stopped while the job runs")

    async def _pause(self) -> None:
        waits = [asyncio.ensure_future(e.wait()) for e in (self.wake, self.interrupt)]
        try:
            await asyncio.wait(waits, timeout=POLL_SECONDS, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        self.wake.clear()
