"""What every graphinator measurement shares: settings, a Neo4j driver, namespaces.

Neo4j Community has one database, which the tests beside the benchmark wipe. Each
measurement therefore gets its own namespace: a dataset name (naming its queues) and node
labels prefixed with it (``B1a2b3c4dReplay``, ``..Player``, ``..Format``), so its graph and
its uniqueness constraints are its own. ``cleanup`` deletes the namespace's nodes in small
transactions, drops its constraints and deletes its queues.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import neo4j
import yaml
from neo4j import AsyncDriver, AsyncGraphDatabase

from bench.harness.broker import delete_queues
from bench.harness.consumer import ConsumerNamespace
from bench.harness.context import BrokerContext, broker_context, retrying, running
from bench.harness.spec import replay_spec
from common.settings import Neo4jSettings
from graphinator.cypher import ident

log = logging.getLogger(__name__)

CONSUMER = "graphinator"
CLEANUP_SECONDS = 60
DELETE_CHUNK = 1000
# The demo spec's graph mapping: label -> key property, the record's own label first (its
# nodes hold most relationships, so deleting them first leaves little for the others).
LABELS = {"Replay": "id", "Player": "userid", "Format": "name"}
RELATIONSHIPS = ("PLAYED_BY", "IN_FORMAT")


def graph_spec(name: str, prefix: str) -> dict[str, Any]:
    """The demo spec's replays graph mapping, under a unique dataset name and label prefix."""
    replay, player, fmt = (prefix + label for label in LABELS)
    played_by = {
        "type": "PLAYED_BY",
        "field": "players",
        "key": "userid",
        "target": {"label": player, "key": "userid"},
        "properties": {"side": "side", "rating": "rating"},
        "target_properties": {"name": "name"},
    }
    in_format = {"type": "IN_FORMAT", "field": "format", "target": {"label": fmt, "key": "name"}}
    properties = ("format", "uploadtime", "rating", "turns", "winner")
    graph = {
        "label": replay,
        "properties": {field: field for field in properties},
        "relationships": [played_by, in_format],
    }
    description = "graphinator benchmark dataset (records are published by the bench)"
    return replay_spec(name, description, {"graph": graph})


class ForeignWork:
    """How often other clients' queries ran in Neo4j while a measurement ran.

    Samples ``SHOW TRANSACTIONS`` every ``interval`` seconds; a transaction whose current
    query names none of the measurement's labels is someone else's (a test beside the
    benchmark). The share of samples that saw one is reported with the measurement.
    """

    def __init__(self, ctx: GraphBenchContext, prefix: str, interval: float = 0.5) -> None:
        self.ctx = ctx
        self.prefix = prefix
        self.interval = interval
        self.samples = 0
        self.busy = 0
        self.seen: set[str] = set()

    @property
    def share(self) -> float:
        return self.busy / self.samples if self.samples else 0.0

    async def run(self) -> None:
        while True:
            try:
                rows = await self.ctx.query(
                    "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery"
                )
            except (neo4j.exceptions.Neo4jError, neo4j.exceptions.DriverError, OSError):
                rows = []  # Neo4j restarting: the run is checked for that separately
            queries = [str(row["currentQuery"] or "") for row in rows]
            others = [
                q for q in queries if q and self.prefix not in q and not q.startswith("SHOW ")
            ]
            self.samples += 1
            if others:
                self.busy += 1
                self.seen.update(q[:80] for q in others)
            await asyncio.sleep(self.interval)

    def as_dict(self) -> dict[str, Any]:
        return {
            "share": round(self.share, 2),
            "samples": self.samples,
            "queries": sorted(self.seen)[:5],
        }


@asynccontextmanager
async def watching_foreign_work(ctx: GraphBenchContext, prefix: str) -> AsyncIterator[ForeignWork]:
    watch = ForeignWork(ctx, prefix)
    async with running(watch.run()):
        yield watch


@dataclass(frozen=True)
class GraphCounts:
    """Nodes per label and relationships per type of one namespace."""

    nodes: dict[str, int]
    relationships: dict[str, int]

    def totals(self) -> dict[str, int]:
        """``{"nodes": n, "relationships": r}``: all labels and types together."""
        return {
            "nodes": sum(self.nodes.values()),
            "relationships": sum(self.relationships.values()),
        }

    def as_dict(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "relationships": self.relationships}


@dataclass(frozen=True)
class GraphNamespace(ConsumerNamespace):
    """One measurement's dataset name, label prefix, spec file and queues."""

    consumer: ClassVar[str] = CONSUMER
    prefix: str = ""

    def label(self, base: str) -> str:
        return self.prefix + base


@dataclass(kw_only=True)
class GraphBenchContext(BrokerContext):
    """The shared context with a Neo4j driver."""

    neo4j: Neo4jSettings
    driver: AsyncDriver

    def namespace(self) -> GraphNamespace:
        token = secrets.token_hex(4)
        name, prefix = f"bench_{token}", f"B{token}"
        path = self.workdir / f"{name}.yaml"
        path.write_text(yaml.safe_dump(graph_spec(name, prefix), sort_keys=False))
        return GraphNamespace(name, path, prefix)

    async def query(self, statement: str, **params: Any) -> list[dict[str, Any]]:
        """Run one auto-commit statement (the bench's own queries); its rows."""
        async with self.driver.session(database=self.neo4j.neo4j_database) as session:
            result = await session.run(statement, params)
            return [record.data() for record in await result.fetch(1_000_000)]

    async def counts(self, ns: GraphNamespace) -> GraphCounts:
        """The namespace's nodes per label and relationships per type (count store)."""
        nodes = {
            base: await self._count(f"MATCH (n:{ident(ns.label(base))}) RETURN count(n) AS c")
            for base in LABELS
        }
        # One labelled end: answered from the count store, no expansion.
        source = ident(ns.label("Replay"))
        relationships = {
            rel: await self._count(f"MATCH (:{source})-[e:{ident(rel)}]->() RETURN count(e) AS c")
            for rel in RELATIONSHIPS
        }
        return GraphCounts(nodes, relationships)

    async def _count(self, statement: str) -> int:
        rows = await self.query(statement)
        return int(rows[0]["c"])

    async def cleanup(self, ns: GraphNamespace) -> None:
        """Delete the namespace's queues, nodes (1,000 per transaction) and constraints.

        Tests beside the benchmark may restart Neo4j: the cleanup is retried for up to
        ``CLEANUP_SECONDS``, so a measurement that failed leaves nothing behind.
        """
        await delete_queues(self.channel, ns.queues)
        ns.spec_path.unlink(missing_ok=True)
        errors = (
            neo4j.exceptions.ServiceUnavailable,
            neo4j.exceptions.SessionExpired,
            neo4j.exceptions.TransientError,
            OSError,
        )
        await retrying(lambda: self._drop_graph(ns), errors, CLEANUP_SECONDS)

    async def _drop_graph(self, ns: GraphNamespace) -> None:
        for base in LABELS:
            await self.query(
                f"MATCH (n:{ident(ns.label(base))}) "
                "CALL (n) { DETACH DELETE n } "
                f"IN TRANSACTIONS OF {DELETE_CHUNK} ROWS"
            )
        rows = await self.query(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes "
            "WHERE any(label IN labelsOrTypes WHERE label STARTS WITH $prefix) RETURN name",
            prefix=ns.prefix,
        )
        for row in rows:
            await self.query(f"DROP CONSTRAINT {ident(row['name'])} IF EXISTS")

    async def neo4j_version(self) -> str:
        rows = await self.query(
            "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS version, edition"
        )
        return f"{rows[0]['version']} {rows[0]['edition']}" if rows else "?"


@asynccontextmanager
async def graph_context(workdir: Path, limit_seconds: float) -> AsyncIterator[GraphBenchContext]:
    """The broker channel and Neo4j driver of one benchmark run, closed at its end."""
    settings = Neo4jSettings()
    driver = AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth)
    try:
        async with broker_context(workdir, limit_seconds) as broker:
            yield GraphBenchContext(**broker.shared(), neo4j=settings, driver=driver)
    finally:
        await driver.close()
