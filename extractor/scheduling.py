"""Starting and following a job from a scheduler (Airflow, Prefect) without blocking on it.

``run_backfill`` plans, runs and waits in one call. A scheduler would rather submit the job
(its slices queued for ``extractor worker`` processes, or run one per scheduler task with
``run_slice``), give its slot back, and look again later: ``job_state`` says whether every
slice has ended and every consumer has finalised the job. The consumers' "finalised"
events are kept on the job's events queue, declared at submit and read here without being
taken off it (the queue expires a day after its last use).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from common.amqp import robust_channel
from common.settings import ExtractorSettings
from common.spec import DatasetSpec
from common.topology import Topology
from extractor.backfill import create_job
from extractor.finish import finish_job
from extractor.ledger.completion import CompletionWaiter
from extractor.ledger.snapshot import read_snapshot
from extractor.ledger.store import Ledger, open_ledger
from extractor.ledger.tasks import SliceTask, enqueue, work_queue_name
from extractor.options import JobOptions
from extractor.sources.fetch import http_session
from extractor.stores import job_stores
from extractor.worker import WorkerPool


@dataclass(frozen=True)
class JobState:
    """A job as a scheduler sees it: has it finished, did it work, what landed where."""

    job_id: str
    status: str  # running, cancelling, done, failed, cancelled
    slices: dict[str, int]
    records: int
    failed_slices: dict[str, str]
    ended: bool  # every slice ended and the end-of-job messages are out
    waiting_for: list[str]  # consumer/entity pairs that have not finalised the job yet
    landed: dict[str, dict[str, Any]] = field(default_factory=dict)  # consumer -> entity ->
    consumers_observed: bool = True  # False: no events queue (not started by submit_*)

    @property
    def finished(self) -> bool:
        """Nothing more will happen: cancelled, or ended and finalised by every consumer."""
        return self.status == "cancelled" or (self.ended and not self.waiting_for)

    @property
    def ok(self) -> bool:
        return self.finished and self.status == "done" and not self.failed_slices

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "finished": self.finished, "ok": self.ok}


async def submit_backfill(
    settings: ExtractorSettings,
    options: JobOptions = JobOptions(),  # noqa: B008 - frozen, so a shared default is safe
    *,
    queue_slices: bool = True,
) -> tuple[str, list[str]]:
    """Plan a new job and queue its slices for the workers, without waiting; its id and
    slices (largest first).

    ``queue_slices=False``: the caller runs each slice itself (``run_slice``).
    """
    job_id, todo = await create_job(settings, options)
    await _prepare(settings, job_id, todo if queue_slices else [])
    return job_id, todo


async def submit_retry(
    settings: ExtractorSettings, job_id: str, *, queue_slices: bool = True
) -> list[str]:
    """Failed and cancelled slices back to pending (cursors kept) and queued; the slices."""
    async with open_ledger(settings) as ledger:
        await ledger.require_job(job_id)
        todo = await ledger.reopen(job_id, retry_failed=True)
    await _prepare(settings, job_id, todo if queue_slices else [])
    return todo


async def job_state(settings: ExtractorSettings, job_id: str) -> JobState:
    """Where the job is, from the ledger and the consumers' events (nothing is consumed)."""
    topology = Topology(settings.amqp.amqp_exchange)
    async with (
        open_ledger(settings) as ledger,
        robust_channel(settings.amqp.url, name="extractor-state") as (connection, channel),
    ):
        # Ends a job whose last slice ended without ending it (as the driver does).
        await finish_job(ledger, await topology.declare_exchanges(channel), job_id)
        snapshot = await read_snapshot(ledger, job_id)
        events = await _peek_events(connection, job_id)
    job = snapshot.job
    expected = _expected(
        job_stores(job.options, settings.amqp.consumers), DatasetSpec.model_validate(job.spec_body)
    )
    landed: dict[str, dict[str, Any]] = {}
    for event in events or []:
        landed.setdefault(event["service"], {})[event["entity"]] = event["landed"]
    reported = {_pair((event["service"], event["entity"])) for event in events or []}
    return JobState(
        job_id=job_id,
        status=job.status,
        slices=snapshot.slices,
        records=snapshot.records,
        failed_slices={f.slice_id: f"{f.error_kind}: {f.last_error}" for f in snapshot.failed},
        ended=job.status == "cancelled" or (job.terminal and job.end_published_at is not None),
        waiting_for=[p for p in expected if events is not None and p not in reported],
        landed=landed,
        consumers_observed=events is not None,
    )


async def wait_finished(
    settings: ExtractorSettings, job_id: str, *, poll_seconds: float = 2.0
) -> JobState:
    """Poll ``job_state`` until the job has finished (bound it with ``asyncio.timeout``)."""
    while True:
        state = await job_state(settings, job_id)
        if state.finished:
            return state
        await asyncio.sleep(poll_seconds)


async def run_slice(settings: ExtractorSettings, job_id: str, slice_id: str) -> str:
    """Run one slice of a job here and now, outside the work queue; its status after."""
    async with open_ledger(settings) as ledger:
        job = await ledger.require_job(job_id)
        async with (
            robust_channel(settings.amqp.url, name="extractor-slice") as (connection, channel),
            http_session(settings, 1) as session,
        ):
            pool = WorkerPool(
                settings, ledger, connection, channel, session, dataset=job.dataset, concurrency=1
            )
            await pool.run_one(SliceTask(job_id, slice_id))
        return await _slice_status(ledger, job_id, slice_id)


@dataclass(frozen=True)
class RanSlice:
    """A slice run in its own process: its status after, and the process that ran it."""

    slice_id: str
    status: str
    pid: int


def run_slice_in_process(settings: ExtractorSettings, job_id: str, slice_id: str) -> RanSlice:
    """``run_slice`` in a fresh process that exits after it, so memory cannot build up."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_slice_sync, settings, job_id, slice_id).result()


def _run_slice_sync(settings: ExtractorSettings, job_id: str, slice_id: str) -> RanSlice:
    status = asyncio.run(run_slice(settings, job_id, slice_id))
    return RanSlice(slice_id, status, os.getpid())


async def _slice_status(ledger: Ledger, job_id: str, slice_id: str) -> str:
    row = await ledger.row(
        "SELECT status FROM {s}.slices WHERE job_id = %s AND slice_id = %s", (job_id, slice_id)
    )
    return str(row["status"]) if row else "unknown"


async def _prepare(settings: ExtractorSettings, job_id: str, slice_ids: list[str]) -> None:
    """The consumers' queues and the job's events queue (emptied), then the slice tasks."""
    async with open_ledger(settings) as ledger:
        job = await ledger.require_job(job_id)
    topology = Topology(settings.amqp.amqp_exchange)
    spec = DatasetSpec.model_validate(job.spec_body)
    async with robust_channel(settings.amqp.url, name="extractor-submit") as (_, channel):
        await topology.declare_exchanges(channel)
        await topology.declare_dataset(
            channel, job_stores(job.options, settings.amqp.consumers), spec
        )
        await CompletionWaiter(channel, topology, job_id).listen()
        queue = work_queue_name(settings.extractor_work_queue, job.dataset)
        await enqueue(channel, queue, [SliceTask(job_id, s) for s in slice_ids])


async def _peek_events(
    connection: AbstractRobustConnection, job_id: str
) -> list[dict[str, Any]] | None:
    """The job's finalised events, put back for the next look; None without the queue."""
    channel: AbstractChannel = await connection.channel()
    try:
        queue = await channel.declare_queue(CompletionWaiter.queue_name(job_id), passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        return None
    messages = []
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        messages.append(message)
    events = [orjson.loads(message.body) for message in messages]
    for message in messages:
        await message.nack(requeue=True)
    await channel.close()
    return events


def _expected(stores: list[str], spec: DatasetSpec) -> list[str]:
    return [_pair(pair) for pair in Topology.pairs(stores, spec)]


def _pair(pair: tuple[str, str]) -> str:
    return f"{pair[0]}/{pair[1]}"
