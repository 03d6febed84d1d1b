"""Nested field paths end to end: a demo job whose relationships come from
``players[*].userid`` and ``players[0].userid``, and whose columns read ``players[0]...``,
into the real PostgreSQL and Neo4j."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import yaml
from neo4j import AsyncDriver

from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, run_backfill
from tests.support.pipeline import extractor_settings, running_consumers

SIZE = 500


def nested_spec(spec: Path) -> Path:
    raw = yaml.safe_load(spec.read_text())
    entity = raw["entities"]["replays"]
    entity["table"]["columns"].update(
        first_player={"field": "players[0].userid"},
        first_rating={"field": "players[0].rating", "type": "integer"},
        sides={"field": "players", "type": "jsonb"},
    )
    entity["graph"]["properties"]["userids"] = "players[*].userid"
    entity["graph"]["relationships"] = [
        {
            "type": "PLAYED_BY",
            "field": "players[*].userid",
            "target": {"label": "Player", "key": "userid"},
        },
        {
            "type": "OPENED_BY",
            "field": "players[0].userid",
            "target": {"label": "Player", "key": "userid"},
        },
    ]
    spec.write_text(yaml.safe_dump(raw))
    return spec


async def test_relationships_and_columns_from_nested_paths(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: Any,
) -> None:
    spec = nested_spec(demo_spec_file)
    dataset = Dataset(size=SIZE)
    records = [dataset.record(i) for i in range(SIZE)]
    async with serve_demo_api(dataset) as url, running_consumers(spec, namespace):
        report = await run_backfill(extractor_settings(spec, url), JobOptions(wait_timeout=120))
    assert report.ok, report.as_dict()

    cur = await pg.execute(f'SELECT key, first_player, first_rating FROM "{namespace}".replays')
    rows = {key: (player, rating) for key, player, rating in await cur.fetchall()}
    assert rows == {
        r["id"]: (r["players"][0]["userid"], r["players"][0]["rating"]) for r in records
    }
    async with neo4j_driver.session() as session:
        played = await (
            await session.run("MATCH (r:Replay)-[:PLAYED_BY]->(p:Player) RETURN r.id, p.userid")
        ).values()
        opened = await (
            await session.run("MATCH (r:Replay)-[:OPENED_BY]->(p:Player) RETURN r.id, p.userid")
        ).values()
        userids = await (await session.run("MATCH (r:Replay) RETURN r.id, r.userids")).values()
    assert sorted(map(tuple, played)) == sorted(
        {(r["id"], p["userid"]) for r in records for p in r["players"]}
    )
    assert sorted(map(tuple, opened)) == sorted(
        (r["id"], r["players"][0]["userid"]) for r in records
    )
    assert dict(map(tuple, userids)) == {
        r["id"]: [p["userid"] for p in r["players"]] for r in records
    }
