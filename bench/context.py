"""What every tableinator measurement shares: settings, a publishing channel, namespaces.

Each measurement gets its own namespace: a dataset name that is also its PostgreSQL schema
and names its queues, so tables start empty and nothing is shared with other runs (tests or
a CI job may use the same services at the same time). ``cleanup`` drops both.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
import yaml
from psycopg import sql

from bench.harness.broker import delete_queues
from bench.harness.consumer import ENTITY, ConsumerNamespace
from bench.harness.context import BrokerContext, retrying
from bench.harness.spec import replay_spec
from common.settings import PostgresSettings

CONSUMER = "tableinator"
CLEANUP_SECONDS = 30


def bench_spec(name: str) -> dict[str, Any]:
    """The demo spec's replays table (typed columns and indexes), under a unique name."""
    table = {
        "name": ENTITY,
        "columns": {
            "format": {"field": "format"},
            "uploadtime": {"field": "uploadtime", "type": "bigint"},
            "rating": {"field": "rating", "type": "integer"},
            "winner": {"field": "winner"},
        },
        "indexes": ["format", "uploadtime"],
    }
    description = "tableinator benchmark dataset (records are published by the bench)"
    return replay_spec(name, description, {"table": table})


@dataclass(frozen=True)
class Namespace(ConsumerNamespace):
    """One measurement's dataset name (= schema name), its spec file and its queues."""

    consumer: ClassVar[str] = CONSUMER

    @property
    def table(self) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.name), sql.Identifier(ENTITY))


@dataclass(kw_only=True)
class BenchContext(BrokerContext):
    """The shared context with PostgreSQL's settings."""

    postgres: PostgresSettings

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

    async def execute(self, query: sql.Composed) -> None:
        async with self.pg() as conn:
            await conn.execute(query)

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
        await retrying(lambda: self.execute(drop), (psycopg.OperationalError,), CLEANUP_SECONDS)
