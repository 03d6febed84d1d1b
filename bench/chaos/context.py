"""What every run of the suite shares: direct connections to the servers, the demo API, the
lock on the single Neo4j database, and the cheap counts the monitor polls."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import subprocess
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import aiohttp
import psycopg
from neo4j import AsyncDriver, AsyncGraphDatabase
from psycopg import sql

from bench.chaos.processes import Service, base_env
from bench.chaos.stores import graph_keys
from bench.chaos.toxiproxy import free_port
from common.settings import AmqpSettings, Neo4jSettings, PostgresSettings
from common.spec import DatasetSpec

REPO = Path(__file__).resolve().parents[2]
# The lock tests/conftest.py's graph_lock takes: one user of the Neo4j database at a time.
GRAPH_LOCK = Path(tempfile.gettempdir()) / "backfill-tests-neo4j.lock"


@dataclass
class SuiteContext:
    """Direct (never proxied) access to the servers, for the runner's own reads."""

    workdir: Path
    records: int
    demo_url: str
    driver: AsyncDriver
    amqp_url: str
    conninfo: str

    async def pg(self) -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)

    async def queue_depth(self, name: str) -> int:
        """Messages ready in a queue (0 if it does not exist)."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                return 0
            return queue.declaration_result.message_count or 0

    async def store_counts(self, spec: DatasetSpec, schema: str) -> tuple[int, int, int]:
        """(rows, nodes, relationships) the run's stores hold now: count-store reads."""
        rows = 0
        async with await self.pg() as conn:
            for entity in spec.entities.values():
                if entity.table is None:
                    continue
                table = sql.Identifier(schema, entity.table.name)
                query = sql.SQL("SELECT count(*) FROM {}").format(table)
                with contextlib.suppress(psycopg.errors.UndefinedTable):
                    row = await (await conn.execute(query)).fetchone()
                    rows += row[0] if row else 0
        return (rows, *await self._graph_counts(spec))

    async def _graph_counts(self, spec: DatasetSpec) -> tuple[int, int]:
        types = {r.type for e in spec.entities.values() if e.graph for r in e.graph.relationships}
        nodes = rels = 0
        async with self.driver.session() as session:
            for label in graph_keys(spec):
                record = await (await session.run(f"MATCH (n:{label}) RETURN count(n)")).single()
                nodes += record[0] if record else 0
            for kind in types:
                query = f"MATCH ()-[r:{kind}]->() RETURN count(r)"
                record = await (await session.run(query)).single()
                rels += record[0] if record else 0
        return nodes, rels

    async def demo_requests(self) -> dict[str, int]:
        """The demo API's responses so far, by status (it counts every request)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.demo_url}/stats.json") as response,
        ):
            body = await response.json()
        return {status: int(count) for status, count in body["requests"].items()}


def start_services() -> None:
    """scripts/services.sh start and scripts/toxiproxy.sh start (both idempotent)."""
    for script in ("services.sh", "toxiproxy.sh"):
        subprocess.run([str(REPO / "scripts" / script), "start"], check=True, timeout=600)


@contextlib.asynccontextmanager
async def suite_context(workdir: Path, records: int) -> AsyncIterator[SuiteContext]:
    """The demo API as a process (so it counts requests apart from the runner) and clients."""
    port = free_port()
    api = Service("demo-api", "demoapi", base_env(), workdir / "demo-api.log")
    api.start(["--port", str(port), "--size", str(records)])
    url = f"http://127.0.0.1:{port}"
    neo4j = Neo4jSettings()
    driver = AsyncGraphDatabase.driver(neo4j.neo4j_address, auth=neo4j.auth)
    try:
        await _wait_healthy(url)
        yield SuiteContext(
            workdir, records, url, driver, AmqpSettings().url, PostgresSettings().conninfo
        )
    finally:
        await driver.close()
        await api.terminate(10)


async def _wait_healthy(url: str) -> None:
    async with asyncio.timeout(30), aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"{url}/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def graph_lock() -> AsyncIterator[None]:
    """Exclusive use of the Neo4j database, shared with the tests' graph_lock (a file lock:
    a test session or benchmark holding it is waited for, in a thread)."""
    with GRAPH_LOCK.open("a") as handle:
        await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
