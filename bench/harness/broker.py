"""Publishing a benchmark's messages ahead of its consumer, and cleaning up after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange

from common.amqp import publish_confirmed

# Publishes awaiting their confirm at once: enough to keep the broker busy.
PUBLISH_WINDOW = 256


async def publish_all(
    exchange: AbstractExchange,
    routing_key: str,
    messages: Iterable[tuple[bytes, str]],
    *,
    window: int = PUBLISH_WINDOW,
) -> int:
    """Publish (body, message_id) pairs, persistent and confirmed; returns how many."""
    published = 0
    in_flight: list[asyncio.Task[None]] = []
    for body, message_id in messages:
        in_flight.append(
            asyncio.create_task(
                publish_confirmed(exchange, routing_key, body, message_id=message_id)
            )
        )
        if len(in_flight) >= window:
            await asyncio.gather(*in_flight)
            published += len(in_flight)
            in_flight.clear()
    await asyncio.gather(*in_flight)
    return published + len(in_flight)


async def declare_plain_queue(channel: AbstractChannel, name: str) -> None:
    """A durable queue on the default exchange (the baselines' one-record-per-message queue)."""
    await channel.declare_queue(name, durable=True)


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready in a queue (passive declare)."""
    queue = await channel.declare_queue(name, passive=True)
    return queue.declaration_result.message_count or 0


async def delete_queues(channel: AbstractChannel, names: Iterable[str]) -> None:
    """Delete the benchmark's queues; one that is already gone is fine."""
    for name in names:
        with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
            await channel.queue_delete(name)
