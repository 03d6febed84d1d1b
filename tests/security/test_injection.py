"""SQL and Cypher injection: identifiers are quoted (psycopg.sql) or refused (strict Cypher
pattern, see tests/properties/test_spec.py), values are always parameters.

Names in a spec must match strict patterns; the PostgreSQL schema (POSTGRES_SCHEMA) is the
one identifier that may be anything PostgreSQL allows, so a job runs under a schema named
like an injection, with records whose keys and values are injections too.
"""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path
from typing import Any

import psycopg
from aio_pika.abc import AbstractChannel
from neo4j import AsyncDriver
from psycopg import sql

from tests.support.broker import declare, publish_pages
from tests.support.pipeline import finalised_events, running_consumers

REPO = Path(__file__).resolve().parents[2]
WRITE_PATHS = ["common", "extractor", "tableinator", "graphinator"]


def injections(namespace: str) -> list[str]:
    return [
        f"x'); DROP TABLE public.{namespace}_canary; --",
        f'x"; DROP TABLE public.{namespace}_canary; --',
        "x` }) MATCH (c:Canary) DETACH DELETE c //",
        "x'}) MATCH (c:Canary) DETACH DELETE c RETURN 1 //",
        "$rows",
        "\\'; SELECT pg_sleep(10); --",
    ]


async def test_a_schema_and_records_named_like_injections_are_stored_verbatim(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: AbstractChannel,
) -> None:
    schema = f'{namespace} x"; DROP TABLE public.{namespace}_canary; --'
    canary = sql.Identifier("public", f"{namespace}_canary")
    await pg.execute(sql.SQL("CREATE TABLE {} (id int)").format(canary))
    async with neo4j_driver.session() as session:
        await (await session.run("CREATE (:Canary {id: $id})", id=namespace)).consume()
    texts = injections(namespace)
    page = [
        {"id": text, "format": text, "winner": text, "players": [{"userid": text, "name": text}]}
        for text in texts
    ]
    try:
        await load(demo_spec_file, namespace, schema, page, amqp)
        cur = await pg.execute(
            sql.SQL("SELECT key, format, doc->>'winner' FROM {}").format(
                sql.Identifier(schema, "replays")
            )
        )
        assert sorted(await cur.fetchall()) == sorted((text, text, text) for text in texts)
        await pg.execute(sql.SQL("SELECT count(*) FROM {}").format(canary))  # still there
    finally:
        await pg.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        await pg.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(canary))
    async with neo4j_driver.session() as session:
        result = await session.run(
            "MATCH (r:Replay)-[:PLAYED_BY]->(p:Player) RETURN r.id AS r, p.userid AS p, "
            "p.name AS name, r.winner AS winner"
        )
        rows = [tuple(record.values()) async for record in result]
        canaries = await (await session.run("MATCH (c:Canary) RETURN count(c) AS c")).single()
    assert sorted(rows) == sorted((text, text, text, text) for text in texts)
    assert canaries is not None and canaries["c"] == 1


async def load(
    spec: Path, namespace: str, schema: str, page: list[Any], amqp: AbstractChannel
) -> None:
    """Both consumers take one page and its end-of-job message; tableinator in ``schema``."""
    for consumer in ("tableinator", "graphinator"):
        await declare(amqp, consumer, namespace)
    await publish_pages(amqp, namespace, [page])
    async with finalised_events(namespace) as next_event, running_consumers(spec, schema):
        events = [await next_event(60) for _ in range(2)]
    assert {event["service"] for event in events} == {"tableinator", "graphinator"}
    await asyncio.sleep(0)


QUERY_METHODS = {"execute", "executemany", "run", "copy", "stream"}


def formatted_queries(path: Path, root: Path = REPO) -> list[str]:
    """Calls of a query method whose query is built by f-string, % or str.format in place."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in QUERY_METHODS or not node.args:
            continue
        query = node.args[0]
        built = isinstance(query, ast.JoinedStr) or (
            isinstance(query, ast.BinOp) and isinstance(query.left, ast.Constant)
        )
        if isinstance(query, ast.Call) and isinstance(query.func, ast.Attribute):
            built = built or (
                query.func.attr == "format" and isinstance(query.func.value, ast.Constant)
            )
        if built:
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_query_is_formatted_from_values_in_the_write_paths() -> None:
    """SQL goes through psycopg.sql (sql.SQL(..).format is a Call on a Call, not a str);
    Cypher is built only in graphinator/cypher.py from ident()-checked names."""
    offenders = [
        hit
        for package in WRITE_PATHS
        for path in sorted((REPO / package).rglob("*.py"))
        for hit in formatted_queries(path)
    ]
    assert offenders == []


def test_the_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "cur.execute(f'SELECT {x}')\n"
        "cur.execute('SELECT %s' % x)\n"
        "tx.run('MATCH (n {{id: {}}})'.format(x))\n"
        "cur.execute('SELECT %s', (x,))\n"
        "cur.execute(sql.SQL('SELECT {}').format(sql.Literal(x)))\n"
    )
    hits = formatted_queries(bad, tmp_path)
    assert [hit.split(":")[1] for hit in hits] == ["1", "2", "3"]


CYPHER_WORDS = ("MATCH", "MERGE", "CREATE", "UNWIND", "DELETE", "RETURN", "[e:", "(n:")


def cypher_fstrings(tree: ast.AST) -> list[ast.JoinedStr]:
    """f-strings that build Cypher (error messages are f-strings too)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        and any(
            isinstance(part, ast.Constant) and any(word in str(part.value) for word in CYPHER_WORDS)
            for part in node.values
        )
    ]


def test_cypher_is_built_only_from_checked_identifiers() -> None:
    """Every f-string of Cypher in graphinator/cypher.py interpolates ident(...) or a local
    assigned from it (label, key, target, target_key: ident(); rel, arrow: _arrow(), an
    f-string of ident()) or the module's constant; never a value."""
    tree = ast.parse((REPO / "graphinator/cypher.py").read_text())
    allowed = {"label", "key", "target", "target_key", "arrow", "rel", "HASH_PROPERTY"}
    strings = cypher_fstrings(tree)
    assert len(strings) >= 6  # the node, relationship, constraint and count queries
    for node in strings:
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                value = part.value
                called = isinstance(value, ast.Call) and getattr(value.func, "id", "")
                assert called in {"ident", "_arrow"} or getattr(value, "id", None) in allowed, (
                    ast.unparse(value)
                )
