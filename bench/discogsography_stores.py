"""The two stores of the discogsography-style baseline, as discogsography writes them: its
constants (compose file), the PostgreSQL tables (key, hash, jsonb document; hashes read
first, unchanged rows touched, the rest upserted with executemany) and the Neo4j batch (a
hash lookup, then one managed transaction of UNWIND MERGEs per label and relationship
type), and their creation and removal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aio_pika
import orjson
import psycopg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench.graphinator_baselines import merge_target
from common.records import PreparedRecord
from common.settings import AmqpSettings, Neo4jSettings, PostgresSettings
from common.spec import DatasetSpec, EntitySpec, GraphSpec, RelationshipSpec
from graphinator.cypher import constraint_statements, ident, node_keys
from graphinator.rows import node_row, relationship_rows

log = logging.getLogger(__name__)

# discogsography's docker-compose.yml: *_BATCH_SIZE "500", *_BATCH_FLUSH_INTERVAL "2.0";
# its consumers set prefetch max(200, BATCH_SIZE * 2).
BATCH_SIZE = 500
PREFETCH = max(200, BATCH_SIZE * 2)
FLUSH_INTERVAL = 2.0
# tableinator's BatchConfig.max_concurrent_flushes; its pool holds up to 50 connections.
POSTGRES_CONCURRENT_FLUSHES = 2
POSTGRES_POOL_MAX = 50
QUEUE_ARGUMENTS: dict[str, Any] = {"x-queue-type": "quorum", "x-delivery-limit": 20}
FILE_COMPLETE = "file_complete"
# Records read from the source at once, in a thread, while the previous page is published.
READ_PAGE = 500
CONSUMER_START_SECONDS = 60.0
DELETE_CHUNK = 1000
Store = Literal["postgres", "neo4j"]
CONSUMERS: dict[Store, str] = {"postgres": "tableinator", "neo4j": "graphinator"}

Records = Iterable[tuple[str, dict[str, Any]]]


def exchange_name(namespace: str, entity: str) -> str:
    return f"dg.{namespace}.{entity}"


def queue_name(namespace: str, store: Store, entity: str) -> str:
    return f"dg.{namespace}.{CONSUMERS[store]}.{entity}"


def store_entities(spec: DatasetSpec, store: Store) -> list[str]:
    """The entities a consumer takes: those with a table (postgres) or a graph (neo4j)."""
    if store == "postgres":
        return [name for name, entity in spec.entities.items() if entity.table is not None]
    return [name for name, entity in spec.entities.items() if entity.graph is not None]


@dataclass(frozen=True)
class Pending:
    """A record waiting in a batch, and its message to ack after the commit."""

    key: str | int
    sha256: str
    record: dict[str, Any]
    message: AbstractIncomingMessage


class Sink(Protocol):
    """Writes one batch of an entity in one transaction."""

    async def write(self, entity: str, batch: list[Pending]) -> None: ...


class PostgresSink:
    """tableinator's batch: read stored hashes, touch the unchanged, upsert the rest."""

    def __init__(self, pool: AsyncConnectionPool, spec: DatasetSpec, namespace: str) -> None:
        self.pool = pool
        self.tables = {
            name: sql.Identifier(namespace, entity.table.name)
            for name, entity in spec.entities.items()
            if entity.table is not None
        }
        self.flushes = asyncio.Semaphore(POSTGRES_CONCURRENT_FLUSHES)

    async def write(self, entity: str, batch: list[Pending]) -> None:
        table = self.tables[entity]
        ids = [str(item.key) for item in batch]
        async with self.flushes, self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(
                sql.SQL("SELECT data_id, hash FROM {} WHERE data_id = ANY(%s)").format(table),
                (ids,),
            )
            stored: dict[str, str] = dict(await cur.fetchall())
            unchanged = [str(p.key) for p in batch if stored.get(str(p.key)) == p.sha256]
            changed = [p for p in batch if stored.get(str(p.key)) != p.sha256]
            if unchanged:
                await cur.execute(
                    sql.SQL("UPDATE {} SET updated_at = now() WHERE data_id = ANY(%s)").format(
                        table
                    ),
                    (unchanged,),
                )
            if changed:
                await cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (hash, data_id, data, updated_at)"
                        " VALUES (%s, %s, %s, now()) ON CONFLICT (data_id) DO UPDATE"
                        " SET hash = EXCLUDED.hash, data = EXCLUDED.data, updated_at = now()"
                    ).format(table),
                    [(p.sha256, str(p.key), Jsonb(p.record, orjson.dumps)) for p in changed],
                )


@dataclass(frozen=True)
class GraphStatements:
    """graphinator's Cypher for one entity: the hash lookup, the nodes, each relationship."""

    entity: EntitySpec
    graph: GraphSpec
    lookup: str
    nodes: str
    relationships: tuple[tuple[RelationshipSpec, str], ...]


def graph_statements(entity: EntitySpec) -> GraphStatements:
    assert entity.graph is not None
    graph = entity.graph
    label, key = ident(graph.label), ident(graph.key_property)
    lookup = (
        f"UNWIND $keys AS key OPTIONAL MATCH (n:{label} {{{key}: key}}) RETURN key, n._hash AS hash"
    )
    nodes = f"UNWIND $rows AS row MERGE (n:{label} {{{key}: row.key}}) SET n = row.props"
    relationships = tuple(
        (rel, f"UNWIND $rels AS rel MATCH (n:{label} {{{key}: rel.src}}) {merge_target(rel)}")
        for rel in graph.relationships
    )
    return GraphStatements(entity, graph, lookup, nodes, relationships)


class Neo4jSink:
    """graphinator's batch: read stored hashes, then one transaction for the changed."""

    def __init__(self, driver: AsyncDriver, spec: DatasetSpec, database: str) -> None:
        self.driver = driver
        self.database = database
        self.statements = {
            name: graph_statements(entity)
            for name, entity in spec.entities.items()
            if entity.graph is not None
        }

    async def write(self, entity: str, batch: list[Pending]) -> None:
        statements = self.statements[entity]
        async with self.driver.session(database=self.database) as session:
            result = await session.run(statements.lookup, keys=[p.key for p in batch])
            stored = {row["key"]: row["hash"] async for row in result}
            changed = [p for p in batch if stored.get(p.key) != p.sha256]
            if changed:
                await session.execute_write(_write_graph, statements, changed)


async def _write_graph(
    tx: AsyncManagedTransaction, statements: GraphStatements, batch: list[Pending]
) -> None:
    prepared = [PreparedRecord(p.key, bytes.fromhex(p.sha256), b"", p.record) for p in batch]
    rows = [node_row(statements.graph, record) for record in prepared]
    await (await tx.run(statements.nodes, rows=rows)).consume()
    for rel, statement in statements.relationships:
        rels = [row for record in prepared for row in relationship_rows(rel, record)]
        if rels:
            await (await tx.run(statement, rels=rels)).consume()


def table_statements(spec: DatasetSpec, namespace: str) -> list[sql.Composed]:
    """discogsography's entity tables in schema ``namespace``, with its hash index and an
    expression index per indexed column of the spec (the fields queries filter on)."""
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(namespace))]
    for name in store_entities(spec, "postgres"):
        table = spec.entities[name].table
        assert table is not None
        target = sql.Identifier(namespace, table.name)
        statements.append(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (data_id varchar PRIMARY KEY,"
                " hash varchar NOT NULL, data jsonb NOT NULL,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(target)
        )
        statements.append(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (hash)").format(
                sql.Identifier(f"idx_{table.name}_hash"), target
            )
        )
        for column in table.indexes:
            path = "{" + ",".join(table.columns[column].field.split(".")) + "}"
            statements.append(
                sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ((data #>> {}))").format(
                    sql.Identifier(f"idx_{table.name}_{column}"), target, sql.Literal(path)
                )
            )
    return statements


async def prepare_stores(spec: DatasetSpec, namespace: str, driver: AsyncDriver) -> None:
    """Tables, indexes and uniqueness constraints, before any record (its schema-init)."""
    async with await psycopg.AsyncConnection.connect(PostgresSettings().conninfo) as conn:
        for statement in table_statements(spec, namespace):
            await conn.execute(statement)
    async with driver.session(database=Neo4jSettings().neo4j_database) as session:
        for constraint in constraint_statements(spec):
            await (await session.run(constraint)).consume()


async def drop_discogsography(spec: DatasetSpec, namespace: str) -> None:
    """Drop the schema ``namespace``, every node and constraint of the spec's labels, and
    the run's queues and exchanges if a failed run left them."""
    async with await psycopg.AsyncConnection.connect(PostgresSettings().conninfo) as conn:
        await conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(namespace))
        )
    settings = Neo4jSettings()
    async with (
        AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth) as driver,
        driver.session(database=settings.neo4j_database) as session,
    ):
        for label, key in node_keys(spec).items():
            await _run(
                session,
                f"MATCH (n:{ident(label)}) CALL (n) {{ DETACH DELETE n }} "
                f"IN TRANSACTIONS OF {DELETE_CHUNK} ROWS",
            )
            await _run(session, f"DROP CONSTRAINT `{label}_{key}_unique` IF EXISTS")
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        await delete_topology(await connection.channel(), spec, namespace)


async def _run(session: Any, statement: str) -> None:
    await (await session.run(statement)).consume()


# ---------------------------------------------------------------- the extractor side


async def declare_topology(channel: AbstractChannel, spec: DatasetSpec, namespace: str) -> None:
    """Per entity a durable fanout exchange, and per consumer a quorum queue bound to it."""
    for entity in spec.entities:
        exchange = await channel.declare_exchange(
            exchange_name(namespace, entity), aio_pika.ExchangeType.FANOUT, durable=True
        )
        for store in CONSUMERS:
            if entity in store_entities(spec, store):
                queue = await channel.declare_queue(
                    queue_name(namespace, store, entity), durable=True, arguments=QUEUE_ARGUMENTS
                )
                await queue.bind(exchange)


async def delete_topology(channel: AbstractChannel, spec: DatasetSpec, namespace: str) -> None:
    for entity in spec.entities:
        for store in CONSUMERS:
            await channel.queue_delete(queue_name(namespace, store, entity))
        await channel.exchange_delete(exchange_name(namespace, entity))
