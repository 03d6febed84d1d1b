"""Fixtures for tests against the real RabbitMQ, PostgreSQL and Neo4j.

Addresses come from the same environment variables the services read (defaults:
127.0.0.1). ``scripts/test.sh`` starts the services on this machine first. Where a Docker
engine is present and BACKFILL_TESTCONTAINERS=1, the services are started with
testcontainers instead and the environment is pointed at them.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import pytest
import yaml
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.settings import AmqpSettings, Neo4jSettings, PostgresSettings
from common.spec import BUNDLED_DIR
from tests.support import containers


@pytest.fixture(scope="session", autouse=True)
def service_addresses() -> Iterator[None]:
    """Point the environment at testcontainers when asked to, else at 127.0.0.1."""
    if os.environ.get("BACKFILL_TESTCONTAINERS") == "1":
        with containers.started() as env:
            os.environ.update(env)
            yield
    else:
        yield


@pytest.fixture
def namespace() -> str:
    """A name no other test uses: the dataset name, the PostgreSQL schema, queue names."""
    return "t" + secrets.token_hex(5)


@pytest.fixture
def demo_spec_file(tmp_path: Path, namespace: str) -> Path:
    """The bundled demo spec, renamed to this test's namespace."""
    raw = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
    raw["name"] = namespace
    path = tmp_path / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
async def pg(namespace: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection; the test's schema is dropped afterwards."""
    settings = PostgresSettings()
    async with await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True) as conn:
        yield conn
    # A fresh connection: the test may have restarted PostgreSQL under the first one.
    async with await psycopg.AsyncConnection.connect(settings.conninfo, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')


@contextmanager
def graph_turn() -> Iterator[None]:
    """Neo4j Community has one database: test sessions on one machine take turns with it.

    An exclusive lock on a file shared by every checkout, held for the whole test (or
    module), so a second pytest run (another clone, a benchmark) waits instead of wiping
    this one's graph.
    """
    path = Path(tempfile.gettempdir()) / "backfill-tests-neo4j.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture
def graph_lock() -> Iterator[None]:
    with graph_turn():
        yield


@pytest.fixture
async def neo4j_driver(graph_lock: None) -> AsyncIterator[AsyncDriver]:
    """A driver on an empty graph, this test's alone while it runs (see graph_lock)."""
    driver = graph_driver()
    await wipe_graph(driver)
    yield driver
    await driver.close()


def graph_driver() -> AsyncDriver:
    settings = Neo4jSettings()
    return AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth)


async def wipe_graph(driver: AsyncDriver) -> None:
    async with driver.session() as session:
        result = await session.run(
            "MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 1000 ROWS"
        )
        await result.consume()


@pytest.fixture
async def amqp(namespace: str) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    """A channel with confirms; the test's queues are deleted afterwards."""
    connection = await aio_pika.connect(AmqpSettings().url)
    channel = await connection.channel(publisher_confirms=True)
    yield channel
    await delete_namespace_queues(namespace)
    await connection.close()


async def delete_namespace_queues(namespace: str) -> None:
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        names = [f"extractor.work.{namespace}"] + [
            f"{consumer}.{namespace}.replays{suffix}"
            for consumer in ("tableinator", "graphinator")
            for suffix in ("", ".dlq")
        ]
        for name in names:
            channel = await connection.channel()
            await channel.queue_delete(name)


@pytest.fixture
def stop_event() -> asyncio.Event:
    return asyncio.Event()
