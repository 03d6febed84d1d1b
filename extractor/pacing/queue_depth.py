"""EXTRACTOR_MAX_QUEUE_DEPTH: fetching waits while a consumer's queue holds too much.

Publisher confirms and EXTRACTOR_MAX_IN_FLIGHT only slow the extractor once RabbitMQ itself
pushes back (flow control, then its memory alarm, which blocks every publisher on the
broker). When a store is slow the consumer queues simply grow; this gate keeps them short
instead: before each page is fetched, the depth (ready messages, from a passive queue
declare, read at most every ``POLL_SECONDS`` per entity, plus the pages let through since)
of every consumer queue of the page's entity is checked, and fetching waits while one of
them is over the limit.

A wait is never silent: while it lasts, a WARNING every ``WARN_EVERY`` seconds names the
queue, its ready count, the limit and its consumers ("no consumer on Q: is graphinator
running?"), the gauge ``backfill_extractor_queue_held_back_seconds`` counts its seconds,
and ``on_hold`` (the worker's ledger) is told, so progress and ``extractor status`` show
"waiting for graphinator". A queue with no consumer for longer than
EXTRACTOR_NO_CONSUMER_TIMEOUT fails the wait (NoConsumerError) instead of waiting forever.
Every wait ends at once when the worker stops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from common import amqp
from common.outcomes import Outcome
from common.resilience import sleep_unless_stopped, unless_stopped
from extractor import metrics
from extractor.ledger.holds import QueueHold

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
WARN_EVERY = 30.0  # seconds between warnings while a queue holds fetching back
REPORT_EVERY = 2.0  # seconds between reports of a running hold to ``on_hold``


@dataclass(frozen=True)
class ConsumerQueue:
    consumer: str
    queue: str


class NoConsumerError(Exception):
    """A queue over the limit has had no consumer for longer than the setting allows."""

    kind = "no_consumer"

    def __init__(self, hold: QueueHold, timeout: float) -> None:
        super().__init__(
            f"no consumer on {hold.queue} for over {timeout:.0f} s ({hold.ready:,} ready,"
            f" limit {hold.limit:,}): start {hold.consumer}, then `extractor retry-failed`;"
            f" or run the job with --stores leaving {hold.consumer} out"
        )
        self.hold = hold


HoldReport = Callable[[str, "QueueHold | None"], Awaitable[None]]


@dataclass
class _Holding:
    hold: QueueHold
    started: float  # monotonic
    warned: float = 0.0
    reported: float = 0.0
    no_consumer_since: float | None = None


class QueueDepthGate:
    """Waits while any of an entity's consumer queues holds more than ``limit`` messages."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        queues: dict[str, list[ConsumerQueue]],
        limit: int,
        *,
        no_consumer_timeout: float = 0.0,
        on_hold: HoldReport | None = None,
    ) -> None:
        self.connection = connection
        self.queues = queues  # entity -> its consumer queues
        self.limit = limit
        self.no_consumer_timeout = no_consumer_timeout
        self.on_hold = on_hold
        self._channel: AbstractRobustChannel | None = None
        self._read: dict[str, tuple[float, int]] = {}  # entity -> (when, deepest queue)
        self._holding: dict[str, _Holding] = {}  # entity -> the hold while it lasts
        self._lock = asyncio.Lock()
        for entity_queues in queues.values():
            for queue in entity_queues:  # a series from the start: 0, not held
                metrics.HELD_BACK_SECONDS.labels(queue.queue).set(0)

    async def wait(self, entity: str, stopping: asyncio.Event) -> bool:
        """True once the entity's queues are at or under the limit (at once if it is 0);
        False if ``stopping`` was set first. NoConsumerError if the wait has no end."""
        if self.limit <= 0 or not self.queues.get(entity):
            return True
        while await unless_stopped(self._depth(entity), stopping) > self.limit:
            self._give_up_without_consumer(entity)
            metrics.QUEUE_DEPTH_WAITS.inc()
            if await sleep_unless_stopped(POLL_SECONDS, stopping):
                return False
        self._passed(entity)
        return True

    def _give_up_without_consumer(self, entity: str) -> None:
        holding = self._holding.get(entity)
        if holding is None or holding.no_consumer_since is None or not self.no_consumer_timeout:
            return
        if time.monotonic() - holding.no_consumer_since > self.no_consumer_timeout:
            raise NoConsumerError(holding.hold, self.no_consumer_timeout)

    def _passed(self, entity: str) -> None:
        """Count the page about to be fetched into the depth until the next read: the
        source may answer hundreds of pages in one poll interval, and each would see the
        same stale depth; so the limit is overshot by at most the pages in flight."""
        when, depth = self._read.get(entity, (0.0, 0))
        self._read[entity] = (when, depth + 1)

    async def _depth(self, entity: str) -> int:
        """The deepest of the entity's queues, read again once ``POLL_SECONDS`` passed."""
        async with self._lock:
            when, depth = self._read.get(entity, (0.0, 0))
            if time.monotonic() - when < POLL_SECONDS:
                return depth
            states = await self._read_depth(entity)
            over = [s for s in states if s.ready > self.limit]
            await self._follow_hold(entity, max(over, key=lambda s: s.ready) if over else None)
            depth = max((s.ready for s in states), default=0)
            self._read[entity] = (time.monotonic(), depth)
            return depth

    async def _read_depth(self, entity: str) -> list[QueueHold]:
        """Each queue as it is now (an empty list when the broker cannot say)."""
        now = dt.datetime.now(dt.UTC)
        states = []
        try:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self.connection.channel()
            for queue in self.queues[entity]:
                # robust=False: a robust channel answers a passive declare of a queue it
                # knows from its cache, with the depth of the first answer, forever.
                declared = await self._channel.declare_queue(
                    queue.queue, passive=True, robust=False
                )
                result = declared.declaration_result
                states.append(
                    QueueHold(
                        queue.consumer,
                        queue.queue,
                        result.message_count or 0,
                        self.limit,
                        result.consumer_count or 0,
                        now,
                    )
                )
        except Exception as exc:
            if amqp.classify(exc) is not Outcome.RETRY:
                raise
            # The broker is away or the queue is gone: publishing will find out and retry;
            # the gate must not hold a fetch on a depth it cannot read.
            log.info("queue depth unknown entity=%s error=%r", entity, exc)
            self._channel = None
            return []
        return states

    async def _follow_hold(self, entity: str, over: QueueHold | None) -> None:
        """Start, continue or end the entity's hold: warnings, the gauge, the ledger."""
        now = time.monotonic()
        holding = self._holding.get(entity)
        if over is None:
            if holding is not None:
                del self._holding[entity]
                metrics.HELD_BACK_SECONDS.labels(holding.hold.queue).set(0)
                log.info("%s; fetching again", holding.hold.describe().replace("held", "was held"))
                await self._report(entity, None)
            return
        if holding is None:
            holding = self._holding[entity] = _Holding(over, now)
        else:
            if holding.hold.queue != over.queue:
                metrics.HELD_BACK_SECONDS.labels(holding.hold.queue).set(0)
            over = replace(over, since=holding.hold.since)
        holding.hold = replace(over, seconds=now - holding.started)
        if over.consumers:
            holding.no_consumer_since = None
        elif holding.no_consumer_since is None:
            holding.no_consumer_since = now
        metrics.HELD_BACK_SECONDS.labels(over.queue).set(holding.hold.seconds)
        if now - holding.warned >= WARN_EVERY:
            holding.warned = now
            log.warning(holding.hold.describe())
        if now - holding.reported >= REPORT_EVERY:
            holding.reported = now
            await self._report(entity, holding.hold)

    async def _report(self, entity: str, hold: QueueHold | None) -> None:
        if self.on_hold is None:
            return
        try:
            await self.on_hold(entity, hold)
        except Exception as exc:  # noqa: BLE001 - a display; fetching must not fail for it
            log.warning("could not record the hold entity=%s error=%s", entity, exc)
