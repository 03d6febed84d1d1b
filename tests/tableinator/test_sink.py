"""The PostgreSQL write path through the real batch processor, broker and database."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aio_pika.abc import AbstractChannel

from common.topology import Topology
from tableinator import service
from tests.support.broker import declare, get_all, publish_pages
from tests.support.pipeline import finalised_events, tableinator_settings

NASTY = [
    'O\'Brien "quoted"',
    "tab\there",
    "new\nline\r\ncrlf",
    "back\\slash \\u0000 literal",
    "Pokémon Ñandú 東京 🎮",
    "comma, semicolon; pipe|",
    "\\N",
    "",
    "trailing\\",
]


def replay(key: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": key,
        "format": "gen9ou",
        "uploadtime": 1_700_000_000,
        "rating": 1500,
        "players": [],
        **fields,
    }


async def run_until_finalised(spec: Path, schema: str, **batch: Any) -> None:
    """Run tableinator until it finalises the job at the end of the queue, then stop it."""
    stop = asyncio.Event()
    settings = tableinator_settings(spec, schema, **batch)
    async with finalised_events(schema) as next_event:
        task = asyncio.create_task(service.run(settings, stop))
        try:
            await next_event()
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


async def rows(pg: psycopg.AsyncConnection[Any], schema: str) -> dict[str, Any]:
    cur = await pg.execute(f'SELECT key, doc, format, uploadtime, rating FROM "{schema}".replays')
    return {key: (doc, fmt, ts, rating) for key, doc, fmt, ts, rating in await cur.fetchall()}


async def landed(pg: psycopg.AsyncConnection[Any], schema: str) -> int:
    """Rows in the replays table, 0 while tableinator has not created it yet."""
    try:
        return len(await rows(pg, schema))
    except psycopg.errors.UndefinedTable:
        await pg.rollback()
        return 0


FORMATS = pytest.mark.parametrize("keyed_by", ["id", None], ids=["keyed", "v1"])


@FORMATS
async def test_duplicates_nasty_text_and_bad_records(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    keyed_by: str | None,
) -> None:
    await declare(amqp, "tableinator", namespace)
    first = [
        replay("dup", rating=1),
        *(replay(f"n{i}", winner=text) for i, text in enumerate(NASTY)),
    ]
    second = [
        replay("dup", rating=2),  # same key again: the last one wins
        {"format": "gen9ou"},  # no key
        replay("nul", winner="a\x00b"),  # PostgreSQL cannot store U+0000
        replay("badcast", uploadtime="yesterday"),  # typed column bigint cannot cast
        replay("ok"),
        replay("key\twith\\N\nodd\r\\"),  # a key COPY text must escape
    ]
    await publish_pages(amqp, namespace, [first, second], keyed_by=keyed_by)
    await run_until_finalised(demo_spec_file, namespace)

    landed = await rows(pg, namespace)
    odd_key = "key\twith\\N\nodd\r\\"
    assert set(landed) == {"dup", "ok", odd_key, *(f"n{i}" for i in range(len(NASTY)))}
    assert landed[odd_key][0]["id"] == odd_key
    assert landed["dup"][3] == 2
    for i, text in enumerate(NASTY):
        doc, fmt, ts, _ = landed[f"n{i}"]
        assert doc["winner"] == text
        assert (fmt, ts) == ("gen9ou", 1_700_000_000)
    dead = await get_all(
        amqp, Topology.dead_letter_queue_name("tableinator", namespace, "replays"), 3
    )
    reasons = {m.headers["x-error-code"]: m for m in dead}
    assert set(reasons) == {"bad_key", "nul_character", "rejected_by_store"}
    assert "U+0000" in str(reasons["nul_character"].headers["x-reason"])
    assert "bigint" in str(reasons["rejected_by_store"].headers["x-reason"])
    assert orjson.loads(reasons["rejected_by_store"].body)["record"]["id"] == "badcast"


@FORMATS
async def test_unchanged_records_are_not_rewritten(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    keyed_by: str | None,
) -> None:
    await declare(amqp, "tableinator", namespace)
    page = [replay(f"k{i}", rating=i) for i in range(50)]
    await publish_pages(amqp, namespace, [page], job_id="one")
    await run_until_finalised(demo_spec_file, namespace)
    cur = await pg.execute(f'SELECT key, updated_at, xmin::text FROM "{namespace}".replays')
    before = {row[0]: row[1:] for row in await cur.fetchall()}

    changed = [dict(r, rating=-1) if i % 10 == 0 else r for i, r in enumerate(page)]
    # stored from a version-1 page, re-run as keyed: the same record has the same hash
    await publish_pages(amqp, namespace, [changed], job_id="two", keyed_by=keyed_by)
    await run_until_finalised(demo_spec_file, namespace)
    cur = await pg.execute(f'SELECT key, updated_at, xmin::text FROM "{namespace}".replays')
    after = {row[0]: row[1:] for row in await cur.fetchall()}

    rewritten = {key for key in before if before[key] != after[key]}
    assert rewritten == {f"k{i}" for i in range(0, 50, 10)}


async def test_a_batch_larger_than_the_prefetch_is_not_waited_for(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], amqp: AbstractChannel
) -> None:
    """Prefetch 3 pages of 100 can never fill a batch of 10,000: once the broker stops
    delivering, the consumer writes what it holds instead of waiting out the interval."""
    await declare(amqp, "tableinator", namespace)
    # Three rounds of three pages: each round stops the deliveries. No end-of-job message,
    # which would flush what is held.
    pages = [[replay(f"p{p}-{i}") for i in range(100)] for p in range(9)]
    await publish_pages(amqp, namespace, pages, end=False)
    stop = asyncio.Event()
    settings = tableinator_settings(
        demo_spec_file, namespace, batch_size=10_000, prefetch=3, batch_flush_interval=120
    )
    task = asyncio.create_task(service.run(settings, stop))
    try:
        async with asyncio.timeout(30):  # waiting out the interval: 120 s a batch
            while await landed(pg, namespace) < 900:
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
