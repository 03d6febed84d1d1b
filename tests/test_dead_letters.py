"""Bad messages go to the dead-letter queue with a reason; the good ones around them land."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import psycopg
from neo4j import AsyncDriver

from common.envelope import EndOfJob, PageBatch, encode
from common.settings import AmqpSettings
from common.topology import Topology
from tests.support.pipeline import running_consumers


def good_page(namespace: str, page: int) -> PageBatch:
    records = [
        {
            "id": f"r{page}-{i}",
            "format": "gen9ou",
            "uploadtime": 1_700_000_000 + i,
            "players": [{"userid": f"u{i}", "name": f"U {i}", "side": "p1"}],
        }
        for i in range(10)
    ]
    return PageBatch("job1", namespace, "replays", "s1", page, records)


async def publish(
    channel: aio_pika.abc.AbstractChannel, namespace: str, body: bytes, mid: str
) -> None:
    exchange = await Topology().declare_exchanges(channel)
    await exchange.publish(
        aio_pika.Message(body, message_id=mid, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=Topology.routing_key(namespace, "replays"),
    )


async def drain_dlq(channel: aio_pika.abc.AbstractChannel, name: str, count: int) -> list[Any]:
    queue = await channel.declare_queue(name, durable=True)
    messages: list[Any] = []
    for _ in range(200):
        message = await queue.get(no_ack=True, fail=False)
        if message is None:
            await asyncio.sleep(0.1)
            continue
        messages.append(message)
        if len(messages) == count:
            break
    return messages


async def test_bad_messages_are_dead_lettered_with_a_reason(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: aio_pika.abc.AbstractChannel,
) -> None:
    topology = Topology()
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        async with running_consumers(demo_spec_file, namespace):
            await asyncio.sleep(0.5)  # let the consumers declare their queues
            await publish(channel, namespace, encode(good_page(namespace, 0)), "good-0")
            await publish(channel, namespace, b"{not json", "not-json")
            bad_version = orjson.loads(encode(good_page(namespace, 9)))
            bad_version["v"] = 99
            await publish(channel, namespace, orjson.dumps(bad_version), "bad-version")
            await publish(channel, namespace, encode(good_page(namespace, 1)), "good-1")
            end = EndOfJob("job1", namespace, "replays", pages=2, records=20)
            await publish(channel, namespace, encode(end), end.message_id)
            tdlq = await drain_dlq(
                channel, topology.dead_letter_queue_name("tableinator", namespace, "replays"), 2
            )
            gdlq = await drain_dlq(
                channel, topology.dead_letter_queue_name("graphinator", namespace, "replays"), 2
            )

    cur = await pg.execute(f'SELECT count(*) FROM "{namespace}".replays')
    assert await cur.fetchone() == (20,)
    async with neo4j_driver.session() as session:
        record = await (await session.run("MATCH (n:Replay) RETURN count(n) AS c")).single()
    assert record is not None and record["c"] == 20
    for dead in (tdlq, gdlq):
        reasons = {m.message_id: m.headers for m in dead}
        assert set(reasons) == {"not-json", "bad-version"}
        assert "not valid JSON" in str(reasons["not-json"]["x-reason"])
        assert reasons["not-json"]["x-error-code"] == "not_json"
        assert "unknown envelope version 99" in str(reasons["bad-version"]["x-reason"])
