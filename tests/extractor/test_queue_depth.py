"""EXTRACTOR_MAX_QUEUE_DEPTH on a real broker: fetching waits while a consumer queue is over
the limit, says why, answers a stop at once, and goes on once the consumers have caught up."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from common.settings import AmqpSettings
from extractor.ledger.holds import QueueHold
from extractor.pacing import queue_depth
from extractor.pacing.queue_depth import ConsumerQueue, NoConsumerError, QueueDepthGate


@pytest.fixture
async def connection() -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(AmqpSettings().url)
    async with connection:
        yield connection


@pytest.fixture
async def full_queue(
    connection: AbstractRobustConnection, namespace: str
) -> AsyncIterator[AbstractQueue]:
    """A queue holding 5 messages and no consumer."""
    channel = await connection.channel()
    queue = await channel.declare_queue(f"graphinator.{namespace}.replays", auto_delete=False)
    for _ in range(5):
        await channel.default_exchange.publish(aio_pika.Message(b"{}"), routing_key=queue.name)
    try:
        yield queue
    finally:
        await channel.queue_delete(queue.name)


def queues(queue: AbstractQueue) -> dict[str, list[ConsumerQueue]]:
    return {"replays": [ConsumerQueue("graphinator", queue.name)]}


async def test_the_gate_waits_over_the_limit_and_opens_when_the_queue_drains(
    connection: AbstractRobustConnection, full_queue: AbstractQueue
) -> None:
    holds: list[QueueHold | None] = []

    async def on_hold(entity: str, hold: QueueHold | None) -> None:
        assert entity == "replays"
        holds.append(hold)

    gate = QueueDepthGate(connection, queues(full_queue), limit=2, on_hold=on_hold)
    never = asyncio.Event()
    waiting = asyncio.create_task(gate.wait("replays", never))
    await asyncio.sleep(1.2)  # two reads of the depth, both over the limit
    assert not waiting.done()
    await full_queue.purge()
    # A robust channel would answer later passive declares from its cache (depth 5).
    assert await asyncio.wait_for(waiting, 3) is True
    first = holds[0]
    assert first is not None and (first.queue, first.ready, first.consumers) == (
        full_queue.name,
        5,
        0,
    )
    assert holds[-1] is None  # the hold was ended for the ledger
    assert await gate.wait("other", never)  # an entity without queues is never held
    assert await QueueDepthGate(connection, queues(full_queue), limit=0).wait("replays", never)


async def test_a_stop_ends_the_wait_at_once(
    connection: AbstractRobustConnection, full_queue: AbstractQueue
) -> None:
    gate = QueueDepthGate(connection, queues(full_queue), limit=2)
    stop = asyncio.Event()
    waiting = asyncio.create_task(gate.wait("replays", stop))
    await asyncio.sleep(0.8)
    assert not waiting.done()
    stopped_at = time.monotonic()
    stop.set()
    assert await asyncio.wait_for(waiting, 2) is False
    assert time.monotonic() - stopped_at < 0.5


async def test_a_queue_without_consumer_is_named_in_a_warning(
    connection: AbstractRobustConnection,
    full_queue: AbstractQueue,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = QueueDepthGate(connection, queues(full_queue), limit=2)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger=queue_depth.__name__):
        waiting = asyncio.create_task(gate.wait("replays", stop))
        await asyncio.sleep(0.3)
        stop.set()
        await waiting
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"fetching held back by queue {full_queue.name}: 5 ready, limit 2, 0 consumer(s),"
        f" for 0 s; no consumer on {full_queue.name}: is graphinator running?"
    ]


async def test_no_consumer_for_longer_than_the_timeout_fails_the_wait(
    connection: AbstractRobustConnection, full_queue: AbstractQueue, namespace: str
) -> None:
    gate = QueueDepthGate(connection, queues(full_queue), limit=2, no_consumer_timeout=0.6)
    with pytest.raises(NoConsumerError, match=f"no consumer on graphinator.{namespace}.replays"):
        await asyncio.wait_for(gate.wait("replays", asyncio.Event()), 5)


async def test_a_queue_with_a_consumer_never_times_out(
    connection: AbstractRobustConnection, full_queue: AbstractQueue
) -> None:
    """A slow consumer is waited for: the timeout is for a queue nobody reads."""
    channel: AbstractChannel = await connection.channel()
    await channel.set_qos(prefetch_count=1)
    queue = await channel.declare_queue(full_queue.name, passive=True)

    async def hold_on(_: AbstractIncomingMessage) -> None:
        """Takes one message and never acks it."""

    await queue.consume(hold_on)
    gate = QueueDepthGate(connection, queues(full_queue), limit=2, no_consumer_timeout=0.3)
    stop = asyncio.Event()
    waiting = asyncio.create_task(gate.wait("replays", stop))
    await asyncio.sleep(1.5)
    assert not waiting.done()
    stop.set()
    assert await waiting is False
    await channel.close()
