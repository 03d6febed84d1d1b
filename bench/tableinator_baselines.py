"""What tableinator is compared with: our users' "before", and PostgreSQL's own ceiling.

Baselines are built as a careful user would build them, not weakened: one psycopg 3
connection reused for the whole run (statements prepared after five executions, psycopg's
default), orjson for JSON, aio-pika with ack after commit, the same table and indexes as
tableinator's. Every record is its own persistent message on a durable queue, published
before the consumer starts; publishing is not timed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson
import psycopg
from aio_pika.abc import AbstractIncomingMessage
from psycopg import sql
from psycopg.types.json import Jsonb

from bench.context import BenchContext, Namespace
from bench.harness.consumer import publish_one_per_message
from bench.harness.measure import Measurement, Stopwatch, sampling_rss
from bench.records import BenchRecords
from common.amqp import robust_channel
from common.records import content_hash
from common.spec import load_spec
from tableinator.sink import prepare_database

# Each baseline stops after this long and reports the records it committed by then.
BASELINE_LIMIT_SECONDS = 60.0
EXECUTEMANY_BATCH = 50
EXECUTEMANY_FLUSH_SECONDS = 1.0

TYPED_COLUMNS = ("format", "uploadtime", "rating", "winner")


def upsert_one(ns: Namespace) -> sql.Composed:
    """The users' upsert: one row, every column replaced on conflict."""
    columns = ("key", "content_hash", "doc", *TYPED_COLUMNS)
    return sql.SQL(
        "INSERT INTO {table} ({columns}, updated_at) VALUES ({values}, now())"
        " ON CONFLICT (key) DO UPDATE SET {updates}"
    ).format(
        table=ns.table,
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        values=sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        updates=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
            for name in (*columns[1:], "updated_at")
        ),
    )


def row_params(body: bytes) -> tuple[Any, ...]:
    """A message's record as upsert parameters (typed columns picked in Python)."""
    record = orjson.loads(body)
    return (
        record["id"],
        content_hash(record),
        Jsonb(record, orjson.dumps),
        *(record.get(name) for name in TYPED_COLUMNS),
    )


async def _prepare_table(ctx: BenchContext, ns: Namespace) -> None:
    async with await psycopg.AsyncConnection.connect(ctx.postgres.conninfo) as conn:
        await prepare_database(conn, load_spec(ns.spec_path), ns.name)


async def per_message_upsert(
    ctx: BenchContext, ns: Namespace, records: BenchRecords, limit: float = BASELINE_LIMIT_SECONDS
) -> Measurement:
    """Baseline (a): prefetch 1; per message one INSERT .. ON CONFLICT, commit, then ack."""
    await _prepare_table(ctx, ns)
    publish_seconds = await publish_one_per_message(ctx, ns.baseline_queue, records)
    async with await psycopg.AsyncConnection.connect(ctx.postgres.conninfo) as conn:
        query = upsert_one(ns)

        async def handle(batch: list[AbstractIncomingMessage]) -> None:
            await conn.execute(query, row_params(batch[0].body))
            await conn.commit()
            await batch[0].ack()

        measurement = await _consume(
            ctx,
            ns,
            records.count,
            prefetch=1,
            batch_size=1,
            handle=handle,
            limit=limit,
            name="baseline_per_message",
            label="(a) upsert+commit per message",
        )
    measurement.details["publish_seconds"] = round(publish_seconds, 3)
    return measurement


async def executemany_upsert(
    ctx: BenchContext, ns: Namespace, records: BenchRecords, limit: float = BASELINE_LIMIT_SECONDS
) -> Measurement:
    """Baseline (b): prefetch 50; 50 messages' records by executemany, commit, then ack each.

    Prefetch 1 cannot gather 50 records with ack-after-commit (the broker sends no second
    message until the first is acked), so the prefetch is the batch size.
    """
    await _prepare_table(ctx, ns)
    publish_seconds = await publish_one_per_message(ctx, ns.baseline_queue, records)
    async with await psycopg.AsyncConnection.connect(ctx.postgres.conninfo) as conn:
        query = upsert_one(ns)

        async def handle(batch: list[AbstractIncomingMessage]) -> None:
            async with conn.cursor() as cur:
                await cur.executemany(query, [row_params(m.body) for m in batch])
            await conn.commit()
            for message in batch:
                await message.ack()

        measurement = await _consume(
            ctx,
            ns,
            records.count,
            prefetch=EXECUTEMANY_BATCH,
            batch_size=EXECUTEMANY_BATCH,
            handle=handle,
            limit=limit,
            name="baseline_executemany",
            label=f"(b) executemany {EXECUTEMANY_BATCH} per commit",
        )
    measurement.details["publish_seconds"] = round(publish_seconds, 3)
    return measurement


async def _consume(
    ctx: BenchContext,
    ns: Namespace,
    total: int,
    *,
    prefetch: int,
    batch_size: int,
    handle: Callable[[list[AbstractIncomingMessage]], Awaitable[None]],
    limit: float,
    name: str,
    label: str,
) -> Measurement:
    """Deliver messages in batches of ``batch_size`` (a partial one after the flush interval)
    to ``handle`` until ``total`` are done or ``limit`` seconds have passed."""
    deliveries: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    async with (
        robust_channel(ctx.amqp.url, prefetch=prefetch, name="bench-baseline") as (_, channel),
        sampling_rss() as rss,
    ):
        queue = await channel.get_queue(ns.baseline_queue)
        watch = Stopwatch()
        tag = await queue.consume(deliveries.put)
        done = 0
        batch: list[AbstractIncomingMessage] = []
        while done < total and watch.elapsed() < limit:
            message: AbstractIncomingMessage | None = None
            try:
                wait = EXECUTEMANY_FLUSH_SECONDS if batch else ctx.timeout
                message = await asyncio.wait_for(deliveries.get(), wait)
                batch.append(message)
            except TimeoutError:
                if not batch:
                    raise
            if message is None or len(batch) >= batch_size or done + len(batch) >= total:
                await handle(batch)
                done += len(batch)
                batch = []
        seconds = watch.elapsed()
        await queue.cancel(tag)
    return Measurement(
        name=name,
        label=label,
        records=done,
        seconds=seconds,
        peak_rss_mib=round(rss.peak, 1),
        details={"prefetch": prefetch, "batch_size": batch_size, "limit_seconds": limit},
    )


async def plain_copy(
    ctx: BenchContext, ns: Namespace, records: BenchRecords, *, primary_key: bool
) -> Measurement:
    """The ceiling: one binary COPY of the same (key, hash, doc) rows into an empty, logged
    table, committed once. Rows are built before the clock starts."""
    # bytes(memoryview(..)) trims orjson's over-allocated buffer (4 KiB per document).
    rows = [
        (record["id"], content_hash(record), bytes(memoryview(orjson.dumps(record))))
        for record in records.records()
    ]
    table = sql.Identifier(ns.name, "ceiling_pk" if primary_key else "ceiling")
    key = sql.SQL("key text PRIMARY KEY" if primary_key else "key text")
    async with await psycopg.AsyncConnection.connect(ctx.postgres.conninfo) as conn:
        await conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(ns.name))
        )
        await conn.execute(
            sql.SQL("CREATE TABLE {} ({}, content_hash bytea NOT NULL, doc jsonb NOT NULL)").format(
                table, key
            )
        )
        await conn.commit()
        async with sampling_rss() as rss:
            watch = Stopwatch()
            await _copy_rows(conn, table, rows)
            await conn.commit()
            seconds = watch.elapsed()
    return Measurement(
        name="ceiling_copy_pk" if primary_key else "ceiling_copy",
        label="COPY, primary key" if primary_key else "ceiling: plain COPY",
        records=len(rows),
        seconds=seconds,
        peak_rss_mib=round(rss.peak, 1),
        details={"table": "logged", "primary_key": primary_key, "format": "binary"},
    )


async def _copy_rows(
    conn: psycopg.AsyncConnection[Any],
    table: sql.Identifier,
    rows: Iterable[tuple[str, bytes, bytes]],
) -> None:
    statement = sql.SQL("COPY {} (key, content_hash, doc) FROM STDIN (FORMAT BINARY)")
    async with conn.cursor() as cur, cur.copy(statement.format(table)) as copy:
        copy.set_types(["text", "bytea", "jsonb"])
        for key, digest, doc in rows:
            await copy.write_row((key, digest, Jsonb(doc, _already_json)))


def _already_json(doc: bytes) -> bytes:
    return doc
