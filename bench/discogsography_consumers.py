"""discogsography's consumers, as the baseline of bench/discogsography_baseline.py runs
them: one process per store, prefetch 1,000, batches of 500 flushed every 2 s at the
latest (its compose file), ack after commit; the stores' writes are in
bench/discogsography_stores.py."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue as queue_module
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractIncomingMessage
from neo4j import AsyncGraphDatabase
from neo4j.exceptions import TransientError
from psycopg_pool import AsyncConnectionPool

from bench.discogsography_stores import (
    CONSUMER_START_SECONDS,
    CONSUMERS,
    FILE_COMPLETE,
    FLUSH_INTERVAL,
    POSTGRES_POOL_MAX,
    Neo4jSink,
    Pending,
    PostgresSink,
    Sink,
    Store,
    queue_name,
    store_entities,
)
from bench.harness.measure import cpu_seconds
from common.records import cast_key, get_path
from common.settings import AmqpSettings, Neo4jSettings, PostgresSettings
from common.spec import DatasetSpec, EntitySpec

log = logging.getLogger(__name__)
# discogsography nacks a failed batch's messages and RabbitMQ redelivers them, up to its
# quorum queues' x-delivery-limit; here the batch is written again, as often.
DELIVERY_LIMIT = 20

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
    redelivered: int = 0  # batches written again after a transient error (a deadlock)
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
            await self._write(entity, batch)
            for item in batch:
                await item.message.ack()
            self.result.records += len(batch)
            self.result.batches += 1
            self.result.last_commit = self.last_flush[entity] = time.monotonic()
        finally:
            self.active -= 1
            await self._notify()

    async def _write(self, entity: str, batch: list[Pending]) -> None:
        """The batch into the store; after a transient error (once the driver's own
        retries gave up), again, as discogsography's nack and redelivery would."""
        for delivery in range(1, DELIVERY_LIMIT + 1):
            try:
                await self.sink.write(entity, batch)
                return
            except TransientError as exc:
                if delivery == DELIVERY_LIMIT:
                    raise
                log.warning("batch redelivered entity=%s delivery=%d: %s", entity, delivery, exc)
                self.result.redelivered += 1

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
