"""The bulk initial load against real services: a Discogs-shaped dump through the staging
files and ``neo4j-admin database import full`` gives the MERGE path's graph, node for node
and edge for edge, also when graphinator is killed (-9) mid-job and a line is torn; a
non-empty database is refused (exit 2) before anything is consumed; once imported,
graphinator MERGEs later jobs.

The import stops and starts a Neo4j server, so this module runs its own throwaway one
(scripts/services.sh with NEO4J_BOLT_PORT / NEO4J_HOME_DIR overrides) and never touches the
shared server on 7687.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest
import yaml
from aio_pika.abc import AbstractChannel
from neo4j import AsyncDriver, AsyncGraphDatabase

from common.settings import (
    AmqpSettings,
    DatasetSettings,
    GraphinatorSettings,
    Neo4jSettings,
    consumer_settings,
)
from common.spec import BUNDLED_DIR
from common.topology import Topology
from extractor.sources.dumps.discogs import iter_records
from graphinator import service as graphinator_service
from tests.extractor.dumps.samples import ENTITIES, sample, write_releases
from tests.support.broker import depth, publish_pages
from tests.support.pipeline import finalised_events
from tests.support.processes import running

REPO = Path(__file__).resolve().parents[2]
PORT = int(os.environ.get("BULK_TEST_NEO4J_PORT", "7689"))
ADDRESS = f"bolt://127.0.0.1:{PORT}"
PAGE = 100
OFFSET = 50_000


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _services(action: str, env: dict[str, str]) -> None:
    subprocess.run(
        [str(REPO / "scripts/services.sh"), action, "neo4j"], env=env, check=True, timeout=300
    )


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A throwaway Neo4j of this module's own, stopped at the end."""
    missing = [tool for tool in ("java", "javac", "mvn") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"the bulk import needs a local Neo4j built with Java and Maven: no {missing}")
    if _port_open(PORT):
        pytest.fail(f"port {PORT} is in use: set BULK_TEST_NEO4J_PORT to a free one")
    home = tmp_path_factory.mktemp("neo4j-bulk-home")
    env = dict(os.environ, NEO4J_BOLT_PORT=str(PORT), NEO4J_HOME_DIR=str(home))
    env["NEO4J_ADDRESS"] = ADDRESS
    _services("start", env)
    try:
        yield env
    finally:
        _services("stop", env)


def connect() -> AsyncDriver:
    return AsyncGraphDatabase.driver(ADDRESS, auth=Neo4jSettings(neo4j_address=ADDRESS).auth)


@pytest.fixture
async def driver(server_env: dict[str, str]) -> AsyncIterator[AsyncDriver]:
    async with connect() as driver:
        yield driver


@pytest.fixture
async def graph_queues(namespace: str) -> AsyncIterator[None]:
    """This test's queues (one per Discogs entity), deleted afterwards."""
    yield
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        for entity in ENTITIES:
            name = Topology.queue_name("graphinator", namespace, entity)
            for queue in (name, f"{name}.dlq"):
                channel = await connection.channel()
                await channel.queue_delete(queue)


@pytest.fixture
def discogs_spec(tmp_path: Path, namespace: str) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "discogs.yaml").read_text())
    raw["name"] = namespace
    path = tmp_path / "discogs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def dump(tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """The hand-written samples plus 1,500 generated releases (stubs: artists, masters)."""
    data = {entity: list(iter_records(sample(entity))) for entity in ENTITIES}
    generated = write_releases(tmp_path / "releases.xml", 1600, gzipped=False)
    for release in iter_records(generated, "releases"):
        if release["id"] <= 100:  # the samples hold small ids
            continue
        # Targets no sample names: each stub's properties then come from one name only.
        for artist in release["artists"]:
            artist["id"] += OFFSET
            artist["name"] = f"Artist {artist['id']}"
        for label in release["labels"]:
            label["id"] += OFFSET
        release["master_id"] += OFFSET
        data["releases"].append(release)
    return data


async def publish_dump(
    amqp: AbstractChannel, namespace: str, data: dict[str, list[dict[str, Any]]]
) -> None:
    for entity in ENTITIES:
        await Topology().declare_queue(amqp, "graphinator", namespace, entity)
    for entity, records in data.items():
        pages = [records[i : i + PAGE] for i in range(0, len(records), PAGE)]
        await publish_pages(amqp, namespace, pages, entity=entity, job_id=f"job-{entity}")


async def until_finalised(next_event: Any) -> None:
    seen: set[str] = set()
    while seen != set(ENTITIES):
        event = await next_event(120.0)
        seen.add(event["entity"])


async def snapshot(driver: AsyncDriver) -> dict[str, Counter[str]]:
    """Every node (labels, properties) and edge (its ends' keys, type, properties)."""
    async with driver.session() as session:
        nodes = await (
            await session.run("MATCH (n) RETURN labels(n) AS l, properties(n) AS p")
        ).values()
        rels = await (
            await session.run(
                "MATCH (a)-[e]->(b) RETURN labels(a), coalesce(a.id, a.name), type(e),"
                " properties(e), labels(b), coalesce(b.id, b.name)"
            )
        ).values()

    def canonical(row: list[Any]) -> str:
        return orjson.dumps(row, option=orjson.OPT_SORT_KEYS).decode()

    return {"nodes": Counter(map(canonical, nodes)), "rels": Counter(map(canonical, rels))}


async def wipe(driver: AsyncDriver) -> None:
    async with driver.session() as session:
        await (await session.run("MATCH (n) DETACH DELETE n")).consume()


async def merge_path(spec: Path, namespace: str, amqp: AbstractChannel, data: Any) -> None:
    """The same pages through graphinator's MERGE path, in process."""
    settings = GraphinatorSettings(
        neo4j=Neo4jSettings(neo4j_address=ADDRESS),
        dataset=DatasetSettings(dataset_spec=str(spec)),
        batch=consumer_settings("NEO4J").model_copy(update={"batch_flush_interval": 0.2}),
    )
    stop = asyncio.Event()
    async with finalised_events(namespace) as next_event:
        await publish_dump(amqp, namespace, data)
        task = asyncio.create_task(graphinator_service.run(settings, stop))
        try:
            await until_finalised(next_event)
        finally:
            stop.set()
            await task


def bulk_env(server_env: dict[str, str], spec: Path, bulk_dir: Path, **more: str) -> dict[str, str]:
    env = dict(server_env, DATASET_SPEC=str(spec), GRAPHINATOR_BULK_LOAD="true")
    env.update(GRAPHINATOR_BULK_DIR=str(bulk_dir), LOG_LEVEL="INFO", **more)
    return env


async def wait_for_commits(log: Path, count: int) -> None:
    async with asyncio.timeout(60):
        while not log.exists() or log.read_bytes().count(b"\n") < count:
            await asyncio.sleep(0.05)


def bulk_import(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graphinator", "bulk-import"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def tear(staging: Path) -> None:
    """What a kill -9 in the middle of a write leaves: half lines after the last commit."""
    with (staging / "nodes" / "Release.tsv").open("ab") as nodes:
        nodes.write(b'r\t999999\t"ab')
    with (staging / "commits.log").open("ab") as commits:
        commits.write(b'{"nodes/Release.tsv":')


async def test_bulk_load_equals_the_merge_path_after_a_kill(
    server_env: dict[str, str],
    driver: AsyncDriver,
    discogs_spec: Path,
    namespace: str,
    amqp: AbstractChannel,
    graph_queues: None,
    tmp_path: Path,
) -> None:
    data = dump(tmp_path)
    await wipe(driver)
    await merge_path(discogs_spec, namespace, amqp, data)
    merged = await snapshot(driver)
    assert sum(merged["nodes"].values()) > 1500 and sum(merged["rels"].values()) > 3000
    await wipe(driver)

    bulk_dir = tmp_path / "bulk"
    env = bulk_env(server_env, discogs_spec, bulk_dir, NEO4J_BATCH_SIZE="50", NEO4J_PREFETCH="2")
    log = tmp_path / "graphinator.log"
    async with finalised_events(namespace) as next_event:
        await publish_dump(amqp, namespace, data)
        with running("graphinator", env, log) as first:
            await wait_for_commits(bulk_dir / "staging" / "commits.log", 5)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        tear(bulk_dir / "staging")
        with running("graphinator", env, log) as second:
            await until_finalised(next_event)
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
    assert "bulk load staged" in log.read_text()

    done = bulk_import(env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "graphinator now MERGEs later jobs" in done.stdout
    async with connect() as restarted:  # the server was restarted under the old driver
        assert await snapshot(restarted) == merged

        # Once imported, the same settings MERGE a later job's page into the graph.
        changed = dict(data["labels"][0], name="Renamed label")
        await publish_pages(
            amqp, namespace, [[changed]], entity="labels", job_id="later", end=False
        )
        with running("graphinator", env, log):
            async with asyncio.timeout(60):
                while await label_name(restarted, changed["id"]) != "Renamed label":
                    await asyncio.sleep(0.1)
    assert "later jobs are MERGEd" in log.read_text()


async def label_name(driver: AsyncDriver, key: int) -> str | None:
    async with driver.session() as session:
        record = await (
            await session.run("MATCH (n:Label {id: $key}) RETURN n.name AS name", key=key)
        ).single()
    return None if record is None else record["name"]


async def test_a_non_empty_database_is_refused_before_consuming(
    server_env: dict[str, str],
    driver: AsyncDriver,
    discogs_spec: Path,
    namespace: str,
    amqp: AbstractChannel,
    graph_queues: None,
    tmp_path: Path,
) -> None:
    async with driver.session() as session:
        await (await session.run("MERGE (:Artist {id: -1})")).consume()
    await Topology().declare_queue(amqp, "graphinator", namespace, "artists")
    await publish_pages(amqp, namespace, [[{"id": 1, "name": "x"}]], entity="artists", end=False)
    env = bulk_env(server_env, discogs_spec, tmp_path / "bulk")
    done = subprocess.run(
        [sys.executable, "-m", "graphinator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("graphinator: GRAPHINATOR_BULK_LOAD")
    assert "needs an empty database" in done.stderr
    queue = Topology.queue_name("graphinator", namespace, "artists")
    assert await depth(amqp, queue) == 1
    await wipe(driver)
