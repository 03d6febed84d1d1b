"""The broker goes away just as a dead letter is being published: the consumer waits for
it instead of losing the lane, and afterwards every good record has landed, the bad one
is dead-lettered and the queue is empty."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import psycopg
from aio_pika.abc import AbstractChannel
from psycopg_pool import AsyncConnectionPool

from common.consumer import consume
from common.records import PreparedRecord
from common.settings import AmqpSettings, ObservabilitySettings, PostgresSettings, consumer_settings
from common.sink import WriteResult
from common.spec import load_spec
from common.topology import Topology
from tableinator.sink import PostgresSink, prepare_database, stage_configurer
from tests.support.broker import declare, depth, get_all, publish_pages
from tests.support.proxy import cuttable_proxy

PAGES, PER_PAGE = 4, 25


class CutsTheBrokerOnARefusal(PostgresSink):
    """The real sink; when the store refuses the one isolated bad record (so a dead letter
    is about to be published), the broker is cut off for 2 s."""

    def __init__(self, *args: Any, cut: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut = cut
        self.cuts = 0

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        try:
            return await super().write(entity, records)
        except psycopg.errors.DataError:
            if len(records) == 1 and not self.cuts:
                self.cuts += 1
                self.cut()
            raise


def pages() -> list[list[dict[str, Any]]]:
    out = [
        [{"id": f"p{p}-{i}", "format": "gen9ou", "uploadtime": i} for i in range(PER_PAGE)]
        for p in range(PAGES)
    ]
    out[1][3]["uploadtime"] = "yesterday"  # the typed column is bigint: refused by the store
    return out


async def test_a_broker_outage_while_dead_lettering_loses_nothing(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], amqp: AbstractChannel
) -> None:
    spec = load_spec(demo_spec_file)
    await declare(amqp, "tableinator", namespace)
    settings = PostgresSettings(postgres_schema=namespace)
    async with (
        AsyncConnectionPool(
            settings.conninfo, min_size=1, max_size=4, configure=stage_configurer(spec), open=False
        ) as pool,
        cuttable_proxy("127.0.0.1", 5672) as proxy,
        AsyncExitStack() as stack,
    ):
        async with pool.connection() as conn:
            await prepare_database(conn, spec, namespace)

        def cut() -> None:
            proxy.cut()
            asyncio.get_running_loop().call_later(2.0, proxy.restore)

        sink = CutsTheBrokerOnARefusal(pool, spec, namespace, cut=cut)
        stop = asyncio.Event()
        consumer = asyncio.create_task(
            consume(
                service="tableinator",
                spec=spec,
                sink=sink,
                amqp=AmqpSettings(amqp_connection=f"amqp://guest:guest@127.0.0.1:{proxy.port}/"),
                batch=consumer_settings("POSTGRES").model_copy(
                    update={"batch_flush_interval": 0.2}
                ),
                observability=ObservabilitySettings(),
                stop=stop,
                stack=stack,
            )
        )
        await publish_pages(amqp, namespace, pages(), end=False)
        queue = Topology.queue_name("tableinator", namespace, "replays")
        async with asyncio.timeout(60):
            while not (sink.cuts and await good_rows(pg, namespace) == PAGES * PER_PAGE - 1):
                assert not consumer.done(), consumer
                await asyncio.sleep(0.2)
            while await depth(amqp, queue):
                await asyncio.sleep(0.2)
        assert not consumer.done()  # it waited the outage out
        stop.set()
        await consumer
    dlq = Topology.dead_letter_queue_name("tableinator", namespace, "replays")
    dead = await get_all(amqp, dlq, 1, 10)
    assert dead and all(m.headers["x-error-code"] == "rejected_by_store" for m in dead)
    assert sink.cuts == 1


async def good_rows(pg: psycopg.AsyncConnection[Any], schema: str) -> int:
    try:
        cur = await pg.execute(f'SELECT count(*) FROM "{schema}".replays')
    except psycopg.errors.UndefinedTable:
        return 0
    row = await cur.fetchone()
    return int(row[0]) if row else 0
