"""Writing one batch: retries, splitting out bad records, dead letters, acks after commit.

The batch processor (``common.batch``) gathers records into lanes and hands full batches
here. A batch is written with transient errors retried; a batch failing for a record's sake
(the sink's ``classify`` says DEAD_LETTER) is split in halves until the bad records are
found, and those alone are dead-lettered; any other error stops the consumer (StopConsumer)
with nothing acked, so no good record is ever dead-lettered for a bug or an outage; the
records a sink leaves out (``WriteResult.rejected``) are dead-lettered too; then every
message whose records are all committed is finished, and acked in runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from common import metrics
from common.acks import AckWindow
from common.dead_letters import DeadLetters
from common.errors import BadMessageError
from common.outcomes import Outcome, StopConsumer
from common.records import PreparedRecord, dedupe_last_wins
from common.resilience import retry_transient
from common.sink import Sink
from common.spec import EntitySpec

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Delivery:
    """A message and how many of its records are not committed yet."""

    message: AbstractIncomingMessage
    remaining: int


@dataclass(eq=False)
class Lane:
    """The buffer and flush state of one entity."""

    entity: str
    spec: EntitySpec
    queue_name: str
    buffer: list[tuple[PreparedRecord, Delivery]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_flight: dict[asyncio.Task[None], AbstractSet[Any]] = field(default_factory=dict)
    oldest: float = field(default_factory=time.monotonic)
    unfinished: int = 0  # messages with records buffered or being written
    writing: int = 0  # batches being written
    jobs: set[str] = field(default_factory=set)


class BatchWriter:
    """Writes the batches of one consumer's lanes to its sink."""

    def __init__(
        self,
        *,
        service: str,
        dataset: str,
        sink: Sink,
        acks: AckWindow,
        release: Callable[[int], Awaitable[None]],
    ) -> None:
        self.service = service
        self.dataset = dataset
        self.sink = sink
        self.acks = acks
        self.release = release  # records no longer pending (committed or dead-lettered)
        self.dead: DeadLetters | None = None  # set once the exchanges are declared

    async def write(
        self,
        lane: Lane,
        batch: list[tuple[PreparedRecord, Delivery]],
        records: list[PreparedRecord] | None = None,
    ) -> None:
        """Write a batch (``records``: its records, one per key, if already known)."""
        labels = (self.service, self.dataset, lane.entity)
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
        except Exception as exc:
            metrics.STORE_ERRORS.labels(*labels, type(exc).__name__).inc()
            if self.sink.classify(exc) is not Outcome.DEAD_LETTER:
                # Neither transient nor about a record (a bug, a dropped table): splitting
                # would dead-letter good records one by one. Stop, acking nothing.
                raise StopConsumer(
                    f"{self.service} cannot write {lane.entity}: {type(exc).__name__}: {exc}"
                ) from exc
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
        await self.committed(lane, batch)

    async def _dead_letter_rejected(
        self,
        lane: Lane,
        batch: list[tuple[PreparedRecord, Delivery]],
        rejected: tuple[tuple[PreparedRecord, BadMessageError], ...],
    ) -> None:
        """Dead-letter the records the store left out, before their messages are acked."""
        deliveries = {id(record): delivery for record, delivery in batch}
        for record, error in rejected:
            message_id = deliveries[id(record)].message.message_id or ""
            await self.dead_letter_record(
                lane, message_id, record.for_dead_letter(), error, key_place(record.key)
            )

    async def _split(
        self, lane: Lane, batch: list[tuple[PreparedRecord, Delivery]], error: Exception
    ) -> None:
        if len(batch) == 1:
            record, delivery = batch[0]
            bad = BadMessageError(f"{type(error).__name__}: {error}", code="rejected_by_store")
            await self.dead_letter_record(
                lane,
                delivery.message.message_id or "",
                record.for_dead_letter(),
                bad,
                key_place(record.key),
            )
            await self.committed(lane, batch)
            return
        middle = len(batch) // 2
        log.warning(
            "splitting batch after store error entity=%s size=%d error=%s",
            lane.entity,
            len(batch),
            str(error).splitlines()[0][:200] if str(error) else "",
        )
        await self.write(lane, batch[:middle])
        await self.write(lane, batch[middle:])

    async def committed(self, lane: Lane, batch: list[tuple[PreparedRecord, Delivery]]) -> None:
        done = []
        for delivery, count in Counter(map(itemgetter(1), batch)).items():  # counted in C
            delivery.remaining -= count
            if delivery.remaining == 0:
                done.append(delivery.message)
        lane.unfinished -= len(done)
        await self.acks.finished(*done)  # one ack for the run, not one per message
        metrics.MESSAGES_IN_FLIGHT.labels(self.service).dec(len(done))
        await self.release(len(batch))

    async def dead_letter_record(
        self, lane: Lane, message_id: str, record: Any, error: BadMessageError, where: int | str
    ) -> None:
        """``where``: the record's index in its page, or ``key=...`` when the store refused it
        (the dead letter's id is ``<message id>#<where>``, unique within its message)."""
        assert self.dead is not None
        await self.dead.record(lane.queue_name, lane.entity, message_id, record, error, where)


def key_place(key: str | int) -> str:
    """Where a refused record was, by key, short enough for an AMQP message id (at most 255
    bytes): ``key=<key>``, or the first 24 characters and a digest of a longer key."""
    text = str(key)
    if len(text.encode()) <= 64:
        return f"key={text}"
    return f"key={text[:24]}...{hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}"
