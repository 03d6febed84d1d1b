"""Publishing test pages and reading queues and dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from common.envelope import EndOfJob, PageBatch, encode
from common.records import record_keys
from common.topology import Topology

TOPOLOGY = Topology()


async def publish_pages(
    channel: AbstractChannel,
    dataset: str,
    pages: Iterable[list[Any]],
    *,
    job_id: str = "job",
    entity: str = "replays",
    end: bool = True,
    keyed_by: str | None = None,
    pace: float = 0.0,
) -> int:
    """Publish pages (and an end-of-job message); returns the number of pages.

    Pages are version 1 (records in one array) unless ``keyed_by`` names the key path: then
    keyed, as the extractor publishes them. ``pace``: seconds between two pages, as a slow
    source would send them.
    """
    exchange = await TOPOLOGY.declare_exchanges(channel)
    count = records = 0
    for number, page in enumerate(pages):
        if pace and number:
            await asyncio.sleep(pace)
        keys = None if keyed_by is None else record_keys(page, keyed_by, "text")
        batch = PageBatch(job_id, dataset, entity, "slice", number, page, keys=keys)
        await exchange.publish(
            aio_pika.Message(
                encode(batch),
                message_id=batch.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=Topology.routing_key(dataset, entity),
        )
        count, records = count + 1, records + len(page)
    if end:
        message = EndOfJob(job_id, dataset, entity, pages=count, records=records)
        await exchange.publish(
            aio_pika.Message(
                encode(message),
                message_id=message.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=Topology.routing_key(dataset, entity),
        )
    return count


async def declare(channel: AbstractChannel, consumer: str, dataset: str) -> None:
    await TOPOLOGY.declare_queue(channel, consumer, dataset, "replays")


async def get_all(
    channel: AbstractChannel, queue_name: str, count: int, seconds: float = 20.0
) -> list[AbstractIncomingMessage]:
    """Up to ``count`` messages from a queue, waiting at most ``seconds``."""
    queue = await channel.declare_queue(queue_name, durable=True, passive=True)
    messages: list[AbstractIncomingMessage] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(messages) < count and asyncio.get_running_loop().time() < deadline:
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.05)
        else:
            messages.append(message)
    return messages


async def depth(channel: AbstractChannel, queue_name: str) -> int:
    """Messages ready in a queue (unacked ones are not counted)."""
    queue = await channel.declare_queue(queue_name, durable=True, passive=True)
    return queue.declaration_result.message_count or 0
