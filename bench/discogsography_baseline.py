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
import secrets
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractChannel
from neo4j import AsyncGraphDatabase

from bench.discogsography_consumers import ConsumerJob, ConsumerProcesses, ConsumerResult
from bench.discogsography_stores import (
    BATCH_SIZE,
    CONSUMERS,
    FILE_COMPLETE,
    FLUSH_INTERVAL,
    PREFETCH,
    QUEUE_ARGUMENTS,
    READ_PAGE,
    Store,
    declare_topology,
    delete_topology,
    drop_discogsography,
    exchange_name,
    prepare_stores,
    store_entities,
)
from bench.harness.measure import Measurement
from common.settings import AmqpSettings, Neo4jSettings
from common.spec import DatasetSpec, GraphSpec, load_spec
from extractor.sources.dumps.discogs import iter_records

log = logging.getLogger(__name__)

Records = Iterable[tuple[str, dict[str, Any]]]


# ---------------------------------------------------------------- names and sources


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
    directory: Path, spec: DatasetSpec, limit: int, counts: dict[str, int] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The first ``limit`` records of the dump files in ``directory``, file by file in the
    spec's entity order (each entity's ``path`` glob, files in name order). With ``counts``
    (records per entity in the whole dump), each entity gives its share of ``limit``, so a
    sample of a dump holds the releases, their size and relationships, in the dump's mix."""
    total = sum(counts.values()) if counts else 0
    quotas = {name: round(limit * n / total) for name, n in counts.items()} if counts else {}
    for name, entity in spec.entities.items():
        quota = quotas.get(name, 0) if counts else limit
        for path in sorted(directory.glob(entity.path)):
            for record in iter_records(path, name):
                if quota <= 0 or limit <= 0:
                    break
                quota, limit = quota - 1, limit - 1
                yield name, record
            if limit <= 0:
                return


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
                "redelivered_batches": result.redelivered,
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
