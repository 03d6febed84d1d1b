"""Waiting for the consumers to report a job finalised (their end-of-job events)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractQueue

from common.topology import Topology

log = logging.getLogger(__name__)


class CompletionWaiter:
    """Collects the consumers' "finalised" events of one job.

    The queue is declared before the end-of-job messages are published, so no event can be
    missed; it is deleted when the waiter is done.
    """

    def __init__(self, channel: AbstractChannel, topology: Topology, job_id: str) -> None:
        self.channel = channel
        self.topology = topology
        self.job_id = job_id
        self.events: dict[tuple[str, str], dict[str, Any]] = {}
        self._queue: AbstractQueue | None = None

    @staticmethod
    def queue_name(job_id: str) -> str:
        """The job's events queue (``extractor.scheduling`` reads it too)."""
        return f"extractor.events.{job_id}"

    async def listen(self) -> None:
        await self.topology.declare_exchanges(self.channel)
        self._queue = await self.channel.declare_queue(
            self.queue_name(self.job_id), durable=True, arguments={"x-expires": 86_400_000}
        )
        await self._queue.bind(self.topology.events_exchange, routing_key=f"{self.job_id}.#")
        # Events of an earlier end of this job (a failed run, then retry-failed) are stale.
        await self._queue.purge()

    async def wait(self, expected: list[tuple[str, str]], limit_seconds: float) -> bool:
        """Wait until every (consumer, entity) has reported; False on timeout."""
        assert self._queue is not None
        try:
            await asyncio.wait_for(self._collect(set(expected)), limit_seconds)
        except TimeoutError:
            missing = sorted(set(expected) - set(self.events))
            log.error("timed out waiting for consumers job=%s missing=%s", self.job_id, missing)
            return False
        return True

    async def _collect(self, expected: set[tuple[str, str]]) -> None:
        assert self._queue is not None
        async with self._queue.iterator() as messages:
            async for message in messages:
                async with message.process():
                    event = orjson.loads(message.body)
                    event["received_at"] = time.monotonic()
                    self.events[(event["service"], event["entity"])] = event
                if expected <= set(self.events):
                    return

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.delete(if_unused=False, if_empty=False)
