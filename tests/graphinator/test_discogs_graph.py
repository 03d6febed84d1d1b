"""The bundled Discogs spec on real Neo4j and PostgreSQL: the graph a Discogs user expects,
whatever order the dump files load in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from aio_pika.abc import AbstractChannel
from neo4j import AsyncDriver

from common.spec import BUNDLED_DIR
from common.topology import Topology
from extractor.sources.dumps.discogs import iter_records
from tests.conftest import wipe_graph
from tests.extractor.dumps.samples import ENTITIES, sample
from tests.support.broker import publish_pages
from tests.support.pipeline import finalised_events, running_consumers

Edge = tuple[str, Any, str, str, Any, Any]


@pytest.fixture
def discogs_spec(tmp_path: Path, namespace: str) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "discogs.yaml").read_text())
    raw["name"] = namespace
    path = tmp_path / "discogs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def records() -> dict[str, list[dict[str, Any]]]:
    return {entity: list(iter_records(sample(entity))) for entity in ENTITIES}


def expected_edges(data: dict[str, list[dict[str, Any]]]) -> set[Edge]:
    """The edges DESIGN.md describes, derived by hand from the records (not from the spec)."""
    edges: set[Edge] = set()
    for artist in data["artists"]:
        edges |= {
            ("Artist", m["id"], "MEMBER_OF", "Artist", artist["id"], None)
            for m in artist["members"]
            if m["id"]
        }
        edges |= {
            ("Artist", a["id"], "ALIAS_OF", "Artist", artist["id"], None)
            for a in artist["aliases"]
            if a["id"]
        }
    for label in data["labels"]:
        parent = label["parent_label"]
        if parent and parent["id"]:
            edges.add(("Label", label["id"], "SUBLABEL_OF", "Label", parent["id"], None))
    for kind, node in (("masters", "Master"), ("releases", "Release")):
        for record in data[kind]:
            edges |= {
                (node, record["id"], "BY", "Artist", a["id"], None)
                for a in record["artists"]
                if a["id"]
            }
            edges |= {(node, record["id"], "IS", "Genre", g, None) for g in record["genres"]}
            edges |= {(node, record["id"], "IS", "Style", s, None) for s in record["styles"]}
    for release in data["releases"]:
        catnos = {label["id"]: label["catno"] for label in release["labels"] if label["id"]}
        edges |= {("Release", release["id"], "ON", "Label", lid, c) for lid, c in catnos.items()}
        if release["master_id"]:
            edges.add(
                ("Release", release["id"], "DERIVED_FROM", "Master", release["master_id"], None)
            )
    return edges


async def graph_edges(driver: AsyncDriver) -> set[Edge]:
    async with driver.session() as session:
        rows = await (
            await session.run(
                "MATCH (a)-[e]->(b) RETURN labels(a)[0], coalesce(a.id, a.name), type(e), "
                "labels(b)[0], coalesce(b.id, b.name), e.catno"
            )
        ).values()
    return {tuple(row) for row in rows}  # type: ignore[misc]


async def load(
    spec: Path, namespace: str, amqp: AbstractChannel, order: list[tuple[str, list[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    for consumer in ("tableinator", "graphinator"):
        for entity in ENTITIES:
            await Topology().declare_queue(amqp, consumer, namespace, entity)
    for entity, pages in order:
        await publish_pages(amqp, namespace, [pages], entity=entity)
    async with finalised_events(namespace) as next_event, running_consumers(spec, namespace):
        return [await next_event() for _ in range(2 * len(ENTITIES))]


async def test_discogs_samples_make_the_expected_graph_in_any_order(
    discogs_spec: Path,
    namespace: str,
    neo4j_driver: AsyncDriver,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
) -> None:
    data = records()
    expected = expected_edges(data)
    forward = [(entity, data[entity]) for entity in ENTITIES]
    await load(discogs_spec, namespace, amqp, forward)
    assert await graph_edges(neo4j_driver) == expected
    async with neo4j_driver.session() as session:
        stubs = await (
            await session.run(
                "MATCH (n) WHERE n._hash IS NULL AND NOT n:Genre AND NOT n:Style "
                "RETURN labels(n)[0] AS label, n.id AS id ORDER BY label, id"
            )
        ).values()
    known = {(label[:-1].title(), r["id"]) for label, rs in data.items() for r in rs}
    assert all((label, node_id) not in known for label, node_id in stubs)
    for entity in ENTITIES:
        cur = await pg.execute(f'SELECT count(*) FROM "{namespace}".{entity}')
        assert await cur.fetchone() == (len(data[entity]),)

    await wipe_graph(neo4j_driver)
    backward = [(entity, data[entity][::-1]) for entity in reversed(ENTITIES)]
    await load(discogs_spec, namespace, amqp, backward)
    assert await graph_edges(neo4j_driver) == expected
