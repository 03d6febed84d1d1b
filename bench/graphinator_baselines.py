"""What graphinator is compared with: our users' "before", one transaction per record.

Built as a careful user builds it, not weakened: the official async driver with
``neo4j-rust-ext`` (as graphinator has), one session reused for the whole run, a managed
transaction (``execute_write``) per message, uniqueness constraints on every label before
the first record, orjson, aio-pika with prefetch 1 and ack after commit. Every record is its
own persistent message on a durable queue, published before the consumer starts; publishing
is not timed. The node's properties, the relationship rows and the content hash are built by
graphinator's own row functions, so both paths write the same graph.

Two shapes of the per-record transaction are measured:

- (a) one statement per MERGE group, as discogsography's graphinator does: MERGE the node
  and SET its properties, then per relationship type one ``UNWIND`` that MATCHes the node,
  MERGEs the target and MERGEs the edge (3 statements for a replay);
- (b) everything in one statement per record (``CALL (n) { UNWIND .. }`` per type).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from aio_pika.abc import AbstractIncomingMessage
from neo4j import AsyncManagedTransaction, AsyncSession

from bench.graph_context import GraphBenchContext, GraphNamespace, watching_foreign_work
from bench.graphinator_consumer import (
    check_same_server,
    neo4j_cpu_seconds,
    neo4j_pid,
    server_details,
)
from bench.harness.consumer import publish_one_per_message
from bench.harness.measure import Measurement, Stopwatch, sampling_rss
from bench.records import BenchRecords
from common.amqp import robust_channel
from common.records import prepare
from common.spec import EntitySpec, RelationshipSpec, load_spec
from graphinator.cypher import constraint_statements, ident
from graphinator.rows import node_row, relationship_rows

# Each baseline stops after this long and reports the records it committed by then.
BASELINE_LIMIT_SECONDS = 60.0
SHAPES = {
    "per_merge": "(a) tx per record, a statement per MERGE group",
    "per_record": "(b) tx per record, one statement",
}


@dataclass(frozen=True)
class RecordWrite:
    """The statements of one record's transaction and how to fill their parameters."""

    entity: EntitySpec
    node: str
    relationships: tuple[tuple[RelationshipSpec, str], ...]
    single: str

    def statements(self, record: dict[str, Any], shape: str) -> list[tuple[str, dict[str, Any]]]:
        prepared = prepare(record, self.entity.key, self.entity.key_type)
        assert self.entity.graph is not None
        row = node_row(self.entity.graph, prepared)
        rels = [
            (spec, query, relationship_rows(spec, prepared)) for spec, query in self.relationships
        ]
        if shape == "per_record":
            params = {"key": row["key"], "props": row["props"]}
            params.update({f"rels{index}": rows for index, (_, _, rows) in enumerate(rels)})
            return [(self.single, params)]
        return [(self.node, {"key": row["key"], "props": row["props"]})] + [
            (query, {"key": row["key"], "rels": rows}) for _, query, rows in rels if rows
        ]


def record_write(entity: EntitySpec) -> RecordWrite:
    """The users' Cypher for one record of ``entity``."""
    assert entity.graph is not None
    graph = entity.graph
    label, key = ident(graph.label), ident(graph.key_property)
    node = f"MERGE (n:{label} {{{key}: $key}}) SET n = $props"
    match = f"MATCH (n:{label} {{{key}: $key}}) "
    relationships = tuple(
        (spec, f"UNWIND $rels AS rel {match}{merge_target(spec)}") for spec in graph.relationships
    )
    subqueries = " ".join(
        f"CALL (n) {{ UNWIND $rels{index} AS rel {merge_target(spec)} }}"
        for index, spec in enumerate(graph.relationships)
    )
    single = f"{node} WITH n {subqueries}"
    return RecordWrite(entity, node, relationships, single)


def merge_target(spec: RelationshipSpec) -> str:
    target, target_key = ident(spec.target.label), ident(spec.target.key)
    edge = f"[e:{ident(spec.type)}]"
    arrow = f"-{edge}->" if spec.direction == "out" else f"<-{edge}-"
    return (
        f"MERGE (b:{target} {{{target_key}: rel.dst}}) ON CREATE SET b += rel.target_props "
        f"MERGE (n){arrow}(b) SET e += rel.props"
    )


async def per_record_transaction(
    ctx: GraphBenchContext,
    ns: GraphNamespace,
    records: BenchRecords,
    *,
    shape: str,
    limit: float = BASELINE_LIMIT_SECONDS,
) -> Measurement:
    """Prefetch 1; per message one managed transaction with the record's MERGEs, then ack."""
    spec = load_spec(ns.spec_path)
    entity = next(iter(spec.entities.values()))
    write = record_write(entity)
    for statement in constraint_statements(spec):
        await ctx.query(statement)
    publish_seconds = await publish_one_per_message(ctx, ns.baseline_queue, records)
    server, neo4j_before = neo4j_pid(), neo4j_cpu_seconds()
    async with (
        ctx.driver.session(database=ctx.neo4j.neo4j_database) as session,
        watching_foreign_work(ctx, ns.prefix) as foreign,
    ):
        done, seconds, peak = await _consume(ctx, ns, session, write, shape, records.count, limit)
    neo4j_cpu = neo4j_cpu_seconds() - neo4j_before
    check_same_server(server, f"baseline {shape}")
    counts = await ctx.counts(ns)
    return Measurement(
        name=f"baseline_{shape}",
        label=SHAPES[shape],
        records=done,
        seconds=seconds,
        peak_rss_mib=round(peak, 1),
        details={
            **counts.totals(),
            "graph": counts.as_dict(),
            "statements_per_record": len(write.statements(records.record(0), shape)),
            "prefetch": 1,
            "limit_seconds": limit,
            "publish_seconds": round(publish_seconds, 3),
            **server_details(neo4j_cpu, seconds, foreign),
        },
    )


async def _consume(
    ctx: GraphBenchContext,
    ns: GraphNamespace,
    session: AsyncSession,
    write: RecordWrite,
    shape: str,
    total: int,
    limit: float,
) -> tuple[int, float, float]:
    """Write one message at a time until ``total`` are acked or ``limit`` seconds passed;
    (records committed, seconds, peak RSS)."""
    deliveries: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    async with (
        robust_channel(ctx.amqp.url, prefetch=1, name="bench-baseline") as (_, channel),
        sampling_rss() as rss,
    ):
        queue = await channel.get_queue(ns.baseline_queue)
        watch = Stopwatch()
        tag = await queue.consume(deliveries.put)
        done = 0
        while done < total and watch.elapsed() < limit:
            message = await asyncio.wait_for(deliveries.get(), ctx.timeout)
            statements = write.statements(orjson.loads(message.body), shape)
            await session.execute_write(_run_statements, statements)
            await message.ack()
            done += 1
        seconds = watch.elapsed()
        await queue.cancel(tag)
    return done, seconds, rss.peak


async def _run_statements(
    tx: AsyncManagedTransaction, statements: list[tuple[str, dict[str, Any]]]
) -> None:
    for statement, params in statements:
        await (await tx.run(statement, params)).consume()
