"""tableinator under kill -9, a PostgreSQL restart and SIGTERM: nothing lost, nothing doubled."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aio_pika.abc import AbstractChannel

from common.records import content_hash
from common.settings import PostgresSettings
from common.topology import Topology
from tests.support.broker import declare, depth, publish_pages
from tests.support.pipeline import finalised_events
from tests.support.processes import restart_service, running, service_env

PAGES, PER_PAGE = 200, 100


def pages() -> list[list[dict[str, Any]]]:
    return [
        [
            {
                "id": f"p{p}-{i}",
                "format": "gen9ou",
                "uploadtime": p * 1000 + i,
                "rating": i,
                "note": "x" * 200,
            }
            for i in range(PER_PAGE)
        ]
        for p in range(PAGES)
    ]


async def assert_exact(pg: psycopg.AsyncConnection[Any], schema: str) -> None:
    expected = {r["id"]: content_hash(r) for page in pages() for r in page}
    cur = await pg.execute(f'SELECT key, content_hash FROM "{schema}".replays')
    landed = {key: bytes(digest) for key, digest in await cur.fetchall()}
    assert landed == expected


async def count(pg: psycopg.AsyncConnection[Any], schema: str) -> int:
    try:
        cur = await pg.execute(f'SELECT count(*) FROM "{schema}".replays')
    except psycopg.errors.UndefinedTable:
        return 0
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def test_kill_9_mid_batch_then_restart_loses_nothing(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    tmp_path: Path,
) -> None:
    await declare(amqp, "tableinator", namespace)
    await publish_pages(amqp, namespace, pages())
    env = service_env(demo_spec_file, namespace, POSTGRES_BATCH_SIZE="500", POSTGRES_PREFETCH="20")
    kills = 0
    for _ in range(3):  # kill -9 as soon as some, but not all, rows have landed
        with running("tableinator", env, tmp_path / "t.log") as process:
            target = await count(pg, namespace) + 2_000
            async with asyncio.timeout(30):
                while await count(pg, namespace) < min(target, PAGES * PER_PAGE - 1):
                    await asyncio.sleep(0.02)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)
            kills += 1
    assert await count(pg, namespace) < PAGES * PER_PAGE
    async with finalised_events(namespace) as next_event:
        with running("tableinator", env, tmp_path / "t.log"):
            event = await next_event(60)
    assert event["landed"]["rows"] == PAGES * PER_PAGE
    assert kills == 3
    await assert_exact(pg, namespace)


@pytest.mark.skipif(
    os.environ.get("BACKFILL_TESTCONTAINERS") == "1", reason="restarts the local PostgreSQL"
)
async def test_postgres_restart_mid_run(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    tmp_path: Path,
) -> None:
    await declare(amqp, "tableinator", namespace)
    env = service_env(demo_spec_file, namespace, POSTGRES_BATCH_SIZE="500", POSTGRES_PREFETCH="10")
    async with finalised_events(namespace) as next_event:
        with running("tableinator", env, tmp_path / "t.log") as process:
            # Pages keep coming for 10 s, so there are writes to make while PostgreSQL is
            # down (all at once, they could all be written before the restart began).
            publishing = asyncio.create_task(publish_pages(amqp, namespace, pages(), pace=0.05))
            async with asyncio.timeout(30):
                while await count(pg, namespace) < 2_000:
                    await asyncio.sleep(0.02)
            await asyncio.to_thread(restart_service, "postgres")
            await publishing
            event = await next_event(90)
            assert process.poll() is None, "the consumer must survive the outage"
    log = (tmp_path / "t.log").read_text()
    assert "retrying" in log
    conninfo = PostgresSettings().conninfo
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as fresh:
        await assert_exact(fresh, namespace)
    assert event["landed"]["rows"] == PAGES * PER_PAGE
    dlq = Topology.dead_letter_queue_name("tableinator", namespace, "replays")
    assert await depth(amqp, dlq) == 0, "an outage must never dead-letter good data"


async def test_sigterm_drains_and_exits_0(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    tmp_path: Path,
) -> None:
    await declare(amqp, "tableinator", namespace)
    await publish_pages(amqp, namespace, pages()[:10], end=False)
    # A batch far larger than the queue and a long interval: records wait in memory.
    env = service_env(
        demo_spec_file,
        namespace,
        POSTGRES_BATCH_SIZE="100000",
        POSTGRES_BATCH_FLUSH_INTERVAL="600",
        POSTGRES_MAX_PENDING="100000",
    )
    queue = Topology.queue_name("tableinator", namespace, "replays")
    with running("tableinator", env, tmp_path / "t.log") as process:
        async with asyncio.timeout(30):
            while await depth(amqp, queue) > 0 or await count_table(pg, namespace) is None:
                await asyncio.sleep(0.05)
        assert await count(pg, namespace) == 0  # held, not yet flushed
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert await count(pg, namespace) == 10 * PER_PAGE
    await asyncio.sleep(0.5)
    assert await depth(amqp, queue) == 0  # every message was acked, none requeued


async def count_table(pg: psycopg.AsyncConnection[Any], schema: str) -> int | None:
    cur = await pg.execute("SELECT to_regclass(%s)", (f'"{schema}".replays',))
    row = await cur.fetchone()
    return None if row is None or row[0] is None else 1
