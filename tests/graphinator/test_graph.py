"""The Neo4j write path on real RabbitMQ and Neo4j: exact graphs whatever the order."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from aio_pika.abc import AbstractChannel
from neo4j import AsyncDriver

from common.errors import ConfigError, SpecError
from common.spec import load_spec
from common.topology import Topology
from graphinator import service
from graphinator.cypher import constraint_statements, ident
from tests.support.broker import depth, publish_pages
from tests.support.pipeline import finalised_events, graphinator_settings
from tests.support.processes import restart_service

ARTISTS = [
    {"id": 1, "name": "The Group", "members": [{"id": 2, "name": "Ann"}, {"id": 3, "name": "Bo"}]},
    {"id": 2, "name": "Ann", "members": []},
    {"id": 4, "name": "Solo"},
]
RELEASES = [
    {
        "id": 10,
        "title": "First",
        "year": 1999,
        "genres": ["Rock", "Pop"],
        "artists": [{"id": 1, "name": "The Group"}],
        "labels": [{"id": 100, "name": "Label A", "catno": "A-1"}],
    },
    {
        "id": 11,
        "title": 'Second\ttab "q"',
        "year": 2001,
        "genres": ["Rock"],
        "artists": [{"id": 1, "name": "The Group"}, {"id": 4, "name": "Solo"}],
        "labels": [
            {"id": 100, "name": "Label A", "catno": "A-2"},
            {"id": 101, "name": "Label B", "catno": None},
        ],
    },
    {
        "id": 12,
        "title": "Third",
        "genres": [],
        "artists": [{"id": 5, "name": "Not Loaded"}],
        "labels": [],
    },
]
# Hand-checked: Artist 1,2,3,4,5 (3 and 5 are stubs), Release 10-12, Label 100-101, Genre 2.
EXPECTED = {
    "Artist": 5,
    "Release": 3,
    "Label": 2,
    "Genre": 2,
    "MEMBER_OF": 2,
    "BY": 4,
    "ON": 3,
    "IS": 3,
}


@pytest.fixture
def music_spec(tmp_path: Path, namespace: str) -> Path:
    raw = yaml.safe_load((Path(__file__).parent / "music.yaml").read_text())
    raw["name"] = namespace
    path = tmp_path / "music.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


async def load(
    spec: Path, namespace: str, amqp: AbstractChannel, deliveries: Iterable[tuple[str, list[Any]]]
) -> None:
    """Publish (entity, page) deliveries in the given order, then run graphinator to the end."""
    for entity in ("artists", "releases"):
        await Topology().declare_queue(amqp, "graphinator", namespace, entity)
    for number, (entity, page) in enumerate(deliveries):
        await publish_pages(
            amqp, namespace, [page], entity=entity, end=False, job_id=f"job{number}"
        )
    for entity in ("artists", "releases"):
        await publish_pages(amqp, namespace, [], entity=entity)
    stop = asyncio.Event()
    async with finalised_events(namespace) as next_event:
        task = asyncio.create_task(service.run(graphinator_settings(spec), stop))
        try:
            await next_event()
            await next_event()
        finally:
            stop.set()
            await task


async def snapshot(driver: AsyncDriver) -> dict[str, Any]:
    async with driver.session() as session:
        nodes = await (
            await session.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
        ).values()
        rels = await (
            await session.run(
                "MATCH (a)-[e]->(b) RETURN labels(a) AS la, properties(a) AS a, type(e) AS t, "
                "properties(e) AS p, labels(b) AS lb, properties(b) AS b"
            )
        ).values()
    counts: dict[str, int] = {}
    for labels, _ in nodes:
        counts[labels[0]] = counts.get(labels[0], 0) + 1
    for _, _, kind, _, _, _ in rels:
        counts[kind] = counts.get(kind, 0) + 1
    return {"counts": counts, "nodes": sorted(map(repr, nodes)), "rels": sorted(map(repr, rels))}


def in_order() -> list[tuple[str, list[Any]]]:
    return [
        ("artists", ARTISTS[:2]),
        ("artists", ARTISTS[2:]),
        ("releases", RELEASES[:1]),
        ("releases", RELEASES[1:]),
    ]


async def test_exact_graph_for_a_hand_checked_sample(
    music_spec: Path, namespace: str, neo4j_driver: AsyncDriver, amqp: AbstractChannel
) -> None:
    await load(music_spec, namespace, amqp, in_order())
    graph = await snapshot(neo4j_driver)
    assert graph["counts"] == EXPECTED
    async with neo4j_driver.session() as session:
        on = await (
            await session.run(
                "MATCH (:Release {id: 11})-[e:ON]->(l:Label) RETURN l.id AS id, e.catno AS catno "
                "ORDER BY id"
            )
        ).values()
        members = await (
            await session.run(
                "MATCH (m:Artist)-[:MEMBER_OF]->(:Artist {id: 1}) RETURN m.id, m.name ORDER BY m.id"
            )
        ).values()
        stub = await (await session.run("MATCH (a:Artist {id: 5}) RETURN a.name")).values()
    assert on == [[100, "A-2"], [101, None]]
    assert members == [[2, "Ann"], [3, "Bo"]]
    assert stub == [["Not Loaded"]]


async def test_reverse_order_and_replay_give_the_same_graph(
    music_spec: Path, namespace: str, neo4j_driver: AsyncDriver, amqp: AbstractChannel
) -> None:
    await load(music_spec, namespace, amqp, in_order())
    forward = await snapshot(neo4j_driver)
    await wipe(neo4j_driver)
    reverse = [(entity, page[::-1]) for entity, page in in_order()[::-1]]
    await load(music_spec, namespace, amqp, reverse)
    assert await snapshot(neo4j_driver) == forward
    await load(music_spec, namespace, amqp, in_order() + in_order())  # every message twice
    assert await snapshot(neo4j_driver) == forward


async def test_a_changed_record_drops_its_stale_edges(
    music_spec: Path, namespace: str, neo4j_driver: AsyncDriver, amqp: AbstractChannel
) -> None:
    await load(music_spec, namespace, amqp, in_order())
    changed = dict(
        RELEASES[1],
        artists=[{"id": 4, "name": "Solo"}],
        genres=["Jazz"],
        labels=[{"id": 101, "name": "Label B", "catno": "B-9"}],
    )
    await load(music_spec, namespace, amqp, [("releases", [changed])])
    async with neo4j_driver.session() as session:
        edges = await (
            await session.run(
                "MATCH (:Release {id: 11})-[e]->(n) "
                "RETURN type(e), coalesce(n.id, n.name), e.catno ORDER BY type(e)"
            )
        ).values()
    assert edges == [["BY", 4, None], ["IS", "Jazz", None], ["ON", 101, "B-9"]]
    counts = (await snapshot(neo4j_driver))["counts"]
    assert (counts["BY"], counts["ON"], counts["IS"]) == (3, 2, 3)  # 10: Rock, Pop; 11: Jazz


async def wipe(driver: AsyncDriver) -> None:
    async with driver.session() as session:
        await (await session.run("MATCH (n) DETACH DELETE n")).consume()


@pytest.mark.parametrize("bad", ["Art`ist", "Art ist", "A})-[:X]->(b", "A'B"])
def test_cypher_identifiers_are_strict(bad: str) -> None:
    with pytest.raises(ConfigError, match="refusing Cypher identifier"):
        ident(bad)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("label", "Artist`) DETACH DELETE n //"), ("label", "Art ist"), ("type", "BY})-[:X]->(y")],
)
def test_specs_with_injected_labels_or_types_are_refused(
    music_spec: Path, field: str, bad: str
) -> None:
    raw = yaml.safe_load(music_spec.read_text())
    graph = raw["entities"]["releases"]["graph"]
    (graph if field == "label" else graph["relationships"][0])[field] = bad
    music_spec.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="pattern"):
        load_spec(music_spec)


def test_one_constraint_per_label(music_spec: Path) -> None:
    statements = constraint_statements(load_spec(music_spec))
    assert len(statements) == 4
    assert "FOR (n:`Genre`) REQUIRE n.`name` IS UNIQUE" in " ".join(statements)


@pytest.mark.skipif(
    os.environ.get("BACKFILL_TESTCONTAINERS") == "1", reason="restarts the local Neo4j"
)
async def test_neo4j_restart_mid_run_loses_nothing(
    music_spec: Path,
    namespace: str,
    neo4j_driver: AsyncDriver,
    amqp: AbstractChannel,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = 7_000_000  # a key range no other test uses
    pages = [
        [
            {
                "id": base + p * 100 + i,
                "title": f"t{i}",
                "genres": [f"g{i % 7}"],
                "artists": [{"id": 10_000 + i % 50, "name": "x"}],
                "labels": [],
            }
            for i in range(100)
        ]
        for p in range(100)
    ]
    await Topology().declare_queue(amqp, "graphinator", namespace, "releases")
    await Topology().declare_queue(amqp, "graphinator", namespace, "artists")
    stop = asyncio.Event()
    settings = graphinator_settings(music_spec).model_copy(deep=True)
    settings.batch.batch_size = 500
    settings.batch.prefetch = 10
    async with finalised_events(namespace) as next_event:
        task = asyncio.create_task(service.run(settings, stop))
        # Pages keep coming for 20 s, so graphinator has writes to make while Neo4j is down
        # (all at once, it could have written them all before the restart began).
        publishing = asyncio.create_task(
            publish_pages(amqp, namespace, pages, entity="releases", pace=0.2)
        )
        await asyncio.sleep(1.0)
        await asyncio.to_thread(restart_service, "neo4j")
        await publishing
        event = await next_event(180)
        stop.set()
        await task
    # Retried by the driver's managed transaction, or beyond its retry time by the processor.
    noticed = "will be retried" in caplog.text or "retrying graphinator write" in caplog.text
    assert noticed, "the outage was not noticed"
    assert event["landed"]["nodes"] >= 10_000
    async with neo4j_driver.session() as session:
        counts = await (
            await session.run(
                "MATCH (r:Release) WHERE $base <= r.id < $base + 10000 "
                "OPTIONAL MATCH (r)-[e:BY]->(:Artist) RETURN count(DISTINCT r), count(e)",
                base=base,
            )
        ).values()
    assert counts == [[10_000, 10_000]]
    dlq = Topology.dead_letter_queue_name("graphinator", namespace, "releases")
    assert await depth(amqp, dlq) == 0, "an outage must never dead-letter good data"
