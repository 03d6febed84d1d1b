"""EXTRACTOR_MAX_QUEUE_DEPTH on a real broker: fetching waits while a consumer queue is over
the limit, and goes on once the consumers have caught up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection

from common.settings import AmqpSettings
from extractor.queue_depth import QueueDepthGate


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(AmqpSettings().url)
    async with connection:
        yield connection


async def test_the_gate_waits_over_the_limit_and_opens_when_the_queue_drains(
    connection: AbstractRobustConnection, namespace: str
) -> None:
    channel = await connection.channel()
    queue = await channel.declare_queue(f"{namespace}.depth", auto_delete=False)
    try:
        for _ in range(5):
            await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue.name)
        gate = QueueDepthGate(connection, {"replays": [queue.name]}, limit=2)
        waiting = asyncio.create_task(gate.wait("replays"))
        await asyncio.sleep(1.2)  # two reads of the depth, both over the limit
        assert not waiting.done()
        await queue.purge()
        # A robust channel would answer later passive declares from its cache (depth 5).
        await asyncio.wait_for(waiting, 3)
        await gate.wait("other")  # an entity without queues is never held
        await QueueDepthGate(connection, {"replays": [queue.name]}, limit=0).wait("replays")
    finally:
        await channel.queue_delete(queue.name)
