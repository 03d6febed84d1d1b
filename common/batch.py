"""The batch processor both consumers share: each consumer supplies only its sink.

Records from many messages are gathered per entity and flushed at ``batch_size`` records or
after ``flush_interval`` seconds. A message is acked only once every record it carried is
committed (a message may span two flushes). Transient store errors are retried with backoff
while deliveries pause; a batch failing for another reason is split until the bad records
are found, and those alone are dead-lettered with the reason. ``max_pending`` is real
backpressure: no message is taken while that many records wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractIncomingMessage, AbstractQueue

from common import metrics
from common.acks import BROKER_ERRORS, AckWindow
from common.amqp import publish_confirmed
from common.dead_letters import DeadLetters
from common.envelope import EndOfJob, KeyedPage, PageBatch, decode
from common.errors import BadMessageError
from common.records import (
    PreparedRecord,
    Rejected,
    by_last_key,
    dedupe_last_wins,
    page_size,
    prepare_page,
)
from common.resilience import retry_transient
from common.settings import ConsumerSettings
from common.sink import Sink
from common.spec import DatasetSpec, EntitySpec
from common.topology import Topology, consumes

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Delivery:
    """A message and how many of its records are not committed yet."""

    message: AbstractIncomingMessage
    remaining: int


@dataclass(eq=False)
class _Lane:
    """The buffer and flush state of one entity."""

    entity: str
    spec: EntitySpec
    queue_name: str
    buffer: list[tuple[PreparedRecord, _Delivery]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_flight: dict[asyncio.Task[None], AbstractSet[Any]] = field(default_factory=dict)
    oldest: float = field(default_factory=time.monotonic)
    unfinished: int = 0  # messages with records buffered or being written
    writing: int = 0  # batches being written
    jobs: set[str] = field(default_factory=set)


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
            name: _Lane(name, entity, topology.queue_name(service, spec.name, name))
            for name, entity in spec.entities.items()
            if consumes(service, entity)
        }
        self.pending = 0
        self._closing = False
        self._space = asyncio.Condition()
        self._dead: DeadLetters | None = None
        self._events: AbstractExchange | None = None
        self._queues: dict[str, AbstractQueue] = {}
        self._tags: dict[str, str] = {}
        self._acks = AckWindow()  # the consuming channel's deliveries, acked in runs

    async def declare(self) -> None:
        """Declare exchanges and this consumer's queues."""
        await self.topology.declare_exchanges(self.channel)
        dlx = await self.channel.get_exchange(self.topology.dead_letter_exchange)
        self._dead = DeadLetters(dlx, self.service, self.spec.name)
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
            await stop.wait()
        finally:
            for name, queue in self._queues.items():
                try:
                    await queue.cancel(self._tags[name])
                except BROKER_ERRORS as exc:  # the channel is gone, and its consumer with it
                    log.warning("cancel failed queue=%s error=%r", name, exc)
            self._closing = True
            for lane in self.lanes.values():
                lane.wake.set()
            await asyncio.gather(*flushers)  # each ends with a last flush of its lane
            log.info("drained service=%s", self.service)

    def _callback(self, lane: _Lane) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
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

    async def _handle_or_dead_letter(self, lane: _Lane, message: AbstractIncomingMessage) -> None:
        try:
            await self._handle(lane, message)
        except BROKER_ERRORS:
            raise
        except Exception as exc:
            log.exception("handling failed queue=%s", lane.queue_name)
            reason = f"consumer error: {type(exc).__name__}: {exc}"
            error = BadMessageError(reason, code="consumer_error")
            await self._dead_letter_message(lane, message, error)

    async def _handle(self, lane: _Lane, message: AbstractIncomingMessage) -> None:
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
        self, lane: _Lane, message: AbstractIncomingMessage, page: PageBatch | KeyedPage
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
                await self._dead_letter_record(
                    lane, page.message_id, ready.record, ready.error, index
                )
            else:
                prepared.append(ready)
        if not prepared:
            await self._acks.finished(message)
            return
        delivery = _Delivery(message, len(prepared))
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

    async def _flusher(self, lane: _Lane) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wake.wait(), self._until_due(lane))
            lane.wake.clear()
            await self._flush_lane(lane, partial=self._due(lane) or self._starved(lane))
        await self._flush_lane(lane, partial=True)

    def _due(self, lane: _Lane) -> bool:
        """Whether the oldest held record has waited a whole flush interval."""
        age = time.monotonic() - lane.oldest
        return bool(lane.buffer) and age >= self.settings.batch_flush_interval

    def _starved(self, lane: _Lane) -> bool:
        """Whether the broker will deliver nothing more until something is written: the lane
        holds ``prefetch`` unfinished messages and no write is in flight (a batch larger
        than prefetch x page size would otherwise wait a whole flush interval each time)."""
        prefetch = self.settings.prefetch
        blocked = lane.unfinished >= prefetch or self._acks.outstanding >= prefetch
        return blocked and bool(lane.buffer) and lane.writing == 0

    def _until_due(self, lane: _Lane) -> float:
        if not lane.buffer:
            return self.settings.batch_flush_interval
        waited = time.monotonic() - lane.oldest
        return max(0.0, self.settings.batch_flush_interval - waited)

    async def _flush_lane(self, lane: _Lane, *, partial: bool) -> None:
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

    async def _wait_for_room(self, lane: _Lane, keys: AbstractSet[Any] | None) -> None:
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
        lane: _Lane,
        batch: list[tuple[PreparedRecord, _Delivery]],
        records: list[PreparedRecord],
    ) -> None:
        lane.writing += 1
        try:
            await self._write(lane, batch, records)
        finally:
            lane.writing -= 1
        if self._starved(lane):  # the acks did not let the broker deliver more
            lane.wake.set()

    async def _write(
        self,
        lane: _Lane,
        batch: list[tuple[PreparedRecord, _Delivery]],
        records: list[PreparedRecord] | None = None,
    ) -> None:
        """Write a batch (``records``: its records, one per key, if already known)."""
        labels = (self.service, self.spec.name, lane.entity)
        if records is None:
            records = dedupe_last_wins([record for record, _ in batch])
        metrics.STORE_REJECTIONS.labels(*labels)  # the series exists (at 0) before any rejection
        started = time.perf_counter()
        try:
            result = await retry_transient(
                lambda: self.sink.write(lane.entity, records),
                self.sink.is_transient,
                what=f"{self.service} write {lane.entity}",
                on_retry=lambda exc: metrics.STORE_ERRORS.labels(*labels, type(exc).__name__).inc(),
            )
        except Exception as exc:  # noqa: BLE001 - any non-transient failure: find the bad records
            metrics.STORE_ERRORS.labels(*labels, type(exc).__name__).inc()
            metrics.STORE_REJECTIONS.labels(*labels).inc()
            await self._split(lane, batch, exc)
            return
        metrics.FLUSH_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(*labels).observe(len(records))
        metrics.BATCHES.labels(*labels).inc()
        metrics.RECORDS_WRITTEN.labels(*labels).inc(result.written)
        metrics.RECORDS_UNCHANGED.labels(*labels).inc(result.unchanged)
        if result.rejected:
            await self._dead_letter_rejected(lane, batch, result.rejected)
        await self._committed(lane, batch)

    async def _dead_letter_rejected(
        self,
        lane: _Lane,
        batch: list[tuple[PreparedRecord, _Delivery]],
        rejected: tuple[tuple[PreparedRecord, BadMessageError], ...],
    ) -> None:
        """Dead-letter the records the store left out, before their messages are acked."""
        deliveries = {id(record): delivery for record, delivery in batch}
        for record, error in rejected:
            message_id = deliveries[id(record)].message.message_id or ""
            await self._dead_letter_record(
                lane, message_id, record.for_dead_letter(), error, _key_place(record.key)
            )

    async def _split(
        self, lane: _Lane, batch: list[tuple[PreparedRecord, _Delivery]], error: Exception
    ) -> None:
        if len(batch) == 1:
            record, delivery = batch[0]
            bad = BadMessageError(f"{type(error).__name__}: {error}", code="rejected_by_store")
            await self._dead_letter_record(
                lane,
                delivery.message.message_id or "",
                record.for_dead_letter(),
                bad,
                _key_place(record.key),
            )
            await self._committed(lane, batch)
            return
        middle = len(batch) // 2
        log.warning(
            "splitting batch after store error entity=%s size=%d error=%s",
            lane.entity,
            len(batch),
            str(error).splitlines()[0][:200] if str(error) else "",
        )
        await self._write(lane, batch[:middle])
        await self._write(lane, batch[middle:])

    async def _committed(self, lane: _Lane, batch: list[tuple[PreparedRecord, _Delivery]]) -> None:
        done = []
        for delivery, count in Counter(map(itemgetter(1), batch)).items():  # counted in C
            delivery.remaining -= count
            if delivery.remaining == 0:
                done.append(delivery.message)
        lane.unfinished -= len(done)
        await self._acks.finished(*done)  # one ack for the run, not one per message
        metrics.MESSAGES_IN_FLIGHT.labels(self.service).dec(len(done))
        await self._add_pending(-len(batch))

    async def _add_pending(self, count: int) -> None:
        async with self._space:
            self.pending += count
            metrics.PENDING_RECORDS.labels(self.service).set(self.pending)
            self._space.notify_all()

    async def _finalise(self, lane: _Lane, message: AbstractIncomingMessage, end: EndOfJob) -> None:
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
        self, lane: _Lane, message: AbstractIncomingMessage, error: BadMessageError
    ) -> None:
        assert self._dead is not None
        await self._dead.message(lane.queue_name, message.body, message.message_id or "", error)
        await self._acks.finished(message)

    async def _dead_letter_record(
        self, lane: _Lane, message_id: str, record: Any, error: BadMessageError, where: int | str
    ) -> None:
        """``where``: the record's index in its page, or ``key=...`` when the store refused it
        (the dead letter's id is ``<message id>#<where>``, unique within its message)."""
        assert self._dead is not None
        await self._dead.record(lane.queue_name, lane.entity, message_id, record, error, where)


def _key_place(key: str | int) -> str:
    """Where a refused record was, by key, short enough for an AMQP message id (at most 255
    bytes): ``key=<key>``, or the first 24 characters and a digest of a longer key."""
    text = str(key)
    if len(text.encode()) <= 64:
        return f"key={text}"
    return f"key={text[:24]}...{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}"
