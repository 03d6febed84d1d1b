"""Both stores as comparable sets, and the comparison of a faulted run with the reference.

PostgreSQL: per entity table, key -> hash of the whole row but ``updated_at`` (the content
hash, the document and the typed columns). Neo4j (one database, so the graph of the run
that just ended): nodes of the spec's labels as (label, key) -> properties hash, and
relationships as (start label, start key, type, end label, end key, properties hash),
counted, so a relationship MERGEd twice shows as a duplicate.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import neo4j.exceptions
import orjson
import psycopg
from neo4j import AsyncDriver
from psycopg import sql

from common.spec import DatasetSpec

NodeKey = tuple[str, Any]
WIPE_ATTEMPTS = 5
RelKey = tuple[str, Any, str, str, Any, str]


def props_hash(props: dict[str, Any]) -> str:
    return hashlib.blake2b(
        orjson.dumps(props, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).hexdigest()


@dataclass
class Snapshot:
    """What a run left in both stores."""

    rows: Counter[tuple[str, Any]] = field(default_factory=Counter)  # (table, key)
    row_hashes: dict[tuple[str, Any], str] = field(default_factory=dict)
    nodes: Counter[NodeKey] = field(default_factory=Counter)
    node_hashes: dict[NodeKey, str] = field(default_factory=dict)
    rels: Counter[RelKey] = field(default_factory=Counter)

    def sizes(self) -> dict[str, int]:
        return {"rows": len(self.rows), "nodes": len(self.nodes), "relationships": len(self.rels)}


@dataclass(frozen=True)
class Difference:
    """A faulted run against the reference; every figure 0 means identical stores."""

    lost: dict[str, int]
    duplicated: dict[str, int]
    differing: dict[str, int]
    unexpected: dict[str, int]

    @property
    def total_lost(self) -> int:
        return sum(self.lost.values())

    @property
    def total_duplicated(self) -> int:
        return sum(self.duplicated.values())

    @property
    def total_differing(self) -> int:
        return sum(self.differing.values()) + sum(self.unexpected.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "lost": self.lost,
            "duplicated": self.duplicated,
            "differing": self.differing,
            "unexpected": self.unexpected,
        }


def compare(reference: Snapshot, actual: Snapshot) -> Difference:
    """Lost: in the reference only; unexpected: in the run only; differing: other content."""
    lost, duplicated, differing, unexpected = {}, {}, {}, {}
    for what, ref, got in (
        ("rows", reference.rows, actual.rows),
        ("nodes", reference.nodes, actual.nodes),
        ("relationships", reference.rels, actual.rels),
    ):
        lost[what] = sum(1 for key in ref if key not in got)
        unexpected[what] = sum(1 for key in got if key not in ref)
        duplicated[what] = sum(count - 1 for count in got.values() if count > 1)
    differing["rows"] = _differing(reference.row_hashes, actual.row_hashes)
    differing["nodes"] = _differing(reference.node_hashes, actual.node_hashes)
    differing["relationships"] = 0  # a relationship's properties are part of its key
    return Difference(lost, duplicated, differing, unexpected)


def _differing(reference: dict[Any, str], actual: dict[Any, str]) -> int:
    return sum(1 for key, digest in reference.items() if key in actual and actual[key] != digest)


async def snapshot(
    conn: psycopg.AsyncConnection[Any], driver: AsyncDriver, spec: DatasetSpec, schema: str
) -> Snapshot:
    taken = Snapshot()
    await _snapshot_tables(conn, spec, schema, taken)
    await _snapshot_graph(driver, spec, taken)
    return taken


async def _snapshot_tables(
    conn: psycopg.AsyncConnection[Any], spec: DatasetSpec, schema: str, taken: Snapshot
) -> None:
    for entity in spec.entities.values():
        if entity.table is None:
            continue
        query = sql.SQL("SELECT key::text, md5((to_jsonb(t) - 'updated_at')::text) FROM {} t")
        table = sql.Identifier(schema, entity.table.name)
        cur = await conn.execute(query.format(table))
        for key, digest in await cur.fetchall():
            taken.rows[(entity.table.name, key)] += 1
            taken.row_hashes[(entity.table.name, key)] = digest


def graph_keys(spec: DatasetSpec) -> dict[str, str]:
    """Node label -> key property, for every label the spec writes."""
    keys: dict[str, str] = {}
    for entity in spec.entities.values():
        if entity.graph is None:
            continue
        keys[entity.graph.label] = entity.graph.key_property
        for rel in entity.graph.relationships:
            keys[rel.target.label] = rel.target.key
    return keys


def _key_case(keys: dict[str, str], var: str) -> str:
    """A Cypher CASE giving a node's key by its label (names passed the spec's patterns)."""
    arms = " ".join(f"WHEN {var}:{label} THEN {var}.{prop}" for label, prop in keys.items())
    return f"CASE {arms} END"


async def _snapshot_graph(driver: AsyncDriver, spec: DatasetSpec, taken: Snapshot) -> None:
    keys = graph_keys(spec)
    nodes = (
        "MATCH (n) WHERE any(l IN labels(n) WHERE l IN $labels) "
        f"RETURN [l IN labels(n) WHERE l IN $labels][0] AS label, {_key_case(keys, 'n')} AS key,"
        " properties(n) AS props"
    )
    rels = (
        "MATCH (a)-[e]->(b) WHERE any(l IN labels(a) WHERE l IN $labels) "
        f"RETURN [l IN labels(a) WHERE l IN $labels][0] AS al, {_key_case(keys, 'a')} AS ak, "
        f"type(e) AS t, [l IN labels(b) WHERE l IN $labels][0] AS bl, {_key_case(keys, 'b')} AS bk,"
        " properties(e) AS props"
    )
    labels = sorted(keys)
    async with driver.session() as session:
        result = await session.run(nodes, labels=labels)
        async for label, key, props in result:
            taken.nodes[(label, key)] += 1
            taken.node_hashes[(label, key)] = props_hash(props)
        result = await session.run(rels, labels=labels)
        async for al, ak, kind, bl, bk, props in result:
            taken.rels[(al, ak, kind, bl, bk, props_hash(props))] += 1


async def wipe_graph(driver: AsyncDriver, spec: DatasetSpec) -> None:
    """Delete the spec's nodes (and their relationships) in small transactions; a transient
    error (the memory pool is shared with whoever else uses the server) is retried."""
    query = (
        "MATCH (n) WHERE any(l IN labels(n) WHERE l IN $labels) "
        "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 1000 ROWS"
    )
    for attempt in range(WIPE_ATTEMPTS):
        try:
            async with driver.session() as session:
                result = await session.run(query, labels=sorted(graph_keys(spec)))
                await result.consume()
            return
        except neo4j.exceptions.TransientError:
            if attempt == WIPE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(2.0 * (attempt + 1))
