"""The direct COPY of all-new batches, against the real PostgreSQL: the same rows as the
upsert, a concurrent writer's key caught, a bad value isolated to its record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml
from aio_pika.abc import AbstractChannel
from psycopg_pool import AsyncConnectionPool

from common.records import PreparedRecord, prepare
from common.settings import PostgresSettings
from common.spec import DatasetSpec, load_spec
from common.topology import Topology
from tableinator.sink import PostgresSink, prepare_database, stage_configurer
from tests.support.broker import declare, get_all, publish_pages
from tests.tableinator.test_sink import replay, run_until_finalised

COLUMNS = {
    "title": {"field": "title"},
    "year": {"field": "year", "type": "integer"},
    "big": {"field": "big", "type": "bigint"},
    "score": {"field": "score", "type": "double precision"},
    "number": {"field": "number"},  # a JSON number in a text column: jsonb's digits
    "flag": {"field": "flag", "type": "boolean"},
    "seen": {"field": "seen", "type": "timestamptz"},
    "day": {"field": "day", "type": "date"},
    "extra": {"field": "extra", "type": "jsonb"},
    "deep": {"field": "a.b.c"},
    "listed": {"field": "tags"},  # a list in a text column: left to the upsert's cast
    "second": {"field": "pair[1]"},  # an index: #>> '{pair,1}'
    "first_name": {"field": "items[0].name", "type": "jsonb"},
}

ROWS: list[dict[str, Any]] = [
    {"id": "plain", "title": "x", "year": 1999, "big": 2**62, "score": 0.1, "number": 1e20},
    {"id": "odd\ttext\\N\n", "title": "tab\there\\ back\r\n", "number": -0.0, "flag": True},
    {"id": "nulls", "title": None, "extra": None, "a": {"b": None}, "flag": False},
    {"id": "nested", "a": {"b": {"c": "deep"}}, "extra": {"z": [1, 2.5, "s"], "a": None}},
    {"id": "dates", "seen": "2024-02-29T23:59:59+05:30", "day": "1995-01-02", "score": 1e-7},
    {"id": "numbers", "number": 100.0, "score": 1e300, "year": -5, "a": "scalar"},
    {"id": "bools", "title": True, "number": 123456789012345680.0},
    {"id": "indexed", "pair": ["a", "b"], "items": [{"name": {"n": 1}}, {"name": "later"}]},
    {"id": "short", "pair": ["only"], "items": []},
    {"id": "keyed", "pair": {"1": "by key"}, "items": {"0": {"name": "by key"}}},
]


def spec_for(namespace: str, tmp_path: Path, columns: dict[str, Any]) -> DatasetSpec:
    raw = {
        "name": namespace,
        "source": {"kind": "http", "base_url": "http://127.0.0.1:1", "slicing": {"kind": "none"}},
        "entities": {
            "things": {
                "path": "/things",
                "paginator": {"kind": "page_number", "param": "page"},
                "key": "id",
                "table": {"name": "things", "columns": columns, "indexes": ["title"]},
            }
        },
    }
    path = tmp_path / "things.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_spec(str(path))


@pytest.fixture
async def sink(
    namespace: str, tmp_path: Path, pg: psycopg.AsyncConnection[Any]
) -> AsyncIterator[PostgresSink]:
    spec = spec_for(namespace, tmp_path, COLUMNS)
    settings = PostgresSettings()
    async with AsyncConnectionPool(
        settings.conninfo, min_size=1, max_size=2, configure=stage_configurer(spec), open=False
    ) as pool:
        async with pool.connection() as conn:
            await prepare_database(conn, spec, namespace)
        yield PostgresSink(pool, spec, namespace)


def prepared(rows: list[dict[str, Any]]) -> list[PreparedRecord]:
    return [prepare(row, "id", "text") for row in rows]


def spy_direct(sink: PostgresSink) -> list[bool]:
    """Record what each direct COPY attempt returned."""
    taken: list[bool] = []
    real = sink._copy_direct

    async def copy_direct(*args: Any) -> bool:
        taken.append(await real(*args))
        return taken[-1]

    sink._copy_direct = copy_direct  # type: ignore[method-assign,assignment]
    return taken


async def table(pg: psycopg.AsyncConnection[Any], namespace: str) -> dict[str, tuple[Any, ...]]:
    names = ", ".join(f'"{name}"' for name in COLUMNS)
    cur = await pg.execute(f'SELECT key, content_hash, doc, {names} FROM "{namespace}".things')
    return {row[0]: row[1:] for row in await cur.fetchall()}


async def test_an_all_new_batch_is_copied_directly_with_the_upserts_values(
    sink: PostgresSink, pg: psycopg.AsyncConnection[Any], namespace: str
) -> None:
    taken = spy_direct(sink)
    result = await sink.write("things", prepared(ROWS))
    assert taken == [True]
    assert result.written == len(ROWS)
    direct = await table(pg, namespace)

    # The same records through the upsert: the rows must be equal, column for column.
    await pg.execute(f'TRUNCATE "{namespace}".things')
    await pg.execute(
        f'INSERT INTO "{namespace}".things (key, content_hash, doc) VALUES '
        "('plain', '\\x00', '{}')"
    )
    result = await sink.write("things", prepared(ROWS))
    assert taken == [True]  # a key the table held: the upsert, no direct attempt
    assert result.written == len(ROWS)
    assert await table(pg, namespace) == direct
    assert direct["plain"][4] == 2**62
    assert direct["plain"][6] == "100000000000000000000"
    assert direct["odd\ttext\\N\n"][6] == "0.0"
    assert direct["nested"][11] == "deep"
    assert direct["indexed"][13:] == ("b", {"n": 1})
    assert direct["short"][13:] == (None, None)
    assert direct["keyed"][13:] == ("by key", "by key")


async def test_a_list_in_a_text_column_is_left_to_the_upsert(
    sink: PostgresSink, pg: psycopg.AsyncConnection[Any], namespace: str
) -> None:
    taken = spy_direct(sink)
    result = await sink.write("things", prepared([*ROWS, {"id": "listed", "tags": [1, "a"]}]))
    assert taken == [False]
    assert result.written == len(ROWS) + 1
    assert (await table(pg, namespace))["listed"][12] == '[1, "a"]'


async def test_a_batch_that_mixes_new_and_unchanged_keys_is_copied_directly(
    sink: PostgresSink, pg: psycopg.AsyncConnection[Any], namespace: str
) -> None:
    taken = spy_direct(sink)
    await sink.write("things", prepared(ROWS[:3]))
    result = await sink.write("things", prepared(ROWS))
    assert taken == [True, True]
    assert (result.written, result.unchanged) == (len(ROWS) - 3, 3)
    assert set(await table(pg, namespace)) == {row["id"] for row in ROWS}


async def test_a_key_another_writer_inserted_falls_back_to_the_upsert(
    sink: PostgresSink, pg: psycopg.AsyncConnection[Any], namespace: str
) -> None:
    taken = spy_direct(sink)
    real_lookup = sink._new_or_changed

    async def lookup_then_concurrent_insert(*args: Any) -> tuple[list[PreparedRecord], int]:
        found = await real_lookup(*args)
        # another replica commits the same key between this batch's lookup and its COPY
        await pg.execute(
            f'INSERT INTO "{namespace}".things (key, content_hash, doc) VALUES'
            " ('plain', '\\x00', '{\"stale\": true}')"
        )
        return found

    sink._new_or_changed = lookup_then_concurrent_insert  # type: ignore[method-assign,assignment]
    result = await sink.write("things", prepared(ROWS))
    assert taken == [False]
    assert result.written == len(ROWS)
    rows = await table(pg, namespace)
    assert set(rows) == {row["id"] for row in ROWS}
    assert rows["plain"][1] == ROWS[0]  # the batch's version replaced the other writer's
    assert rows["plain"][0] == prepare(ROWS[0], "id", "text").hash


async def test_a_bad_value_fails_the_direct_copy_and_the_upsert_alike(
    sink: PostgresSink, pg: psycopg.AsyncConnection[Any], namespace: str
) -> None:
    taken = spy_direct(sink)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation):
        await sink.write("things", prepared([*ROWS, {"id": "bad", "year": "MCMXCIX"}]))
    assert taken == [False]  # it fell back, and the upsert raised for the processor to split
    assert await table(pg, namespace) == {}


@pytest.mark.parametrize("keyed_by", ["id", None], ids=["keyed", "v1"])
async def test_a_bad_cast_in_an_all_new_batch_dead_letters_only_that_record(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    keyed_by: str | None,
) -> None:
    await declare(amqp, "tableinator", namespace)
    page = [replay(f"k{i}", rating=i) for i in range(40)]
    page[17] = replay("badcast", uploadtime="yesterday")
    await publish_pages(amqp, namespace, [page], keyed_by=keyed_by)
    await run_until_finalised(demo_spec_file, namespace)

    cur = await pg.execute(f'SELECT key, rating, uploadtime FROM "{namespace}".replays')
    landed = {key: (rating, ts) for key, rating, ts in await cur.fetchall()}
    assert set(landed) == {f"k{i}" for i in range(40) if i != 17}
    assert all(landed[f"k{i}"] == (i, 1_700_000_000) for i in range(40) if i != 17)
    dead = await get_all(
        amqp, Topology.dead_letter_queue_name("tableinator", namespace, "replays"), 1
    )
    assert [orjson.loads(m.body)["record"]["id"] for m in dead] == ["badcast"]
