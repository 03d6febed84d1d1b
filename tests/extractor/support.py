"""Helpers for the extractor's job tests: settings, subprocesses, the ledger, the table."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psycopg
import yaml
from aiohttp import web

from common.settings import AmqpSettings, DatasetSettings, ExtractorSettings
from tableinator import service as tableinator_service
from tests.support.pipeline import tableinator_settings

LEASE_SECONDS = 2.0


def work_queue(namespace: str) -> str:
    return f"extractor.work.{namespace}"


def extractor_settings(spec: Path, url: str, namespace: str, **extra: Any) -> ExtractorSettings:
    """In-process settings: this test's ledger schema and work queue, tableinator only."""
    return ExtractorSettings(
        dataset=DatasetSettings(dataset_spec=str(spec)),
        amqp=AmqpSettings(amqp_consumers="tableinator"),
        extractor_source_url=url,
        extractor_ledger_schema=namespace,
        extractor_lease_seconds=LEASE_SECONDS,
        **extra,
    )


def extractor_env(spec: Path, url: str, namespace: str, **extra: str) -> dict[str, str]:
    """The same settings for a subprocess."""
    env = dict(
        os.environ,
        DATASET_SPEC=str(spec),
        AMQP_CONSUMERS="tableinator",
        EXTRACTOR_SOURCE_URL=url,
        EXTRACTOR_LEDGER_SCHEMA=namespace,
        EXTRACTOR_LEASE_SECONDS=str(LEASE_SECONDS),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def set_rate_limit(spec: Path, initial: float, maximum: float) -> None:
    raw = yaml.safe_load(spec.read_text())
    raw["source"]["rate_limit"] = {"initial": initial, "maximum": maximum}
    spec.write_text(yaml.safe_dump(raw))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def extractor_process(
    args: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m extractor ARGS`` in the background; killed at the end if still alive."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extractor", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)


async def wait_exit(process: subprocess.Popen[bytes], seconds: float) -> int:
    async with asyncio.timeout(seconds):
        while process.poll() is None:
            await asyncio.sleep(0.1)
    return process.returncode


@asynccontextmanager
async def running_tableinator(spec: Path, schema: str) -> AsyncIterator[None]:
    """tableinator consuming in this process until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(tableinator_service.run(tableinator_settings(spec, schema), stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def ledger_row(
    pg: psycopg.AsyncConnection[Any], namespace: str, query: str, *params: Any
) -> tuple[Any, ...]:
    """One row of a query over this test's ledger (``{s}`` is the schema)."""
    cur = await pg.execute(query.replace("{s}", f'"{namespace}"'), params)
    row = await cur.fetchone()
    assert row is not None
    return tuple(row)


async def wait_for(
    pg: psycopg.AsyncConnection[Any], namespace: str, query: str, *params: Any, seconds: float
) -> tuple[Any, ...]:
    """Poll the ledger until the query's first column is true."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                row = await ledger_row(pg, namespace, query, *params)
            except psycopg.errors.UndefinedTable:
                row = (False,)
            if row[0]:
                return row
            await asyncio.sleep(0.1)


async def table_counts(pg: psycopg.AsyncConnection[Any], namespace: str) -> tuple[int, int]:
    cur = await pg.execute(f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".replays')
    row = await cur.fetchone()
    assert row is not None
    return row[0], row[1]


async def wait_for_rows(
    pg: psycopg.AsyncConnection[Any], namespace: str, count: int, seconds: float = 30.0
) -> tuple[int, int]:
    """The table's row count once it reaches ``count`` (or whatever it is at the deadline)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        counts = await table_counts(pg, namespace)
        if counts[0] >= count or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.2)


async def demo_stats(url: str) -> dict[str, int]:
    """The demo API's responses by status."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/stats.json") as response:
        body = await response.json()
    return {status: int(count) for status, count in body["requests"].items()}


async def delete_queue(name: str) -> None:
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


@asynccontextmanager
async def without_quota_headers(upstream: str) -> AsyncIterator[str]:
    """A proxy to ``upstream`` that drops RateLimit-* headers: only 429 + Retry-After remain."""

    async def forward(request: web.Request) -> web.Response:
        async with session.get(upstream + request.path_qs) as response:
            body = await response.read()
            headers = {
                name: value
                for name, value in response.headers.items()
                if name.lower() in ("content-type", "retry-after")
            }
            return web.Response(body=body, status=response.status, headers=headers)

    async with aiohttp.ClientSession() as session, serving(forward) as url:
        yield url


@asynccontextmanager
async def serving(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A source on 127.0.0.1 answering every GET with ``handler``; its base URL."""
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
