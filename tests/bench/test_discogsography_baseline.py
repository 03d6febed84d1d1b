"""The discogsography-style baseline against the real RabbitMQ, PostgreSQL and Neo4j: every
record of a small Discogs dump lands as the rows, nodes and relationships it implies."""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import AsyncGraphDatabase
from neo4j.exceptions import TransientError
from psycopg import sql

from bench.discogs_dump import write_dump
from bench.discogsography_baseline import (
    dump_records,
    message_body,
    prefixed_spec,
    run_discogsography,
)
from bench.discogsography_consumers import BatchProcessor, ConsumerResult
from bench.discogsography_stores import (
    BATCH_SIZE,
    PREFETCH,
    drop_discogsography,
    table_statements,
)
from common.records import PreparedRecord, cast_key, get_path
from common.settings import Neo4jSettings, PostgresSettings
from common.spec import DatasetSpec, load_spec
from graphinator.cypher import ident
from graphinator.rows import relationship_rows
from tests.extractor.dump_support import discogs_spec
from tests.extractor.dumps.samples import ENTITIES, gzipped_copy, sample, write_releases

GENERATED_RELEASES = 190
HAND_WRITTEN = 12  # the samples' well-formed records (the others are skipped by the reader)
RUN_SECONDS = 120

EdgeKind = tuple[str, str, str]  # (start label, type, end label)


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    """The hand-written samples gzipped, plus a second releases file of generated ones."""
    directory = tmp_path / "dump"
    directory.mkdir()
    for entity in ENTITIES:
        gzipped_copy(sample(entity), directory)
    write_releases(directory / "discogs_20990102_releases.xml.gz", GENERATED_RELEASES)
    return directory


@pytest.fixture
async def dg_spec(
    tmp_path: Path, namespace: str, dump_dir: Path, graph_lock: None
) -> AsyncIterator[DatasetSpec]:
    """The Discogs spec under this test's name, its labels its own; dropped afterwards."""
    path = discogs_spec(tmp_path / "discogs.yaml", namespace, dump_dir)
    spec = prefixed_spec(load_spec(path), f"Dg{namespace}")
    yield spec
    await drop_discogsography(spec, namespace)


Records = Iterable[tuple[str, dict[str, Any]]]


def expected_rows(spec: DatasetSpec, records: Records) -> dict[str, int]:
    """Distinct keys per table."""
    keys: dict[str, set[Any]] = defaultdict(set)
    for entity, record in records:
        table = spec.entities[entity].table
        assert table is not None
        keys[table.name].add(str(record["id"]))
    return {table: len(ids) for table, ids in keys.items()}


def expected_graph(
    spec: DatasetSpec, records: Records
) -> tuple[dict[str, int], dict[EdgeKind, int]]:
    """Distinct nodes per label and distinct edges per (start, type, end) the records imply."""
    nodes: dict[str, set[Any]] = defaultdict(set)
    edges: dict[EdgeKind, set[tuple[Any, Any]]] = defaultdict(set)
    for entity, record in records:
        spec_entity = spec.entities[entity]
        graph = spec_entity.graph
        assert graph is not None
        key = cast_key(get_path(record, spec_entity.key), spec_entity.key_type)
        nodes[graph.label].add(key)
        prepared = PreparedRecord(key, b"", b"", record)
        for rel in graph.relationships:
            for row in relationship_rows(rel, prepared):
                nodes[rel.target.label].add(row["dst"])
                if rel.direction == "out":
                    edges[(graph.label, rel.type, rel.target.label)].add((key, row["dst"]))
                else:
                    edges[(rel.target.label, rel.type, graph.label)].add((row["dst"], key))
    return (
        {label: len(keys) for label, keys in nodes.items()},
        {kind: len(pairs) for kind, pairs in edges.items()},
    )


async def landed_rows(namespace: str, tables: Iterable[str]) -> dict[str, int]:
    async with await psycopg.AsyncConnection.connect(PostgresSettings().conninfo) as conn:
        counts = {}
        for table in tables:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(namespace, table))
            row = await (await conn.execute(query)).fetchone()
            assert row is not None
            counts[table] = row[0]
        return counts


async def landed_graph(
    labels: Iterable[str], kinds: Iterable[EdgeKind]
) -> tuple[dict[str, int], dict[EdgeKind, int]]:
    settings = Neo4jSettings()
    async with (
        AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth) as driver,
        driver.session(database=settings.neo4j_database) as session,
    ):

        async def count(statement: str) -> int:
            record = await (await session.run(statement)).single()
            assert record is not None
            return int(record["c"])

        nodes = {
            label: await count(f"MATCH (n:{ident(label)}) RETURN count(n) AS c") for label in labels
        }
        edges = {
            kind: await count(
                f"MATCH (:{ident(kind[0])})-[e:{ident(kind[1])}]->(:{ident(kind[2])}) "
                "RETURN count(e) AS c"
            )
            for kind in kinds
        }
        return nodes, edges


def test_dump_records_reads_file_by_file_up_to_the_limit(dump_dir: Path, tmp_path: Path) -> None:
    spec = load_spec(discogs_spec(tmp_path / "discogs.yaml", "dgread", dump_dir))
    records = list(dump_records(dump_dir, spec, 1000))
    assert len(records) == HAND_WRITTEN + GENERATED_RELEASES
    assert [entity for entity, _ in records[:4]] == ["artists"] * 4
    assert list(dump_records(dump_dir, spec, 5)) == records[:5]


def test_dump_records_samples_in_the_dumps_mix(tmp_path: Path) -> None:
    summary = write_dump(tmp_path / "dump", 2_000, seed=5)
    spec = load_spec(discogs_spec(tmp_path / "discogs.yaml", "dgmix", summary.directory))
    sample = Counter(
        entity for entity, _ in dump_records(summary.directory, spec, 400, summary.records)
    )
    assert sum(sample.values()) == 400
    for entity, count in summary.records.items():
        assert abs(sample[entity] - 400 * count / 2_000) <= 1, entity
    assert sample["releases"] > sample["artists"] > sample["labels"] > 0


def test_prefixed_spec_renames_every_label(tmp_path: Path, dump_dir: Path) -> None:
    spec = prefixed_spec(load_spec(discogs_spec(tmp_path / "d.yaml", "dgp", dump_dir)), "X")
    graphs = [entity.graph for entity in spec.entities.values() if entity.graph]
    labels = {g.label for g in graphs} | {r.target.label for g in graphs for r in g.relationships}
    assert labels == {"XArtist", "XLabel", "XMaster", "XRelease", "XGenre", "XStyle"}


def test_defaults_are_discogsography_compose_settings() -> None:
    assert (BATCH_SIZE, PREFETCH) == (500, 1000)


def test_message_body_carries_a_stable_sha256() -> None:
    first, second = message_body({"id": 1, "a": [1, 2]}), message_body({"a": [1, 2], "id": 1})
    assert first.endswith(b'"}') and b'"sha256":"' in first
    assert first.split(b'"sha256":')[1] == second.split(b'"sha256":')[1]


def test_table_statements_index_the_spec_fields(tmp_path: Path, dump_dir: Path) -> None:
    spec = load_spec(discogs_spec(tmp_path / "d.yaml", "dgt", dump_dir))
    text = " ".join(repr(statement) for statement in table_statements(spec, "dgt"))
    assert "'{parent_label,id}'" in text and "idx_labels_hash" in text


@pytest.mark.services
@pytest.mark.parametrize("drain", [False, True], ids=["concurrent", "drain"])
async def test_every_record_lands_in_both_stores(
    dg_spec: DatasetSpec, dump_dir: Path, namespace: str, drain: bool
) -> None:
    records = list(dump_records(dump_dir, dg_spec, 1000))
    # A batch smaller than the run: several flushes per entity, and one flushed on its own.
    async with asyncio.timeout(RUN_SECONDS):
        measured = await run_discogsography(
            iter(records), dg_spec, namespace, batch=50, drain=drain
        )

    total = HAND_WRITTEN + GENERATED_RELEASES
    assert {name: m.records for name, m in measured.items()} == {
        "publish": total,
        "postgres": total,
        "neo4j": total,
        "end to end": total,
    }
    end_to_end = measured["end to end"].seconds
    assert 0 < measured["publish"].seconds <= end_to_end
    slowest = max(measured["postgres"].seconds, measured["neo4j"].seconds)
    if drain:  # the consumers' clocks start after the last publish
        assert 0 < slowest < end_to_end - measured["publish"].seconds
    else:
        assert slowest == end_to_end

    rows = expected_rows(dg_spec, records)
    assert await landed_rows(namespace, rows) == rows
    nodes, edges = expected_graph(dg_spec, records)
    assert await landed_graph(nodes, edges) == (nodes, edges)


async def test_a_deadlocked_batch_is_written_again_as_a_redelivery_would() -> None:
    class Deadlocking:
        calls = 0

        async def write(self, entity: str, batch: list[Any]) -> None:
            self.calls += 1
            if self.calls < 3:
                raise TransientError("deadlock detected")

    sink = Deadlocking()
    result = ConsumerResult("neo4j")
    processor = BatchProcessor(sink, {}, result, batch=10)
    await processor._write("releases", [])
    assert (sink.calls, result.redelivered) == (3, 2)
    sink.calls = -100  # never succeeds within the delivery limit: the error is raised
    with pytest.raises(TransientError):
        await processor._write("releases", [])
