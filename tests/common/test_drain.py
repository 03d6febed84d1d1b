"""SIGTERM while the store does not answer: the consumer stops within its drain timeout
instead of retrying for ever, and RabbitMQ redelivers what it held, so nothing is lost."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
from aio_pika.abc import AbstractChannel

from common.settings import PostgresSettings
from tableinator import service as tableinator_service
from tests.support.broker import declare, depth, publish_pages
from tests.support.pipeline import tableinator_settings
from tests.support.proxy import cuttable_proxy

PAGES, PER_PAGE, DRAIN_TIMEOUT = 40, 50, 2.0


def pages(first: int, last: int) -> list[list[dict[str, Any]]]:
    return [
        [
            {"id": f"p{p}-{i}", "format": "gen9ou", "uploadtime": p, "rating": i}
            for i in range(PER_PAGE)
        ]
        for p in range(first, last)
    ]


async def rows(pg: psycopg.AsyncConnection[Any], schema: str) -> int:
    try:
        cur = await pg.execute(f'SELECT count(DISTINCT key) FROM "{schema}".replays')
    except psycopg.errors.UndefinedTable:  # the consumer has not created it yet
        return 0
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_sigterm_with_the_store_away_stops_in_time_and_loses_nothing(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], amqp: AbstractChannel
) -> None:
    await declare(amqp, "tableinator", namespace)
    real = PostgresSettings()
    host, _, port = real.postgres_address.rpartition(":")
    settings = tableinator_settings(demo_spec_file, namespace)
    async with cuttable_proxy(host, int(port)) as proxy:
        proxied = settings.model_copy(
            update={
                "postgres": real.model_copy(
                    update={
                        "postgres_address": f"127.0.0.1:{proxy.port}",
                        "postgres_schema": namespace,
                    }
                ),
                "batch": settings.batch.model_copy(update={"drain_timeout": DRAIN_TIMEOUT}),
            }
        )
        stop = asyncio.Event()
        consumer = asyncio.create_task(tableinator_service.run(proxied, stop))
        await publish_pages(amqp, namespace, pages(0, PAGES // 2), end=False)
        async with asyncio.timeout(30):
            while await rows(pg, namespace) < PER_PAGE:  # it writes through the proxy
                await asyncio.sleep(0.05)
        proxy.cut()  # the store stops answering
        await publish_pages(amqp, namespace, pages(PAGES // 2, PAGES), end=False)
        await asyncio.sleep(1.0)  # the consumer holds pages it cannot write
        stopped_at = time.monotonic()
        stop.set()
        await asyncio.wait_for(consumer, DRAIN_TIMEOUT + 10)
        took = time.monotonic() - stopped_at
    assert took < DRAIN_TIMEOUT + 5
    landed = await rows(pg, namespace)
    assert landed < PAGES * PER_PAGE
    async with asyncio.timeout(10):  # the channel is closed: what it held is ready again
        while await depth(amqp, f"tableinator.{namespace}.replays") == 0:
            await asyncio.sleep(0.1)
    # The store is back: a consumer started again lands every record.
    stop = asyncio.Event()
    again = asyncio.create_task(tableinator_service.run(settings, stop))
    async with asyncio.timeout(30):
        while await rows(pg, namespace) < PAGES * PER_PAGE:
            await asyncio.sleep(0.1)
    stop.set()
    await again
    assert await rows(pg, namespace) == PAGES * PER_PAGE
