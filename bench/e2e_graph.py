"""The graph side of an end-to-end round: a spec's labels under a prefix of the round's own
(Neo4j Community has one database, shared with the tests beside the benchmark), the
nodes and relationships that landed, and their deletion afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from neo4j import AsyncGraphDatabase

from common.settings import Neo4jSettings
from graphinator.cypher import ident

DELETE_CHUNK = 10_000
REPO = Path(__file__).resolve().parents[1]
THROWAWAY_PORT = 7689
Rows = Callable[..., Awaitable[list[dict[str, Any]]]]


@contextmanager
def throwaway_neo4j(directory: Path, port: int = THROWAWAY_PORT) -> Iterator[dict[str, str]]:
    """A second, empty Neo4j (scripts/services.sh with a fresh home under ``directory`` and
    its own Bolt port: the shared server is never touched), for a bulk load; yields the
    environment that points graphinator, ``graphinator bulk-import`` and ``graph_totals``
    at it. Its home is deleted afterwards, so every round starts from an empty database."""
    home = Path(tempfile.mkdtemp(prefix="neo4j-home-", dir=directory))
    env = {
        "NEO4J_BOLT_PORT": str(port),
        "NEO4J_HOME_DIR": str(home),
        "NEO4J_ADDRESS": f"bolt://127.0.0.1:{port}",
    }
    script = [str(REPO / "scripts/services.sh")]
    full = dict(os.environ, **env)
    try:
        subprocess.run([*script, "start", "neo4j"], env=full, check=True, capture_output=True)
        yield env
    finally:
        subprocess.run([*script, "stop", "neo4j"], env=full, check=True, capture_output=True)
        shutil.rmtree(home)


def prefix_labels(raw: dict[str, Any], prefix: str) -> set[str]:
    """Rewrite every node label of a raw (YAML-loaded) spec as ``prefix + label``, in place;
    the set of labels it now names."""
    labels: set[str] = set()
    for entity in raw["entities"].values():
        graph = entity.get("graph")
        if not graph:
            continue
        graph["label"] = prefix + graph["label"]
        labels.add(graph["label"])
        for relationship in graph.get("relationships", []):
            target = relationship["target"]
            target["label"] = prefix + target["label"]
            labels.add(target["label"])
    return labels


@asynccontextmanager
async def _graph(address: str | None = None) -> AsyncIterator[Rows]:
    """One driver and session for a handful of statements; yields a function that runs one
    and returns its rows. ``address``: another server's Bolt URI than the settings'."""
    settings = Neo4jSettings()
    if address:
        settings = settings.model_copy(update={"neo4j_address": address})
    async with (
        AsyncGraphDatabase.driver(settings.neo4j_address, auth=settings.auth) as driver,
        driver.session(database=settings.neo4j_database) as session,
    ):

        async def rows(statement: str, **params: Any) -> list[dict[str, Any]]:
            result = await session.run(statement, params)
            return [record.data() for record in await result.fetch(1_000_000)]

        yield rows


async def graph_totals(labels: set[str], address: str | None = None) -> tuple[int, int]:
    """Nodes carrying the labels, and relationships starting at them (both from the count
    store: no scan); ``address``: another server's Bolt URI than the settings'."""
    nodes = relationships = 0
    async with _graph(address) as rows:
        for label in sorted(labels):
            node_rows = await rows(f"MATCH (n:{ident(label)}) RETURN count(n) AS c")
            rel_rows = await rows(f"MATCH (:{ident(label)})-[e]->() RETURN count(e) AS c")
            nodes += int(node_rows[0]["c"])
            relationships += int(rel_rows[0]["c"])
    return nodes, relationships


async def drop_graph(labels: set[str], prefix: str) -> None:
    """Delete the labels' relationships, then their nodes (both in transactions of
    DELETE_CHUNK: a genre's DETACH DELETE alone would hold its ~100k edges in one), and
    their constraints."""
    async with _graph() as rows:
        for label in sorted(labels):
            await rows(
                f"MATCH (:{ident(label)})-[e]->() CALL (e) {{ DELETE e }} "
                f"IN TRANSACTIONS OF {DELETE_CHUNK} ROWS"
            )
        for label in sorted(labels):
            await rows(
                f"MATCH (n:{ident(label)}) CALL (n) {{ DETACH DELETE n }} "
                f"IN TRANSACTIONS OF {DELETE_CHUNK} ROWS"
            )
        constraints = await rows(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes "
            "WHERE any(label IN labelsOrTypes WHERE label STARTS WITH $prefix) RETURN name",
            prefix=prefix,
        )
        for row in constraints:
            await rows(f"DROP CONSTRAINT {ident(row['name'])} IF EXISTS")
