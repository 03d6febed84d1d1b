"""The whole pipeline on the real services: demo API -> extractor -> RabbitMQ -> both stores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from neo4j import AsyncDriver

from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, run_backfill
from tests.support.pipeline import extractor_settings, running_consumers

SIZE = 3_000


async def run_job(spec: Path, url: str) -> Any:
    report = await run_backfill(extractor_settings(spec, url), JobOptions(wait_timeout=120))
    assert report.ok, report.as_dict()
    return report


def expected_graph(dataset: Dataset) -> dict[str, Any]:
    """What the graph must hold, computed from the demo dataset itself."""
    records = [dataset.record(i) for i in range(dataset.size)]
    players = {p["userid"] for r in records for p in r["players"]}
    played_by = sum(len({p["userid"] for p in r["players"]}) for r in records)
    return {
        "records": records,
        "players": len(players),
        "formats": len({r["format"] for r in records}),
        "played_by": played_by,
    }


async def graph_counts(driver: AsyncDriver) -> dict[str, int]:
    queries = {
        "replays": "MATCH (n:Replay) RETURN count(n) AS c",
        "players": "MATCH (n:Player) RETURN count(n) AS c",
        "formats": "MATCH (n:Format) RETURN count(n) AS c",
        "played_by": "MATCH (:Replay)-[e:PLAYED_BY]->(:Player) RETURN count(e) AS c",
        "in_format": "MATCH (:Replay)-[e:IN_FORMAT]->(:Format) RETURN count(e) AS c",
    }
    async with driver.session() as session:
        return {
            name: (await (await session.run(q)).single(strict=True))["c"]
            for name, q in queries.items()
        }


async def test_demo_dataset_lands_in_both_stores(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: Any,
) -> None:
    dataset = Dataset(size=SIZE)
    truth = expected_graph(dataset)
    async with serve_demo_api(dataset) as url, running_consumers(demo_spec_file, namespace):
        report = await run_job(demo_spec_file, url)

    assert report.records == SIZE
    assert report.landed["tableinator"]["replays"]["rows"] == SIZE
    assert report.landed["graphinator"]["replays"]["nodes"] == SIZE
    cur = await pg.execute(f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".replays')
    assert await cur.fetchone() == (SIZE, SIZE)
    counts = await graph_counts(neo4j_driver)
    assert counts == {
        "replays": SIZE,
        "players": truth["players"],
        "formats": truth["formats"],
        "played_by": truth["played_by"],
        "in_format": SIZE,
    }
    await assert_known_records(pg, neo4j_driver, namespace, truth["records"])


async def assert_known_records(
    pg: psycopg.AsyncConnection[Any], driver: AsyncDriver, namespace: str, records: list[Any]
) -> None:
    """A two-player and a four-player replay: exact relationships, typed columns, document."""
    two = next(r for r in records if len(r["players"]) == 2 and r["rating"] is not None)
    four = next(r for r in records if len(r["players"]) == 4)
    for record in (two, four):
        async with driver.session() as session:
            result = await session.run(
                "MATCH (r:Replay {id: $id})-[e:PLAYED_BY]->(p:Player) "
                "RETURN p.userid AS userid, e.side AS side, p.name AS name",
                id=record["id"],
            )
            edges = {(row["userid"], row["side"]) async for row in result}
            fmt = await (
                await session.run(
                    "MATCH (:Replay {id: $id})-[:IN_FORMAT]->(f:Format) RETURN f.name AS name",
                    id=record["id"],
                )
            ).single(strict=True)
        assert edges == {(p["userid"], p["side"]) for p in record["players"]}
        assert fmt["name"] == record["format"]
        cur = await pg.execute(
            f'SELECT format, uploadtime, rating, doc FROM "{namespace}".replays WHERE key = %s',
            (record["id"],),
        )
        assert await cur.fetchone() == (
            record["format"],
            record["uploadtime"],
            record["rating"],
            record,
        )
    assert Counter(len(r["players"]) for r in records)[4] > 0


async def snapshot(
    pg: psycopg.AsyncConnection[Any], driver: AsyncDriver, namespace: str
) -> tuple[Any, ...]:
    cur = await pg.execute(
        f'SELECT key, content_hash, doc, updated_at FROM "{namespace}".replays ORDER BY key'
    )
    rows = await cur.fetchall()
    async with driver.session() as session:
        nodes = await (
            await session.run(
                "MATCH (n) WHERE n:Replay OR n:Player OR n:Format "
                "RETURN labels(n) AS labels, properties(n) AS props"
            )
        ).values()
        rels = await (
            await session.run(
                "MATCH (a:Replay)-[e]->(b) "
                "RETURN elementId(a) AS a, type(e) AS t, properties(e) AS p, "
                "elementId(b) AS b"
            )
        ).values()
    return (
        rows,
        sorted(map(repr, nodes)),
        sorted(repr((t, p)) for _, t, p, _ in rels),
        len(rels),
    )


async def test_running_the_same_job_twice_changes_nothing(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: Any,
) -> None:
    dataset = Dataset(size=1_000)
    async with serve_demo_api(dataset) as url, running_consumers(demo_spec_file, namespace):
        await run_job(demo_spec_file, url)
        first = await snapshot(pg, neo4j_driver, namespace)
        second_report = await run_job(demo_spec_file, url)
        second = await snapshot(pg, neo4j_driver, namespace)
    assert len(first[0]) == 1_000
    assert first == second
    assert second_report.records == 1_000
