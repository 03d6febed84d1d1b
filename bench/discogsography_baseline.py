"""What the whole job is compared with: discogsography's pipeline, rebuilt on our records.

discogsography (github.com/SimplicityGuy/discogsography) is how users load Discogs today.
Its shape, read from its code and kept here:

- the extractor (``extractor/src/message_queue.rs``) publishes ONE record per persistent
  message to a durable fanout exchange per entity, and awaits each publisher confirm
  before the next publish; after the last record of a file it publishes a
  ``file_complete`` message;
- every consumer owns a durable quorum queue per entity (``x-delivery-limit`` 20) bound
  to that exchange; ``tableinator`` and ``graphinator`` each run as their own process;
- both consumers batch (``docker-compose.yml``: ``POSTGRES_BATCH_MODE`` /
  ``NEO4J_BATCH_MODE`` "true", ``*_BATCH_SIZE`` "500", ``*_BATCH_FLUSH_INTERVAL`` "2.0")
  with a prefetch of ``max(200, BATCH_SIZE * 2)`` = 1,000 (``tableinator/tableinator.py``
  and ``graphinator/graphinator.py``, ``set_qos``); a batch is flushed when it holds
  ``batch`` records or when ``flush_interval`` passed since the last flush (checked on
  each message and by a periodic task), and on ``file_complete``; every message of a
  batch is acked after its commit;
- tableinator's batch (``tableinator/batch_processor.py``) is one transaction: SELECT the
  stored hashes of the batch's ids (``= ANY``), UPDATE ``updated_at`` of the unchanged,
  ``executemany`` INSERT .. ON CONFLICT (data_id) DO UPDATE for the rest, two flushes at
  most at once; its table is ``data_id varchar PRIMARY KEY, hash varchar, data jsonb``
  plus ``updated_at``, an index on ``hash`` and expression indexes on the JSON fields it
  queries;
- graphinator's batch (``graphinator/batch_processor.py``) first reads the batch's stored
  hashes (``UNWIND $ids .. OPTIONAL MATCH .. RETURN hash``, one auto-commit query), then
  writes the changed records in ONE managed transaction: an ``UNWIND .. MERGE (n) SET``
  for the nodes, then per relationship type an ``UNWIND .. MATCH (n) MERGE (target)
  MERGE (n)-[:TYPE]-(target)``.

Built as a careful user builds it, not weakened: aio-pika, orjson, psycopg 3 with a
connection pool, the official async neo4j driver with uniqueness constraints on every
label before the first record. Each consumer runs in its own process (as discogsography's
services do) and is consuming before the first publish; the records are read in a thread
a page at a time while the previous page is published. The node properties and
relationship rows come from graphinator's row functions and the tables and labels from the
spec, so the baseline writes the same records and graph as the project.

Where the data goes, and cleaning up: tables go into the PostgreSQL schema ``namespace``
(one per entity, named by the spec's table); nodes go under the spec's labels as given, in
the configured Neo4j database. Labels are shared by everyone using that database, so a
caller on a shared database passes ``prefixed_spec(spec, prefix)`` (its labels made its
own); ``drop_discogsography`` drops the schema and deletes every node, and the constraint,
of each label the spec maps. Queues and exchanges are ``dg.{namespace}.*`` and are deleted
at the end of every run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import multiprocessing
import queue as queue_module
import secrets
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import islice
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Any, Literal, Protocol

import aio_pika
import orjson
import psycopg
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from bench.harness.measure import Measurement, cpu_seconds
from common.records import PreparedRecord, cast_key, get_path
from common.settings import AmqpSettings, Neo4jSettings, PostgresSettings
from common.spec import DatasetSpec, EntitySpec, GraphSpec, RelationshipSpec, load_spec
from extractor.sources.dumps.discogs import iter_records
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


# ---------------------------------------------------------------- names and sources


def exchange_name(namespace: str, entity: str) -> str:
    return f"dg.{namespace}.{entity}"


def queue_name(namespace: str, store: Store, entity: str) -> str:
    return f"dg.{namespace}.{CONSUMERS[store]}.{entity}"


def store_entities(spec: DatasetSpec, store: Store) -> list[str]:
    """The entities a consumer takes: those with a table (postgres) or a graph (neo4j)."""
    if store == "postgres":
        return [name for name, entity in spec.entities.items() if entity.table is not None]
    return [name for name, entity in spec.entities.items() if entity.graph is not None]


def prefixed_spec(spec: DatasetSpec, prefix: str) -> DatasetSpec:
    """The spec with every node label (own and target) prefixed: a graph of its own."""
    entities = {}
    for name, entity in spec.entities.items():
        if entity.graph is not None:
            entity = entity.model_copy(update={"graph": _prefixed_graph(entity.graph, prefix)})
        entities[name] = entity
    return spec.model_copy(update={"entities": entities})


def _prefixed_graph(graph: GraphSpec, prefix: str) -> GraphSpec:
    relationships = [
        rel.model_copy(
            update={"target": rel.target.model_copy(update={"label": prefix + rel.target.label})}
        )
        for rel in graph.relationships
    ]
    return graph.model_copy(update={"label": prefix + graph.label, "relationships": relationships})


def dump_records(
    directory: Path, spec: DatasetSpec, limit: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The first ``limit`` records of the dump files in ``directory``, file by file in the
    spec's entity order (each entity's ``path`` glob, files in name order)."""
    for name, entity in spec.entities.items():
        for path in sorted(directory.glob(entity.path)):
            for record in iter_records(path, name):
                if limit <= 0:
                    return
                limit -= 1
                yield name, record


def demo_records(
    url: str, limit: int, page_size: int = 500, *, entity: str = "replays"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The demo API's replays, newest first, one ``/offset.json`` page after the other."""
    offset = 0
    while offset < limit:
        size = min(page_size, limit - offset)
        with urllib.request.urlopen(f"{url}/offset.json?offset={offset}&limit={size}") as reply:
            items = json.load(reply)["items"]
        for item in items:
            yield entity, item
        if len(items) < size:
            return
        offset += len(items)


# ---------------------------------------------------------------- schema and topology


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


@dataclass
class Published:
    """What the publisher sent: records per entity, when it started and last confirmed."""

    started: float = 0.0
    finished: float = 0.0
    per_entity: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(self.per_entity.values())


def message_body(record: dict[str, Any]) -> bytes:
    """The record with its SHA-256 (of its sorted-key JSON) beside it, as the extractor
    sends it: consumers compare that hash with the stored one."""
    digest = hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return orjson.dumps({**record, "sha256": digest})


async def publish_records(
    channel: AbstractChannel, spec: DatasetSpec, namespace: str, records: Records
) -> Published:
    """Publish each record as its own persistent message, awaiting its confirm before the
    next; then a ``file_complete`` per entity."""
    exchanges = {
        entity: await channel.get_exchange(exchange_name(namespace, entity))
        for entity in spec.entities
    }
    published = Published(per_entity=dict.fromkeys(spec.entities, 0))
    published.started = time.monotonic()
    async for entity, record in _read_ahead(records):
        message = aio_pika.Message(
            message_body(record),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchanges[entity].publish(message, routing_key="")
        published.per_entity[entity] += 1
    published.finished = time.monotonic()
    for entity, exchange in exchanges.items():
        body = orjson.dumps(
            {"type": FILE_COMPLETE, "total_processed": published.per_entity[entity]}
        )
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await exchange.publish(message, routing_key="")
    return published


async def _read_ahead(records: Records) -> Any:
    """The records, read in a thread a page at a time, the next page while this one is
    published: a dump parse or an HTTP fetch never stalls the event loop."""
    source = iter(records)
    page = asyncio.create_task(asyncio.to_thread(_take, source, READ_PAGE))
    while items := await page:
        page = asyncio.create_task(asyncio.to_thread(_take, source, READ_PAGE))
        for item in items:
            yield item


def _take(
    source: Iterator[tuple[str, dict[str, Any]]], count: int
) -> list[tuple[str, dict[str, Any]]]:
    return list(islice(source, count))


# ---------------------------------------------------------------- the consumers' sinks


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
        (rel, f"UNWIND $rels AS rel MATCH (n:{label} {{{key}: rel.src}}) {_merge_target(rel)}")
        for rel in graph.relationships
    )
    return GraphStatements(entity, graph, lookup, nodes, relationships)


def _merge_target(spec: RelationshipSpec) -> str:
    target, target_key = ident(spec.target.label), ident(spec.target.key)
    edge = f"[e:{ident(spec.type)}]"
    arrow = f"-{edge}->" if spec.direction == "out" else f"<-{edge}-"
    return (
        f"MERGE (b:{target} {{{target_key}: rel.dst}}) ON CREATE SET b += rel.target_props "
        f"MERGE (n){arrow}(b) SET e += rel.props"
    )


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


# ---------------------------------------------------------------- the batch processor


@dataclass
class ConsumerResult:
    """What one consumer process committed, and when its last commit was."""

    store: Store
    records: int = 0
    batches: int = 0
    first_delivery: float = 0.0
    last_commit: float = 0.0
    cpu_seconds: float = 0.0
    error: str | None = None


class BatchProcessor:
    """discogsography's batching: per entity a deque flushed at ``batch`` records, after
    ``flush_interval`` (on a message or by the periodic task) and on ``file_complete``;
    each message is acked after its batch's commit."""

    def __init__(
        self, sink: Sink, entities: dict[str, EntitySpec], result: ConsumerResult, batch: int
    ) -> None:
        self.sink = sink
        self.entities = entities
        self.batch = batch
        self.result = result
        self.pending: dict[str, deque[Pending]] = {entity: deque() for entity in entities}
        self.last_flush = dict.fromkeys(entities, time.monotonic())
        self.complete: set[str] = set()
        self.active = 0
        self.changed = asyncio.Condition()
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def on_message(self, entity: str, message: AbstractIncomingMessage) -> None:
        """The consumer callback; an error fails the whole run (no silent nack)."""
        try:
            await self._handle(entity, message)
        except Exception as exc:
            if not self.failed.done():
                self.failed.set_exception(exc)
            raise

    async def _handle(self, entity: str, message: AbstractIncomingMessage) -> None:
        self.result.first_delivery = self.result.first_delivery or time.monotonic()
        data = orjson.loads(message.body)
        if data.get("type") == FILE_COMPLETE:
            while self.pending[entity]:
                await self.flush(entity)
            await message.ack()
            self.complete.add(entity)
            await self._notify()
            return
        sha256 = data.pop("sha256")
        spec = self.entities[entity]
        key = cast_key(get_path(data, spec.key), spec.key_type)
        self.pending[entity].append(Pending(key, sha256, data, message))
        stale = time.monotonic() - self.last_flush[entity] >= FLUSH_INTERVAL
        if len(self.pending[entity]) >= self.batch or stale:
            await self.flush(entity)

    async def flush(self, entity: str) -> None:
        queue = self.pending[entity]
        batch = [queue.popleft() for _ in range(min(self.batch, len(queue)))]
        if not batch:
            return
        self.active += 1
        try:
            await self.sink.write(entity, batch)
            for item in batch:
                await item.message.ack()
            self.result.records += len(batch)
            self.result.batches += 1
            self.result.last_commit = self.last_flush[entity] = time.monotonic()
        finally:
            self.active -= 1
            await self._notify()

    async def periodic_flush(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            for entity, queue in self.pending.items():
                if queue and time.monotonic() - self.last_flush[entity] >= FLUSH_INTERVAL:
                    await self.flush(entity)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def finished(self) -> None:
        """Until every entity's ``file_complete`` came and no batch is left or in flight."""

        def done() -> bool:
            drained = not any(self.pending.values())
            return self.complete == set(self.pending) and drained and self.active == 0

        async with self.changed:
            await self.changed.wait_for(done)


# ---------------------------------------------------------------- the consumer processes


@dataclass(frozen=True)
class ConsumerJob:
    """What a consumer process is told: its store, the spec, the names, its settings."""

    store: Store
    spec: DatasetSpec
    namespace: str
    prefetch: int
    batch: int


def consumer_process(job: ConsumerJob, ready: ProcessEvent, go: ProcessEvent, results: Any) -> None:
    """A consumer process's entry point: connect, say ``ready``, wait for ``go``, consume
    until every entity is complete, then put its ConsumerResult (or the error that stopped
    it) on ``results``."""
    result = ConsumerResult(job.store)
    try:
        asyncio.run(_consume(job, ready, go, result))
    except Exception as exc:
        log.exception("discogsography consumer failed store=%s", job.store)
        result.error = f"{type(exc).__name__}: {exc}"
    result.cpu_seconds = cpu_seconds()
    results.put(result)


async def _consume(
    job: ConsumerJob, ready: ProcessEvent, go: ProcessEvent, result: ConsumerResult
) -> None:
    entities = {name: job.spec.entities[name] for name in store_entities(job.spec, job.store)}
    async with open_sink(job) as sink:
        processor = BatchProcessor(sink, entities, result, job.batch)
        connection = await aio_pika.connect_robust(AmqpSettings().url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=job.prefetch)
            queues = {
                entity: await channel.get_queue(queue_name(job.namespace, job.store, entity))
                for entity in entities
            }
            ready.set()
            while not await asyncio.to_thread(go.wait, 1.0):
                pass
            for entity, queue in queues.items():
                await queue.consume(_handler(processor, entity))
            periodic = asyncio.create_task(processor.periodic_flush())
            try:
                finished = asyncio.ensure_future(processor.finished())
                await asyncio.wait({finished, processor.failed}, return_when="FIRST_COMPLETED")
                if processor.failed.done():
                    finished.cancel()
                    processor.failed.result()
            finally:
                periodic.cancel()


def _handler(processor: BatchProcessor, entity: str) -> Any:
    async def handle(message: AbstractIncomingMessage) -> None:
        await processor.on_message(entity, message)

    return handle


@asynccontextmanager
async def open_sink(job: ConsumerJob) -> AsyncIterator[Sink]:
    """The store's sink over its client (a psycopg pool, a neo4j driver), closed after."""
    if job.store == "postgres":
        pool = AsyncConnectionPool(
            PostgresSettings().conninfo, min_size=5, max_size=POSTGRES_POOL_MAX, open=False
        )
        await pool.open(wait=True)
        async with pool:
            yield PostgresSink(pool, job.spec, job.namespace)
        return
    settings = Neo4jSettings()
    async with AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth) as driver:
        yield Neo4jSink(driver, job.spec, settings.neo4j_database)


class ConsumerProcesses:
    """The consumer processes of one run, each started (spawned) and consuming."""

    def __init__(self, jobs: list[ConsumerJob]) -> None:
        context = multiprocessing.get_context("spawn")
        self.results: Any = context.Queue()
        self.ready = {job.store: context.Event() for job in jobs}
        self.go = context.Event()
        self.processes = {
            job.store: context.Process(
                target=consumer_process,
                args=(job, self.ready[job.store], self.go, self.results),
                name=f"dg-{CONSUMERS[job.store]}",
                daemon=True,  # never outlives the run
            )
            for job in jobs
        }

    async def start(self) -> None:
        """Start every process and wait until each is connected (or one exits first)."""
        for process in self.processes.values():
            process.start()
        deadline = time.monotonic() + CONSUMER_START_SECONDS
        for store, ready in self.ready.items():
            while not await asyncio.to_thread(ready.wait, 0.5):
                self._check_alive({})
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{CONSUMERS[store]} was not consuming after {CONSUMER_START_SECONDS} s"
                    )

    def release(self) -> float:
        """Let every consumer consume; when that was (monotonic seconds)."""
        self.go.set()
        return time.monotonic()

    async def collect(self) -> dict[Store, ConsumerResult]:
        """Every consumer's result; raises what stopped one, or if one died silently."""
        results: dict[Store, ConsumerResult] = {}
        while len(results) < len(self.processes):
            try:
                result: ConsumerResult = await asyncio.to_thread(self.results.get, True, 1.0)
            except queue_module.Empty:
                self._check_alive(results)
                continue
            if result.error is not None:
                raise RuntimeError(f"{CONSUMERS[result.store]} failed: {result.error}")
            results[result.store] = result
        return results

    def _check_alive(self, results: dict[Store, ConsumerResult]) -> None:
        for store, process in self.processes.items():
            if store not in results and process.exitcode is not None:
                raise RuntimeError(f"{CONSUMERS[store]} exited {process.exitcode} with no result")

    def stop(self) -> None:
        """Join each process; one still running after a failed run is terminated."""
        for process in self.processes.values():
            if process.pid is None:
                continue
            process.join(5)
            if process.exitcode is None:
                process.terminate()
                process.join(10)


async def run_discogsography(
    records: Records,
    spec: DatasetSpec,
    namespace: str,
    *,
    prefetch: int = PREFETCH,
    batch: int = BATCH_SIZE,
    drain: bool = False,
) -> dict[str, Measurement]:
    """Publish ``records`` discogsography's way while its two consumers load them; the
    measurements "publish", "postgres", "neo4j" and "end to end" (both stores committed).

    Every store's clock runs from the first publish to its last commit; with ``drain`` the
    consumers start only once everything is published (the queues full, as after an
    extraction ran ahead) and their clocks from then: their own rate, without the
    transport's. "end to end" always runs from the first publish. The data is left
    in place (``drop_discogsography`` removes it); the queues are deleted. It waits for
    the consumers as long as they take: bound it with ``asyncio.timeout``.
    """
    settings = Neo4jSettings()
    async with AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth) as driver:
        await prepare_stores(spec, namespace, driver)
    jobs = [
        ConsumerJob(store, spec, namespace, prefetch, batch)
        for store in CONSUMERS
        if store_entities(spec, store)
    ]
    consumers = ConsumerProcesses(jobs)
    connection = await aio_pika.connect_robust(AmqpSettings().url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, spec, namespace)
        try:
            await consumers.start()
            if drain:
                published = await publish_records(channel, spec, namespace, records)
                consuming = consumers.release()
            else:
                consuming = consumers.release()
                published = await publish_records(channel, spec, namespace, records)
            results = await consumers.collect()
        finally:
            consumers.stop()
            await delete_topology(channel, spec, namespace)
    since = consuming if drain else published.started
    return measurements(
        published, results, since, {"prefetch": prefetch, "batch": batch, "drain": drain}
    )


def measurements(
    published: Published,
    results: dict[Store, ConsumerResult],
    since: float,
    run: dict[str, Any],
) -> dict[str, Measurement]:
    """The run's figures: the stores' clocks from ``since``, the others' from the first
    publish; ``run`` (prefetch, batch, drain) goes into every measurement's details."""
    settings = {
        **run,
        "flush_interval": FLUSH_INTERVAL,
        "queue_type": QUEUE_ARGUMENTS["x-queue-type"],
    }
    out = {
        "publish": Measurement(
            "publish",
            "one persistent message per record, each confirm awaited",
            published.records,
            published.finished - published.started,
            details={**settings, "per_entity": published.per_entity},
        )
    }
    for store, result in results.items():
        out[store] = Measurement(
            store,
            f"{CONSUMERS[store]}: batches of {run['batch']}, prefetch {run['prefetch']}",
            result.records,
            result.last_commit - since,
            details={
                **settings,
                "batches": result.batches,
                "first_delivery_seconds": round(result.first_delivery - since, 3),
                "consumer_cpu_seconds": round(result.cpu_seconds, 2),
            },
        )
    last_commit = max(result.last_commit for result in results.values())
    out["end to end"] = Measurement(
        "end to end",
        "first publish until both stores committed the last record",
        published.records,
        last_commit - published.started,
        details=settings,
    )
    return out


async def measure_demo(url: str, records: int, *, drain: bool = False) -> dict[str, Measurement]:
    """One run over the demo API's first ``records`` replays, under labels and a schema of
    its own that are dropped afterwards."""
    namespace = "dg_" + secrets.token_hex(4)
    spec = prefixed_spec(load_spec("demo"), f"Dg{namespace}")
    try:
        return await run_discogsography(demo_records(url, records), spec, namespace, drain=drain)
    finally:
        await drop_discogsography(spec, namespace)


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.discogsography_baseline --url URL --records N``: one measured run
    against a running demo API, printed as JSON."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8899", help="the demo API")
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument(
        "--drain", action="store_true", help="publish first, then time the consumers alone"
    )
    args = parser.parse_args(argv)
    measured = asyncio.run(measure_demo(args.url, args.records, drain=args.drain))
    report = {name: measurement.as_dict() for name, measurement in measured.items()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
