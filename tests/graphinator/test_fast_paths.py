"""The CREATE path for new keys and one MERGE per relationship target, against the real
Neo4j: the same graph as the MERGE path, replays change nothing, a key another writer
creates meanwhile sends the batch to the MERGE path and the graph still ends exact."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from neo4j import AsyncDriver

from common.records import PreparedRecord, prepare
from common.spec import load_spec
from graphinator.cypher import constraint_statements
from graphinator.sink import Neo4jSink, _write_batch
from tests.graphinator.test_graph import ARTISTS, EXPECTED, RELEASES, music_spec, snapshot

__all__ = ["music_spec"]  # the fixture, used by name

# Many releases on few targets: each distinct artist, label and genre is MERGEd once.
CROWD = [
    {
        "id": 1000 + i,
        "title": f"crowd {i}",
        "genres": ["Rock", "Pop"][: 1 + i % 2],
        "artists": [{"id": 1 + i % 3, "name": f"artist {1 + i % 3}"}, {"id": 7, "name": "Seven"}],
        "labels": [{"id": 100 + i % 2, "name": "L", "catno": f"C-{i}"}],
    }
    for i in range(60)
]


@pytest.fixture
async def sink(music_spec: Path, neo4j_driver: AsyncDriver) -> Neo4jSink:
    sink = Neo4jSink(neo4j_driver, load_spec(str(music_spec)), "neo4j")
    await sink.create_constraints()
    return sink


def prepared(rows: list[dict[str, Any]]) -> list[PreparedRecord]:
    return [prepare(row, "id", "bigint") for row in rows]


async def load_all(sink: Neo4jSink, *, create_new: bool) -> None:
    """Artists then releases, each page one batch, by the chosen node path."""
    pages = [("artists", ARTISTS[:2]), ("artists", ARTISTS[2:]), ("releases", RELEASES)]
    for entity, page in [*pages, ("releases", CROWD)]:
        async with sink.driver.session(database=sink.database) as session:
            await session.execute_write(
                _write_batch, sink._queries[entity], prepared(page), create_new
            )


async def wipe(driver: AsyncDriver) -> None:
    async with driver.session() as session:
        await (await session.run("MATCH (n) DETACH DELETE n")).consume()


async def test_create_path_gives_the_merge_paths_graph(
    sink: Neo4jSink, neo4j_driver: AsyncDriver
) -> None:
    await load_all(sink, create_new=False)
    merged = await snapshot(neo4j_driver)
    await wipe(neo4j_driver)
    await load_all(sink, create_new=True)
    created = await snapshot(neo4j_driver)
    assert created == merged
    assert created["counts"]["Release"] == EXPECTED["Release"] + len(CROWD)
    assert created["counts"]["Genre"] == 2
    assert created["counts"]["Label"] == 2


async def test_a_replayed_batch_changes_nothing(sink: Neo4jSink, neo4j_driver: AsyncDriver) -> None:
    await sink.write("artists", prepared(ARTISTS))
    first = await sink.write("releases", prepared([*RELEASES, *CROWD]))
    assert first.written == len(RELEASES) + len(CROWD)
    before = await snapshot(neo4j_driver)
    again = await sink.write("releases", prepared([*RELEASES, *CROWD]))
    assert (again.written, again.unchanged) == (0, len(RELEASES) + len(CROWD))
    assert await snapshot(neo4j_driver) == before


async def test_a_stub_is_filled_in_by_its_record_without_duplicate_edges(
    sink: Neo4jSink, neo4j_driver: AsyncDriver
) -> None:
    await sink.write("releases", prepared(RELEASES))  # artists 1, 4, 5 are stubs
    await sink.write("artists", prepared(ARTISTS))  # 1 and 4 filled in, 2 created
    graph = await snapshot(neo4j_driver)
    assert graph["counts"] == EXPECTED


async def test_a_key_another_writer_creates_meanwhile_falls_back_to_merge(
    sink: Neo4jSink, neo4j_driver: AsyncDriver, caplog: pytest.LogCaptureFixture
) -> None:
    await load_all(sink, create_new=False)
    expected = await snapshot(neo4j_driver)
    await wipe(neo4j_driver)
    await sink.write("artists", prepared(ARTISTS[:2]))

    # Another replica creates artist 4 (a different version) and commits after this
    # batch's lookup found the key absent: the CREATE meets the uniqueness constraint.
    async with neo4j_driver.session() as other:
        tx = await other.begin_transaction()
        await (await tx.run("CREATE (:Artist {id: 4, name: 'other', _hash: 'x'})")).consume()
        with caplog.at_level(logging.INFO, logger="graphinator.sink"):
            write = asyncio.create_task(sink.write("artists", prepared(ARTISTS[2:])))
            await asyncio.sleep(1.0)  # the batch now waits on artist 4's index entry
            await tx.commit()
            result = await asyncio.wait_for(write, 30)
    assert "node create conflict" in caplog.text
    assert result.written == 1
    await sink.write("releases", prepared(RELEASES))
    await sink.write("releases", prepared(CROWD))
    assert await snapshot(neo4j_driver) == expected


def test_constraints_cover_every_created_label(music_spec: Path) -> None:
    """CREATE is only safe where a uniqueness constraint catches a concurrent insert."""
    statements = " ".join(constraint_statements(load_spec(str(music_spec))))
    for label in ("Artist", "Release", "Label", "Genre"):
        assert f"FOR (n:`{label}`)" in statements
