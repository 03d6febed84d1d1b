"""Bulk-load mode: indexes dropped while a job loads, rebuilt at its end, across a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg
from aio_pika.abc import AbstractChannel

from tableinator import service
from tests.support.broker import declare, publish_pages
from tests.support.pipeline import finalised_events, tableinator_settings


async def indexes(pg: psycopg.AsyncConnection[Any], schema: str) -> set[str]:
    cur = await pg.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'replays'",
        (schema,),
    )
    return {name for (name,) in await cur.fetchall()}


async def rows(pg: psycopg.AsyncConnection[Any], schema: str) -> int:
    cur = await pg.execute(f'SELECT count(*) FROM "{schema}".replays')
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def page(start: int) -> list[dict[str, Any]]:
    return [{"id": f"k{i}", "format": "gen9ou", "uploadtime": i} for i in range(start, start + 50)]


async def consume_until(spec: Path, schema: str, done: Any) -> None:
    """Run a bulk-loading tableinator until ``done()`` is true, then stop it (a restart)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        service.run(tableinator_settings(spec, schema, bulk_load=True), stop)
    )
    try:
        async with asyncio.timeout(30):
            while not await done():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


async def test_indexes_dropped_during_the_job_and_rebuilt_at_its_end(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], amqp: AbstractChannel
) -> None:
    secondary = {"replays_format_idx", "replays_uploadtime_idx"}
    await declare(amqp, "tableinator", namespace)
    await publish_pages(amqp, namespace, [page(0)], job_id="bulk", end=False)

    async def first_page_landed() -> bool:
        return await rows(pg, namespace) == 50 if await indexes(pg, namespace) else False

    await consume_until(demo_spec_file, namespace, first_page_landed)
    assert await indexes(pg, namespace) == {"replays_pkey"}

    # A restarted consumer must not rebuild the indexes while the job is still loading.
    await publish_pages(amqp, namespace, [page(50)], job_id="bulk", end=False)

    async def second_page_landed() -> bool:
        return await rows(pg, namespace) == 100

    await consume_until(demo_spec_file, namespace, second_page_landed)
    assert await indexes(pg, namespace) == {"replays_pkey"}

    await publish_pages(amqp, namespace, [page(100)], job_id="bulk")  # then end-of-job
    stop = asyncio.Event()
    settings = tableinator_settings(demo_spec_file, namespace, bulk_load=True)
    async with finalised_events(namespace) as next_event:
        task = asyncio.create_task(service.run(settings, stop))
        event = await next_event()
        stop.set()
        await task
    assert event["landed"]["rows"] == 150
    assert await indexes(pg, namespace) == {"replays_pkey", *secondary}
    cur = await pg.execute(
        "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname = 'replays'",
        (namespace,),
    )
    assert await cur.fetchone() == (True,)
