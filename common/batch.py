"""The batch processor both consumers share: each consumer supplies only its sink.

Records from many messages are gathered per entity and flushed at ``batch_size`` records or
after ``flush_interval`` seconds. A message is acked only once every record it carried is
committed (a message may span two flushes). Transient store errors are retried with backoff
while deliveries pause; a batch failing for another reason is split until the bad records
are found, and those alone are dead-lettered with the reason (``common.batch_write``).
``max_pending`` is real backpressure: no message is taken while that many records wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from common import metrics
from common.acks import AckWindow
from common.amqp import BROKER_ERRORS, publish_confirmed
from common.batch_write import BatchWriter, Delivery, Lane
from common.dead_letters import DeadLetters
from common.envelope import EndOfJob, KeyedPage, PageBatch, decode
from common.errors import BadMessageError
from common.outcomes import StopConsumer
from common.records import (
    PreparedRecord,
    Rejected,
    by_last_key,
    page_size,
    prepare_page,
)
from common.resilience import retry_transient
from common.settings import ConsumerSettings
from common.sink import Sink
from common.spec import DatasetSpec
from common.topology import Topology, consumes

log = logging.getLogger(__name__)


class BatchProcessor:
    """Consumes a dataset's queues for one sink, batching, acking after commit."""

    def __init__(
        self,
        *,
        service: str,
        spec: DatasetSpec,
        sink: Sink,
        channel: AbstractChannel,
        settings: ConsumerSettings,
        topology: Topology,
    ) -> None:
        self.service = service
        self.spec = spec
        self.sink = sink
        self.channel = channel
        self.settings = settings
        self.topology = topology
        self.lanes = {
            name: Lane(name, entity, topology.queue_name(service, spec.name, name))
            for name, entity in spec.entities.items()
            if consumes(service, entity)
        }
        self.pending = 0
        self._closing = False
        # The first error that is neither transient nor about a message: it stops the consumer.
        self._failed: asyncio.Future[BaseException] = asyncio.Future()
        self._space = asyncio.Condition()
        self._dead: DeadLetters | None = None
        self._events: AbstractExchange | None = None
        self._queues: dict[str, AbstractQueue] = {}
        self._tags: dict[str, str] = {}
        self._acks = AckWindow()  # the consuming channel's deliveries, acked in runs
        self._writer = BatchWriter(
            service=service,
            dataset=spec.name,
            sink=sink,
            acks=self._acks,
            release=lambda count: self._add_pending(-count),
        )

    async def declare(self) -> None:
        """Declare exchanges and this consumer's queues."""
        await self.topology.declare_exchanges(self.channel)
        dlx = await self.channel.get_exchange(self.topology.dead_letter_exchange)
        self._dead = DeadLetters(dlx, self.service, self.spec.name)
        self._writer.dead = self._dead
        self._events = await self.channel.get_exchange(self.topology.events_exchange)
        for name in self.lanes:
            self._queues[name] = await self.topology.declare_queue(
                self.channel, self.service, self.spec.name, name
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then drain: flush, ack, stop consuming."""
        await self.declare()
        flushers = [asyncio.create_task(self._flusher(lane)) for lane in self.lanes.values()]
        for name, queue in self._queues.items():
            self._tags[name] = await queue.consume(self._callback(self.lanes[name]))
        log.info("consuming service=%s queues=%s", self.service, sorted(self._queues))
        try:
            await self._until_stopped_or_failed(stop, flushers)
        finally:
            for name, queue in self._queues.items():
                try:
                    await queue.cancel(self._tags[name])
                except BROKER_ERRORS as exc:  # the channel is gone, and its consumer with it
                    log.warning("cancel failed queue=%s error=%r", name, exc)
            self._closing = True
            for lane in self.lanes.values():
                lane.wake.set()
            await self._drain(flushers)

    async def _until_stopped_or_failed(
        self, stop: asyncio.Event, flushers: list[asyncio.Task[None]]
    ) -> None:
        """Until ``stop``; a lane's flusher that fails (a StopConsumer, a bug) stops the
        whole consumer instead of leaving its lane's messages stuck unacked for ever."""
        stopping = asyncio.ensure_future(stop.wait())
        try:
            waits: list[asyncio.Future[Any]] = [stopping, self._failed, *flushers]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        failed = next((f for f in flushers if f.done() and f.exception()), None)
        error = failed.exception() if failed else (self._failed.done() and self._failed.result())
        if error:
            log.error("stopping service=%s error=%s", self.service, error, exc_info=error)
            raise StopConsumer(str(error)) from error

    async def _drain(self, flushers: list[asyncio.Task[None]]) -> None:
        """Each flusher ends with a last flush of its lane; one that cannot (a store that
        does not answer) is cancelled after ``drain_timeout``: its messages are not acked,
        so RabbitMQ redelivers them once this consumer's channel closes."""
        _, late = await asyncio.wait(flushers, timeout=self.settings.drain_timeout)
        for flusher in late:
            flusher.cancel()
        await asyncio.gather(*flushers, return_exceptions=True)  # a failure is raised above
        if late:
            log.warning(
                "stopped without draining service=%s lanes=%d after=%.0fs (left unacked)",
                self.service,
                len(late),
                self.settings.drain_timeout,
            )
        else:
            log.info("drained service=%s", self.service)

    def _callback(self, lane: Lane) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
        # aio-pika runs callbacks one after another per channel; awaiting here is what
        # stops deliveries when max_pending records wait.
        lock = asyncio.Lock()

        async def on_message(message: AbstractIncomingMessage) -> None:
            self._acks.received(message)  # first, in delivery order
            async with lock:
                try:
                    await self._handle_or_dead_letter(lane, message)
                except BROKER_ERRORS:
                    await self._acks.give_back(message)  # requeued, or redelivered
                    raise

        return on_message

    async def _handle_or_dead_letter(self, lane: Lane, message: AbstractIncomingMessage) -> None:
        try:
            await self._handle(lane, message)
        except BROKER_ERRORS:
            raise
        except BadMessageError as exc:
            await self._dead_letter_message(lane, message, exc)
        except Exception as exc:  # noqa: BLE001 - a bug, or a store error not about a message
            # Not dead-lettered: the message is good. The consumer stops, the message
            # unacked, and RabbitMQ redelivers it once the consumer runs again.
            if not self._failed.done():
                self._failed.set_result(exc)

    async def _handle(self, lane: Lane, message: AbstractIncomingMessage) -> None:
        if len(message.body) > self.settings.max_message_bytes:
            reason = (
                f"message of {len(message.body)} bytes exceeds {self.settings.max_message_bytes}"
            )
            await self._dead_letter_message(
                lane, message, BadMessageError(reason, code="too_large")
            )
            return
        try:
            decoded = decode(message.body)
        except BadMessageError as exc:
            await self._dead_letter_message(lane, message, exc)
            return
        if isinstance(decoded, EndOfJob):
            await self._finalise(lane, message, decoded)
        else:
            await self._accept(lane, message, decoded)

    async def _accept(
        self, lane: Lane, message: AbstractIncomingMessage, page: PageBatch | KeyedPage
    ) -> None:
        labels = (self.service, self.spec.name, lane.entity)
        metrics.RECORDS_CONSUMED.labels(*labels).inc(page_size(page))
        if page.job_id not in lane.jobs:
            await retry_transient(
                lambda: self.sink.begin_job(lane.entity, page.job_id),
                self.sink.is_transient,
                what=f"{self.service} begin job {page.job_id}",
            )
            lane.jobs.add(page.job_id)
        prepared: list[PreparedRecord] = []
        for index, ready in enumerate(prepare_page(page, lane.spec, parse=self.sink.reads_docs)):
            if isinstance(ready, Rejected):
                await self._writer.dead_letter_record(
                    lane, page.message_id, ready.record, ready.error, index
                )
            else:
                prepared.append(ready)
        if not prepared:
            await self._acks.finished(message)
            return
        delivery = Delivery(message, len(prepared))
        lane.unfinished += 1
        metrics.MESSAGES_IN_FLIGHT.labels(self.service).inc()
        if not lane.buffer:
            lane.oldest = time.monotonic()
        lane.buffer.extend(zip(prepared, itertools.repeat(delivery)))
        await self._add_pending(len(prepared))
        if len(lane.buffer) >= self.settings.batch_size or self._starved(lane):
            lane.wake.set()
        async with self._space:
            await self._space.wait_for(lambda: self.pending < self.settings.max_pending)

    async def _flusher(self, lane: Lane) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), self._until_due(lane))
            lane.wake.clear()
            await self._flush_lane(lane, partial=self._due(lane) or self._starved(lane))
        await self._flush_lane(lane, partial=True)

    def _due(self, lane: Lane) -> bool:
        """Whether the oldest held record has waited a whole flush interval."""
        age = time.monotonic() - lane.oldest
        return bool(lane.buffer) and age >= self.settings.batch_flush_interval

    def _starved(self, lane: Lane) -> bool:
        """Whether the broker will deliver nothing more until something is written: the lane
        holds ``prefetch`` unfinished messages and no write is in flight (a batch larger
        than prefetch x page size would otherwise wait a whole flush interval each time)."""
        prefetch = self.settings.prefetch
        blocked = lane.unfinished >= prefetch or self._acks.outstanding >= prefetch
        return blocked and bool(lane.buffer) and lane.writing == 0

    def _until_due(self, lane: Lane) -> float:
        if not lane.buffer:
            return self.settings.batch_flush_interval
        waited = time.monotonic() - lane.oldest
        return max(0.0, self.settings.batch_flush_interval - waited)

    async def _flush_lane(self, lane: Lane, *, partial: bool) -> None:
        """Start writes of full batches (and of the rest if ``partial``, then wait for all).

        Up to ``writes_in_flight`` batches are written at once, so the store works while the
        next batch is prepared; a batch sharing a key with one in flight waits for it, so the
        last version of a record always wins.
        """
        size = self.settings.batch_size
        async with lane.flushing:
            while len(lane.buffer) >= size or (partial and lane.buffer):
                batch = lane.buffer[:size]
                del lane.buffer[:size]
                lane.oldest = time.monotonic()
                by_key = by_last_key([record for record, _ in batch])
                keys = by_key.keys()
                await self._wait_for_room(lane, keys)
                task = asyncio.create_task(self._write_batch(lane, batch, list(by_key.values())))
                lane.in_flight[task] = keys
            if partial:
                await self._wait_for_room(lane, None)

    async def _wait_for_room(self, lane: Lane, keys: AbstractSet[Any] | None) -> None:
        """Wait for writes in flight: all of them if ``keys`` is None, else enough of them."""
        while lane.in_flight:
            blocking = [
                task
                for task, held in lane.in_flight.items()
                if keys is None or not held.isdisjoint(keys)
            ]
            if not blocking and len(lane.in_flight) < self.settings.writes_in_flight:
                return
            done, _ = await asyncio.wait(
                blocking or list(lane.in_flight), return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                del lane.in_flight[task]
                task.result()  # a write handles store errors itself; anything else is a bug

    async def _write_batch(
        self,
        lane: Lane,
        batch: list[tuple[PreparedRecord, Delivery]],
        records: list[PreparedRecord],
    ) -> None:
        lane.writing += 1
        try:
            await self._writer.write(lane, batch, records)
        finally:
            lane.writing -= 1
        if self._starved(lane):  # the acks did not let the broker deliver more
            lane.wake.set()

    async def _add_pending(self, count: int) -> None:
        async with self._space:
            self.pending += count
            metrics.PENDING_RECORDS.labels(self.service).set(self.pending)
            self._space.notify_all()

    async def _finalise(self, lane: Lane, message: AbstractIncomingMessage, end: EndOfJob) -> None:
        await self._flush_lane(lane, partial=True)
        landed = await retry_transient(
            lambda: self.sink.finalise(lane.entity, end),
            self.sink.is_transient,
            what=f"{self.service} finalise {lane.entity}",
        )
        event = {
            "job_id": end.job_id,
            "service": self.service,
            "dataset": end.dataset,
            "entity": end.entity,
            "published_records": end.records,
            "published_pages": end.pages,
            "landed": landed,
        }
        assert self._events is not None
        await publish_confirmed(
            self._events,
            f"{end.job_id}.{self.service}.{end.entity}",
            orjson.dumps(event),
            message_id=f"{end.message_id}/{self.service}",
            mandatory=False,  # nobody may be waiting (extractor run --no-wait)
        )
        log.info(
            "finalised job=%s service=%s entity=%s landed=%s",
            end.job_id,
            self.service,
            end.entity,
            landed,
        )
        await self._acks.finished(message)

    async def _dead_letter_message(
        self, lane: Lane, message: AbstractIncomingMessage, error: BadMessageError
    ) -> None:
        assert self._dead is not None
        await self._dead.message(lane.queue_name, message.body, message.message_id or "", error)
        await self._acks.finished(message)
