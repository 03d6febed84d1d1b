"""What every tableinator measurement shares: settings, a publishing channel, namespaces.

Each measurement gets its own namespace: a dataset name that is also its PostgreSQL schema
and names its queues, so tables start empty and nothing is shared with other runs (tests or
a CI job may use the same services at the same time). ``cleanup`` drops both.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml
from aio_pika.abc import AbstractChannel, AbstractExchange
from psycopg import sql

from bench.broker import delete_queues
from common.settings import AmqpSettings, PostgresSettings
from common.topology import Topology

ENTITY = "replays"
CONSUMER = "tableinator"
CLEANUP_SECONDS = 30


def bench_spec(name: str) -> dict[str, Any]:
    """The demo spec's replays table (typed columns and indexes), under a unique name."""
    return {
        "name": name,
        "description": "tableinator benchmark dataset (records are published by the bench)",
        "source": {
            "kind": "http",
            "base_url": "http://127.0.0.1:8899",
            "slicing": {"kind": "none"},
        },
        "entities": {
            ENTITY: {
                "path": "/search.json",
                "paginator": {"kind": "before_timestamp", "field": "uploadtime"},
                "key": "id",
                "table": {
                    "name": ENTITY,
                    "columns": {
                        "format": {"field": "format"},
                        "uploadtime": {"field": "uploadtime", "type": "bigint"},
                        "rating": {"field": "rating", "type": "integer"},
                        "winner": {"field": "winner"},
                    },
                    "indexes": ["format", "uploadtime"],
                },
            }
        },
    }


@dataclass(frozen=True)
class Namespace:
    """One measurement's dataset name (= schema name), its spec file and its queues."""

    name: str
    spec_path: Path

    @property
    def queue(self) -> str:
        return Topology.queue_name(CONSUMER, self.name, ENTITY)

    @property
    def queues(self) -> list[str]:
        return [
            self.queue,
            Topology.dead_letter_queue_name(CONSUMER, self.name, ENTITY),
            self.baseline_queue,
        ]

    @property
    def baseline_queue(self) -> str:
        return f"bench.{self.name}.one_record_per_message"

    @property
    def table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.name), sql.Identifier(ENTITY))


@dataclass
class BenchContext:
    """Settings and the publishing channel shared by every measurement of a run."""

    amqp: AmqpSettings
    postgres: PostgresSettings
    channel: AbstractChannel
    exchange: AbstractExchange
    topology: Topology
    workdir: Path
    timeout: float
    rabbitmq_version: str = "?"

    def namespace(self) -> Namespace:
        name = "bench_" + secrets.token_hex(4)
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(bench_spec(name), sort_keys=False))
        return Namespace(name, path)

    @asynccontextmanager
    async def pg(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """An autocommit connection for the bench's own queries."""
        async with await psycopg.AsyncConnection.connect(
            self.postgres.conninfo, autocommit=True
        ) as conn:
            yield conn

    async def scalar(self, query: sql.Composed | str, params: Any = None) -> Any:
        async with self.pg() as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        return row[0] if row else None

    async def cleanup(self, ns: Namespace) -> None:
        """Delete the namespace's queues and drop its schema.

        Tests running beside the benchmark may restart PostgreSQL: the drop is retried for
        up to ``CLEANUP_SECONDS`` so a measurement that failed leaves nothing behind.
        """
        await delete_queues(self.channel, ns.queues)
        ns.spec_path.unlink(missing_ok=True)
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(ns.name))
        for attempt in range(CLEANUP_SECONDS):
            try:
                async with self.pg() as conn:
                    await conn.execute(drop)
                return
            except psycopg.OperationalError:
                if attempt == CLEANUP_SECONDS - 1:
                    raise
                await asyncio.sleep(1)
