"""Extractor workers: take slice tasks from the work queue and run them.

A process runs up to ``concurrency`` slices at once (the queue's prefetch, from
EXTRACTOR_CONCURRENCY or the spec's maximum rate), of any job. A task is acked only when its
slice is terminal in the ledger; a worker that stops gracefully checkpoints its in-flight
pages, hands its slices back (pending) and requeues their tasks; a worker that dies leaves
its tasks unacked, so RabbitMQ redelivers them and another worker continues each slice from
its checkpoint once the dead worker's lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import socket
from enum import Enum
from pathlib import Path
from typing import Any

import aiohttp
from aio_pika.abc import (
    AbstractIncomingMessage,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from common.amqp import BROKER_ERRORS
from common.errors import BadMessageError
from common.resilience import sleep_unless_stopped
from common.settings import ExtractorSettings
from common.spec import DatasetSpec
from common.spec_source import DumpSourceSpec, HttpSourceSpec
from common.topology import Topology
from extractor import metrics
from extractor.finish import finish_job
from extractor.ledger.holds import QueueHold, record_hold
from extractor.ledger.leases import ClaimedSlice, SliceLeases
from extractor.ledger.schema import TERMINAL
from extractor.ledger.store import Ledger
from extractor.ledger.tasks import SliceTask, declare_work_queue, decode_task, work_queue_name
from extractor.pacing.breaker import CircuitBreaker
from extractor.pacing.queue_depth import ConsumerQueue, QueueDepthGate
from extractor.pacing.shared_limit import SharedRateLimiter
from extractor.slice_run import JobContext, PageSlots, SliceRun
from extractor.sources.auth import credentials
from extractor.sources.fetch import JsonFetcher
from extractor.sources.page_sources import DumpSource, HttpSource, Source
from extractor.stores import job_routes, job_stores

log = logging.getLogger(__name__)
CLAIM_ROUNDS = 10  # claim, look, maybe wait out a lease; more means a race that keeps losing


class Settle(Enum):
    ACK = "ack"
    REQUEUE = "requeue"


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class WorkerPool:
    """The slice workers of one process."""

    def __init__(
        self,
        settings: ExtractorSettings,
        ledger: Ledger,
        connection: AbstractRobustConnection,
        channel: AbstractRobustChannel,
        session: aiohttp.ClientSession,
        *,
        dataset: str,
        concurrency: int,
        on_slice_end: asyncio.Event | None = None,
    ) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.queue_name = work_queue_name(settings.extractor_work_queue, dataset)
        self.ledger = ledger
        self.connection = connection
        self.channel = channel
        self.session = session
        self.on_slice_end = on_slice_end
        self.worker_id = new_worker_id()
        self.leases = SliceLeases(ledger, self.worker_id, settings.extractor_lease_seconds)
        self.in_flight = PageSlots(settings.extractor_max_in_flight)
        self.stopping = asyncio.Event()
        self.topology = Topology(settings.amqp.amqp_exchange)
        self._jobs: dict[str, JobContext] = {}
        self._jobs_lock = asyncio.Lock()
        self._running: dict[tuple[str, str], asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume slice tasks until ``stop``; then let running slices wind down."""
        tasks_channel = await self.connection.channel()
        await tasks_channel.set_qos(prefetch_count=self.concurrency)
        queue = await declare_work_queue(tasks_channel, self.queue_name)
        heartbeat = asyncio.create_task(self._heartbeat())
        tag = await queue.consume(self._on_task)
        log.info(
            "worker started worker=%s queue=%s concurrency=%d",
            self.worker_id,
            self.queue_name,
            self.concurrency,
        )
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(*BROKER_ERRORS):
                await queue.cancel(tag)
            self.stopping.set()
            await self._wind_down()
            heartbeat.cancel()
            with contextlib.suppress(*BROKER_ERRORS):
                await tasks_channel.close()
            log.info("worker stopped worker=%s", self.worker_id)

    async def _wind_down(self) -> None:
        """Let running slices checkpoint and hand themselves back; past the grace (a ledger
        or broker that does not answer), cancel them: their tasks stay unacked, so RabbitMQ
        requeues them, and their leases run out for the resume."""
        if not self._tasks:
            return
        grace = 2 * self.settings.extractor_stop_grace
        _, late = await asyncio.wait(set(self._tasks), timeout=grace)
        if late:
            log.warning(
                "stopping slices that did not wind down in %.0f s count=%d", grace, len(late)
            )
            for task in late:
                task.cancel()
            await asyncio.wait(late)

    async def run_one(self, task: SliceTask) -> None:
        """Run one slice now, without the work queue (a scheduler's process per slice).

        As for a queued task: claimed under a lease, kept alive by the heartbeat, failed if
        it crashes; the job ended (and its end published) if this was its last slice.
        """
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self._run_task(task)
        except Exception as exc:  # as in the top loop: fail the slice so it cannot loop
            log.exception("slice crashed job=%s slice=%s", task.job_id, task.slice_id)
            await self._fail_crashed(task, exc)
        finally:
            heartbeat.cancel()

    async def _on_task(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._handle(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            task = decode_task(message.body)
        except BadMessageError as exc:
            log.error("dropping bad task message_id=%s reason=%s", message.message_id, exc)
            await _settle(message, Settle.ACK)
            return
        try:
            settle = await self._run_task(task)
        except Exception as exc:  # the worker's top loop: fail the slice, keep working
            log.exception("slice crashed job=%s slice=%s", task.job_id, task.slice_id)
            settle = await self._fail_crashed(task, exc)
        await _settle(message, settle)
        if self.on_slice_end is not None:
            self.on_slice_end.set()

    async def _run_task(self, task: SliceTask) -> Settle:
        key = (task.job_id, task.slice_id)
        while (running := self._running.get(key)) is not None:
            await running.wait()  # a duplicate of a slice running here: settle it after
        self._running[key] = asyncio.Event()
        try:
            return await self._run_slice(task)
        finally:
            self._running.pop(key).set()

    async def _run_slice(self, task: SliceTask) -> Settle:
        job = await self._job(task.job_id)
        if job is None:
            log.warning("task for unknown job job=%s slice=%s", *_ids(task))
            return Settle.ACK
        claimed = await self._claim(job, task)
        if not isinstance(claimed, ClaimedSlice):
            return claimed
        log.info(
            "slice started job=%s slice=%s attempt=%d page=%d",
            *_ids(task),
            claimed.attempts,
            claimed.next_page,
        )
        run = SliceRun(job, claimed, self.leases, self.in_flight, self.stopping)
        outcome = await run.run()
        log.info(
            "slice ended job=%s slice=%s status=%s pages=%d records=%d error=%s",
            *_ids(task),
            outcome.status,
            run.pages,
            run.records,
            outcome.error[1][:200] if outcome.error else "",
        )
        metrics.SLICES.labels(job.spec.name, outcome.status).inc()
        if outcome.terminal:
            await finish_job(self.ledger, job.exchange, task.job_id)
        return Settle.REQUEUE if outcome.status == "released" else Settle.ACK

    async def _claim(self, job: JobContext, task: SliceTask) -> ClaimedSlice | Settle:
        """The slice, or how to settle a task that is not (or no longer) runnable here."""
        seen_expiry: dt.datetime | None = None
        for _ in range(CLAIM_ROUNDS):
            if self.stopping.is_set():
                return Settle.REQUEUE
            claimed = await self.leases.claim(*_ids(task))
            if claimed is not None:
                return claimed
            state = await self.leases.state(*_ids(task))
            if state is None or state.status in TERMINAL or state.job_status in TERMINAL:
                await finish_job(self.ledger, job.exchange, task.job_id)
                return Settle.ACK
            expires = state.lease_expires
            if expires is None or expires <= state.now:  # nobody holds it
                if state.job_status == "cancelling":
                    await self.leases.cancel_unclaimed(*_ids(task))
                    await finish_job(self.ledger, job.exchange, task.job_id)
                    return Settle.ACK
                continue
            if seen_expiry is not None and expires != seen_expiry:
                return Settle.ACK  # the holder renewed its lease: it is alive and has a task
            seen_expiry = expires
            await sleep_unless_stopped((expires - state.now).total_seconds() + 0.05, self.stopping)
        log.warning("could not claim job=%s slice=%s; requeued", *_ids(task))
        return Settle.REQUEUE

    async def _job(self, job_id: str) -> JobContext | None:
        """The job's context; read again for every task, so a resume may move its source.

        One at a time: slices claimed together must share one context (one fetcher, so one
        rate limiter serving them by priority, one quota trend), not build one each.
        """
        async with self._jobs_lock:
            return await self._job_context(job_id)

    async def _job_context(self, job_id: str) -> JobContext | None:
        record = await self.ledger.job(job_id)
        if record is None:
            return None
        cached = self._jobs.get(job_id)
        if cached is None or cached.source.location != _location(record.options):
            spec = DatasetSpec.model_validate(record.spec_body)
            exchange = await self.topology.declare_exchanges(self.channel)
            stores = job_stores(record.options, self.settings.amqp.consumers)
            pairs = await self.topology.declare_dataset(self.channel, stores, spec)
            self._forget_idle_jobs()
            self._jobs[job_id] = JobContext(
                job_id,
                spec,
                self._source(job_id, record.options, spec),
                exchange,
                job_routes(spec, record.options, pairs),
                self._depth_gate(job_id, spec.name, pairs),
                self.settings.extractor_stop_grace,
            )
        return self._jobs[job_id]

    def _depth_gate(
        self, job_id: str, dataset: str, pairs: list[tuple[str, str]]
    ) -> QueueDepthGate:
        queues: dict[str, list[ConsumerQueue]] = {}
        for consumer, entity in pairs:
            queue = ConsumerQueue(consumer, Topology.queue_name(consumer, dataset, entity))
            queues.setdefault(entity, []).append(queue)

        async def on_hold(entity: str, hold: QueueHold | None) -> None:
            await record_hold(self.ledger, job_id, self.worker_id, entity, hold)

        return QueueDepthGate(
            self.connection,
            queues,
            self.settings.extractor_max_queue_depth,
            no_consumer_timeout=self.settings.extractor_no_consumer_timeout,
            on_hold=on_hold,
        )

    def _source(self, job_id: str, options: dict[str, Any], spec: DatasetSpec) -> Source:
        """Files for a dump job (no rate limit or breaker), else the HTTP fetcher."""
        if isinstance(spec.source, DumpSourceSpec):
            base_path = Path(str(options.get("base_path") or spec.source.base_path))
            return DumpSource(base_path, spec.source.format, spec.source.page_size)
        return HttpSource(self._fetcher(job_id, str(options.get("base_url", "")), spec))

    def _forget_idle_jobs(self) -> None:
        """Keep the job cache small in a long-lived worker: drop jobs with no running slice."""
        busy = {job_id for job_id, _ in self._running}
        for job_id in [j for j in self._jobs if j not in busy][: max(0, len(self._jobs) - 15)]:
            del self._jobs[job_id]

    def _fetcher(self, job_id: str, base_url: str, spec: DatasetSpec) -> JsonFetcher:
        source = spec.source
        assert isinstance(source, HttpSourceSpec)  # dump jobs have no fetcher
        return JsonFetcher(
            self.session,
            base_url,
            SharedRateLimiter(self.ledger, job_id, dataset=spec.name),
            max_retries=self.settings.extractor_max_retries,
            breaker=CircuitBreaker(
                self.settings.extractor_breaker_failures,
                self.settings.extractor_breaker_cooldown,
                name=base_url,
            ),
            headers=source.headers,
            dataset=spec.name,
            error_path=source.error_path,
            credentials=credentials(source.auth, base_url=base_url),
            latency_pacing=source.rate_limit.latency_pacing,
        )

    async def _fail_crashed(self, task: SliceTask, exc: Exception) -> Settle:
        """A slice that crashed the worker is failed (terminal) so it cannot crash-loop."""
        error = ("internal", f"{type(exc).__name__}: {exc}")
        try:
            await self.leases.fail_crashed(task.job_id, task.slice_id, error)
        except Exception as again:  # noqa: BLE001 - the ledger too: requeue, another may manage
            log.error("could not fail slice job=%s slice=%s error=%s", *_ids(task), again)
            return Settle.REQUEUE
        return Settle.ACK

    async def _heartbeat(self) -> None:
        interval = self.settings.extractor_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.leases.heartbeat()
            except Exception as exc:  # noqa: BLE001 - keep beating; checkpoints also renew
                log.warning("heartbeat failed worker=%s error=%s", self.worker_id, exc)


def _location(options: dict[str, Any]) -> str:
    """Where a job's source is, as the ledger says (a resume may have moved it)."""
    if options.get("base_path"):
        return str(options["base_path"])
    return str(options.get("base_url", "")).rstrip("/")


def _ids(task: SliceTask) -> tuple[str, str]:
    return task.job_id, task.slice_id


async def _settle(message: AbstractIncomingMessage, settle: Settle) -> None:
    """Ack or requeue; if the channel is gone the broker requeues the task by itself."""
    try:
        if settle is Settle.ACK:
            await message.ack()
        else:
            await message.nack(requeue=True)
    except BROKER_ERRORS as exc:
        log.warning("could not settle task message_id=%s error=%s", message.message_id, exc)
