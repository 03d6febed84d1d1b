"""EXTRACTOR_MAX_QUEUE_DEPTH: fetching waits while a consumer's queue holds too much.

Publisher confirms and EXTRACTOR_MAX_IN_FLIGHT only slow the extractor once RabbitMQ itself
pushes back (flow control, then its memory alarm, which blocks every publisher on the
broker). When a store is slow the consumer queues simply grow; this gate keeps them short
instead: before each page is fetched, the depth (ready messages, from a passive queue
declare, read at most every ``POLL_SECONDS`` per entity, plus the pages let through since)
of every consumer queue of the page's entity is checked, and fetching waits while one of
them is over the limit.
"""

from __future__ import annotations

import asyncio
import logging
import time

import aio_pika.exceptions
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection

from extractor import metrics

log = logging.getLogger(__name__)
POLL_SECONDS = 0.5
GATE_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
    RuntimeError,  # aio-pika's "Connection was not opened" while it reconnects
)


class QueueDepthGate:
    """Waits while any of an entity's consumer queues holds more than ``limit`` messages."""

    def __init__(
        self, connection: AbstractRobustConnection, queues: dict[str, list[str]], limit: int
    ) -> None:
        self.connection = connection
        self.queues = queues  # entity -> its consumer queues
        self.limit = limit
        self._channel: AbstractRobustChannel | None = None
        self._read: dict[str, tuple[float, int]] = {}  # entity -> (when, deepest queue)
        self._lock = asyncio.Lock()

    async def wait(self, entity: str) -> None:
        """Return once the entity's queues are at or under the limit (at once if it is 0)."""
        if self.limit <= 0 or not self.queues.get(entity):
            return
        waited = False
        while (depth := await self._depth(entity)) > self.limit:
            if not waited:
                log.info(
                    "queue depth over the limit entity=%s depth=%d limit=%d",
                    entity,
                    depth,
                    self.limit,
                )
                waited = True
            metrics.QUEUE_DEPTH_WAITS.inc()
            await asyncio.sleep(POLL_SECONDS)
        self._passed(entity)

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
            depth = await self._read_depth(entity)
            self._read[entity] = (time.monotonic(), depth)
            return depth

    async def _read_depth(self, entity: str) -> int:
        deepest = 0
        try:
            if self._channel is None or self._channel.is_closed:
                self._channel = await self.connection.channel()
            for name in self.queues[entity]:
                # robust=False: a robust channel answers a passive declare of a queue it
                # knows from its cache, with the depth of the first answer, forever.
                queue = await self._channel.declare_queue(name, passive=True, robust=False)
                deepest = max(deepest, queue.declaration_result.message_count or 0)
        except GATE_ERRORS as exc:
            # The broker is away or the queue is gone: publishing will find out and retry;
            # the gate must not hold a fetch on a depth it cannot read.
            log.info("queue depth unknown entity=%s error=%r", entity, exc)
            self._channel = None
            return 0
        return deepest
