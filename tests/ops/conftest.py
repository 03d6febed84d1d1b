"""One small demo job, run once for the module, with the real Prometheus scraping it.

tableinator, graphinator and the extractor run as real processes, each serving /metrics on
a port of its own; a file_sd targets file tells Prometheus (scripts/services.sh, 1 s scrapes)
where they are, with the service as the ``job`` label, as in docker-compose.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psycopg
import pytest
import yaml

from common.settings import PostgresSettings
from common.spec import BUNDLED_DIR
from demoapi import Dataset, serve_demo_api
from tests.conftest import delete_namespace_queues, graph_driver, graph_turn, wipe_graph
from tests.ops.promql import PROMETHEUS_URL, Prometheus, scrape_targets

RECORDS = 20_000
SOURCE_RATE_LIMIT = 60.0  # requests/s the demo API allows: the job lasts ~7 s
# The extractor paces itself by RateLimit-Remaining and may meet no 429 from the quota; a
# secondary limit (seeded dice: 6 of the first 430 requests) makes the throttle series move.
SOURCE_THROTTLE_RATE = 0.005
SERVICES = ("tableinator", "graphinator", "extractor")
SETTLE_SECONDS = 3.0  # 1 s scrapes: the consumers' after their last commit, the extractor's last


@dataclass(frozen=True)
class ScrapedJob:
    dataset: str
    addresses: dict[str, str]  # service -> host:port of its /metrics
    ended_at: float  # unix time of the extractor's last scraped sample of the job
    settled_at: float  # a moment the consumers were scraped after their last commit
    records: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def prometheus() -> AsyncIterator[Prometheus]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        try:
            async with session.get(f"{PROMETHEUS_URL}/-/ready") as response:
                ready = response.status == 200
        except aiohttp.ClientError:
            ready = False
        if not ready:
            pytest.fail(f"no Prometheus at {PROMETHEUS_URL}: run scripts/services.sh start")
        yield Prometheus(session)


@pytest.fixture(scope="module")
async def empty_graph() -> AsyncIterator[None]:
    """The graph, empty and this module's alone (see tests/conftest.py): the replays of an
    earlier test would be unchanged, so graphinator would write none of them."""
    with graph_turn():
        driver = graph_driver()
        try:
            await wipe_graph(driver)
        finally:
            await driver.close()
        yield


@pytest.fixture(scope="module")
async def scraped_job(
    prometheus: Prometheus, empty_graph: None, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ScrapedJob]:
    dataset = "t" + secrets.token_hex(5)
    work = tmp_path_factory.mktemp("ops")
    spec = _spec_file(work, dataset)
    addresses = {service: f"127.0.0.1:{free_port()}" for service in SERVICES}
    env = _env(spec, dataset)
    try:
        with scrape_targets(dataset, addresses):
            async with (
                serve_demo_api(
                    Dataset(size=RECORDS),
                    rate_limit=SOURCE_RATE_LIMIT,
                    throttle_rate=SOURCE_THROTTLE_RATE,
                ) as url,
                _consumers(env, addresses, work) as consumers,
            ):
                await _until_scraped(prometheus, [addresses[c] for c in consumers])
                started = time.time()
                await _run_extractor(env, addresses["extractor"], spec, url, work)
                await asyncio.sleep(SETTLE_SECONDS)  # the last scrapes are in the database
                ended_at = await _last_sample(prometheus, dataset, started)
                yield ScrapedJob(dataset, addresses, ended_at, time.time(), RECORDS)
    finally:
        await delete_namespace_queues(dataset)
        await _drop_schema(dataset)


def _spec_file(work: Path, dataset: str) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
    raw["name"] = dataset
    path = work / "demo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _env(spec: Path, dataset: str) -> dict[str, str]:
    return dict(
        os.environ,
        DATASET_SPEC=str(spec),
        POSTGRES_SCHEMA=dataset,
        EXTRACTOR_LEDGER_SCHEMA=dataset,
        POSTGRES_BATCH_SIZE="1000",
        POSTGRES_BATCH_FLUSH_INTERVAL="0.2",
        NEO4J_BATCH_SIZE="1000",
        NEO4J_BATCH_FLUSH_INTERVAL="0.2",
        METRICS_HOST="127.0.0.1",
        LOG_LEVEL="INFO",
    )


def _with_port(env: dict[str, str], address: str) -> dict[str, str]:
    return {**env, "METRICS_PORT": address.rpartition(":")[2]}


async def _start(args: list[str], env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", *args, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )


@asynccontextmanager
async def _consumers(
    env: dict[str, str], addresses: dict[str, str], work: Path
) -> AsyncIterator[dict[str, asyncio.subprocess.Process]]:
    """tableinator and graphinator as processes, healthy on entry, stopped (SIGTERM) on exit."""
    processes: dict[str, asyncio.subprocess.Process] = {}
    try:
        for name in ("tableinator", "graphinator"):
            address = addresses[name]
            processes[name] = await _start([name], _with_port(env, address), work / f"{name}.log")
        async with aiohttp.ClientSession() as session, asyncio.timeout(30):
            for name, process in processes.items():
                await _until_healthy(session, addresses[name], process)
        yield processes
    finally:
        await _stop(list(processes.values()))


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            async with asyncio.timeout(30):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def _until_healthy(
    session: aiohttp.ClientSession, address: str, process: asyncio.subprocess.Process
) -> None:
    while True:
        assert process.returncode is None, f"the consumer on {address} exited"
        try:
            async with session.get(f"http://{address}/health") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)


async def _until_scraped(prometheus: Prometheus, addresses: list[str]) -> None:
    """Prometheus found the targets file and scraped the consumers at least once."""
    instances = "|".join(addresses)
    async with asyncio.timeout(20):
        while True:
            up = await prometheus.scalar_values(f'up{{instance=~"{instances}"}}', time.time())
            if len(up) == len(addresses) and all(value == 1 for value in up):
                return
            await asyncio.sleep(0.5)


async def _run_extractor(
    env: dict[str, str], address: str, spec: Path, url: str, work: Path
) -> None:
    args = ["extractor", "run", "--spec", str(spec), "--source-url", url, "--wait-timeout", "180"]
    process = await _start(args, _with_port(env, address), work / "extractor.log")
    async with asyncio.timeout(50):
        returncode = await process.wait()
    log = (work / "extractor.log").read_text(errors="replace")[-3000:]
    assert returncode == 0, f"extractor exited {returncode}:\n{log}"


async def _last_sample(prometheus: Prometheus, dataset: str, started: float) -> float:
    """When Prometheus last scraped the extractor during the job (it has exited since)."""
    data = await prometheus.get(
        "/api/v1/query_range",
        query=f'timestamp(backfill_job_records{{dataset="{dataset}"}})',
        start=f"{started:.3f}",
        end=f"{time.time():.3f}",
        step="1",
    )
    stamps = [float(value) for series in data["result"] for _, value in series["values"]]
    assert stamps, f"Prometheus never scraped the extractor's job gauges of {dataset}"
    return max(stamps)


async def _drop_schema(schema: str) -> None:
    conninfo = PostgresSettings().conninfo
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
