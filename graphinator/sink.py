"""The Neo4j write path: per batch, one UNWIND per label and per relationship type.

All queries of a batch run in one managed transaction (``execute_write``), so the driver
retries transient errors and leader switches. One lookup reads the stored hash of each of
the batch's keys: records whose hash is unchanged are skipped with their relationships,
keys the graph does not hold are CREATEd, the rest MERGEd, and a changed record's
relationships are replaced. If another writer created one of the "new" keys meanwhile, the
uniqueness constraint fails the batch and it runs again with every node MERGEd. Each
distinct relationship target is MERGEd once per batch, then the edges are CREATEd by MATCH.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import neo4j
from neo4j import AsyncDriver, AsyncManagedTransaction

from common import metrics
from common.envelope import EndOfJob
from common.outcomes import Outcome
from common.records import PreparedRecord
from common.sink import WriteResult
from common.spec import DatasetSpec
from graphinator.cypher import EntityQueries, constraint_statements, count_queries, entity_queries
from graphinator.errors import classify
from graphinator.rows import node_row, relationship_rows

log = logging.getLogger(__name__)


def _by_key(row: dict[str, Any]) -> str:
    return str(row["key"])


def _by_target(row: dict[str, Any]) -> str:
    return str(row["dst"])


class Neo4jSink:
    """MERGEs batches of one dataset's entities into the graph."""

    reads_docs = True  # properties and relationships come from the documents

    def __init__(
        self,
        driver: AsyncDriver,
        spec: DatasetSpec,
        database: str,
        *,
        service: str = "graphinator",
    ) -> None:
        self.driver = driver
        self.service = service
        self.spec = spec
        self.database = database
        self._queries = {
            name: entity_queries(entity)
            for name, entity in spec.entities.items()
            if entity.graph is not None
        }

    def classify(self, exc: BaseException) -> Outcome:
        return classify(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return classify(exc) is Outcome.RETRY

    async def begin_job(self, entity: str, job_id: str) -> None:
        """Constraints are created at start; a job needs nothing more."""

    async def create_constraints(self) -> None:
        async with self.driver.session(database=self.database) as session:
            for statement in constraint_statements(self.spec):
                await (await session.run(statement)).consume()

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        queries = self._queries[entity]
        async with self.driver.session(database=self.database) as session:
            try:
                outcome = await session.execute_write(_write_batch, queries, records, True)
            except neo4j.exceptions.ConstraintError:
                # A key looked up as new was created by another writer before this commit.
                log.info("node create conflict, merging entity=%s size=%d", entity, len(records))
                outcome = await session.execute_write(_write_batch, queries, records, False)
        self._observe(entity, outcome, len(records))
        return WriteResult(written=outcome.changed, unchanged=len(records) - outcome.changed)

    def _observe(self, entity: str, outcome: BatchOutcome, total: int) -> None:
        labels = (self.service, self.spec.name, entity)
        nodes, rels = metrics.GRAPH_NODES, metrics.GRAPH_RELATIONSHIPS
        nodes.labels(*labels, "created").inc(outcome.nodes_created)
        nodes.labels(*labels, "updated").inc(max(outcome.changed - outcome.entity_created, 0))
        nodes.labels(*labels, "skipped").inc(total - outcome.changed)
        rels.labels(*labels, "created").inc(outcome.relationships_created)
        rels.labels(*labels, "deleted").inc(outcome.relationships_deleted)

    async def finalise(self, entity: str, end: EndOfJob) -> dict[str, Any]:
        graph = self._queries[entity].graph
        nodes_query, rel_queries = count_queries(graph)
        async with self.driver.session(database=self.database) as session:
            nodes = await _single_count(session, nodes_query)
            rels = {
                name: await _single_count(session, query) for name, query in rel_queries.items()
            }
        return {"label": graph.label, "nodes": nodes, "relationships": rels}


@dataclass
class BatchOutcome:
    """What one batch's transaction did, from the driver's summary counters."""

    changed: int = 0
    entity_created: int = 0
    nodes_created: int = 0
    relationships_created: int = 0
    relationships_deleted: int = 0

    def add(self, counters: neo4j.SummaryCounters) -> None:
        self.nodes_created += counters.nodes_created
        self.relationships_created += counters.relationships_created
        self.relationships_deleted += counters.relationships_deleted


async def _write_batch(
    tx: AsyncManagedTransaction,
    queries: EntityQueries,
    records: list[PreparedRecord],
    create_new: bool,
) -> BatchOutcome:
    """One batch's transaction; ``create_new``: CREATE the keys the lookup does not find."""
    outcome = BatchOutcome()
    # Sorted: two batches in flight then take their node locks in the same order.
    rows = sorted((node_row(queries.graph, record) for record in records), key=_by_key)
    changed, updated = await _write_nodes(tx, queries, rows, outcome, create_new)
    outcome.changed = len(changed)
    if not changed:
        return outcome
    changed_keys = set(changed)
    changed_records = [record for record in records if record.key in changed_keys]
    for rel in queries.relationships:
        if updated:
            keys_in_order = sorted(updated, key=str)
            outcome.add((await (await tx.run(rel.delete, keys=keys_in_order)).consume()).counters)
        rel_rows = [
            row for record in changed_records for row in relationship_rows(rel.spec, record)
        ]
        if rel_rows:
            rel_rows.sort(key=_by_target)
            targets = _distinct_targets(rel_rows)
            outcome.add((await (await tx.run(rel.targets, targets=targets)).consume()).counters)
            outcome.add((await (await tx.run(rel.edges, rels=rel_rows)).consume()).counters)
    return outcome


async def _write_nodes(
    tx: AsyncManagedTransaction,
    queries: EntityQueries,
    rows: list[dict[str, Any]],
    outcome: BatchOutcome,
    create_new: bool,
) -> tuple[list[Any], list[Any]]:
    """Write the batch's new and changed nodes; returns the changed keys, and among them
    those that had a hash before (only they can have relationships of their own)."""
    changed: list[Any] = []
    updated: list[Any] = []
    if create_new:
        lookup = [{"key": row["key"], "hash": row["hash"]} for row in rows]
        found = await (await tx.run(queries.lookup, rows=lookup)).single(strict=True)
        new_keys, changed_keys = set(found["new"]), set(found["changed"])
        new = [row for row in rows if row["key"] in new_keys]
        rows = [row for row in rows if row["key"] in changed_keys]
        if new:
            outcome.add((await (await tx.run(queries.create, rows=new)).consume()).counters)
            changed = [row["key"] for row in new]
    if rows:
        result = await tx.run(queries.nodes, rows=rows)
        keys = await result.single(strict=True)
        changed += keys["changed"]
        updated = keys["updated"]
        outcome.add((await result.consume()).counters)
    outcome.entity_created = outcome.nodes_created
    return changed, updated


def _distinct_targets(rel_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target once, with the properties of its first edge (sorted rows: key order)."""
    targets: dict[Any, dict[str, Any]] = {}
    for row in rel_rows:
        if row["dst"] not in targets:
            targets[row["dst"]] = {"dst": row["dst"], "target_props": row["target_props"]}
    return list(targets.values())


async def _single_count(session: neo4j.AsyncSession, query: str) -> int:
    result = await session.run(query)
    record = await result.single(strict=True)
    return int(record["count"])
