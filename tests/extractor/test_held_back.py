"""A job held back by a slow or missing consumer, on the real services: it says so (a
warning naming the queue, ``extractor status``), it stops on SIGTERM within seconds and
resumes exactly, a job can go to one store only, and a queue nobody reads can fail it.

graphinator is the missing consumer: its queue exists (declared by the job) but nothing
reads it, while tableinator consumes in-process.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from neo4j import AsyncDriver

from common.topology import Topology
from demoapi import Dataset, serve_demo_api
from graphinator import service as graphinator_service
from tests.extractor.support import (
    extractor_env,
    extractor_process,
    free_port,
    ledger_row,
    running_tableinator,
    table_counts,
    wait_exit,
    wait_for,
)
from tests.support.broker import depth
from tests.support.pipeline import graphinator_settings

SIZE = 3_000
HELD = "SELECT count(*) > 0 FROM {s}.holds WHERE job_id = %s AND consumer = 'graphinator'"


@pytest.fixture
async def url(demo_spec_file: Path, namespace: str) -> AsyncIterator[str]:
    """The demo API's address, with tableinator consuming in-process (not graphinator)."""
    async with (
        serve_demo_api(Dataset(size=SIZE)) as served,
        running_tableinator(demo_spec_file, namespace),
    ):
        yield served


def both_stores_env(spec: Path, url: str, namespace: str, **extra: str) -> dict[str, str]:
    return extractor_env(
        spec,
        url,
        namespace,
        AMQP_CONSUMERS="tableinator,graphinator",
        EXTRACTOR_MAX_QUEUE_DEPTH="5",
        EXTRACTOR_CONCURRENCY="3",
        **extra,
    )


def status_of(job_id: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "extractor", "status", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def stop_within(process: subprocess.Popen[bytes], seconds: float) -> tuple[int, float]:
    """SIGTERM, then the exit code and how long the exit took."""
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = await wait_exit(process, seconds)
    return code, time.monotonic() - sent


async def graph_replays(driver: AsyncDriver) -> int:
    async with driver.session() as session:
        record = await (await session.run("MATCH (n:Replay) RETURN count(n) AS c")).single()
    assert record is not None
    return int(record["c"])


async def test_sigterm_while_held_back_exits_130_and_resume_lands_every_record_once(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    neo4j_driver: AsyncDriver,
    tmp_path: Path,
    url: str,
) -> None:
    job_id, log = f"{namespace}-held", tmp_path / "extractor.log"
    env = both_stores_env(demo_spec_file, url, namespace)
    with extractor_process(["run", "--job-id", job_id], env, log) as run:
        await wait_for(pg, namespace, HELD, job_id, seconds=60)
        status = status_of(job_id, env)
        code, took = await stop_within(run, 10)
    assert code == 130, log.read_text()[-3000:]
    assert took < 10
    queue = Topology.queue_name("graphinator", namespace, "replays")
    assert f"waiting for graphinator ({queue}:" in status
    assert "no consumer" in status
    text = log.read_text()
    assert f"no consumer on {queue}: is graphinator running?" in text
    assert f"continue with: extractor resume {job_id}" in text
    held_at = await ledger_row(
        pg, namespace, "SELECT sum(records)::bigint FROM {s}.slices WHERE job_id = %s", job_id
    )
    assert held_at[0] < SIZE  # stopped mid-job

    stop = asyncio.Event()
    graph = asyncio.create_task(graphinator_service.run(graphinator_settings(demo_spec_file), stop))
    try:
        resume_args = ["resume", job_id, "--wait-timeout", "60"]
        with extractor_process(resume_args, env, log) as resume:
            assert await wait_exit(resume, 120) == 0, log.read_text()[-3000:]
    finally:
        stop.set()
        await graph
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
    assert await graph_replays(neo4j_driver) == SIZE
    totals = await ledger_row(
        pg,
        namespace,
        "SELECT sum(records)::bigint, (SELECT status FROM {s}.jobs WHERE job_id = %s)"
        " FROM {s}.slices WHERE job_id = %s",
        job_id,
        job_id,
    )
    assert totals == (SIZE, "done")


async def test_a_worker_held_back_hands_its_slices_back_on_sigterm(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    tmp_path: Path,
    url: str,
) -> None:
    job_id, log = f"{namespace}-worker", tmp_path / "extractor.log"
    env = both_stores_env(demo_spec_file, url, namespace)
    driver_args = ["run", "--job-id", job_id, "--enqueue-only", "--no-wait"]
    with (
        extractor_process(driver_args, env, log) as driver,
        extractor_process(["worker"], env, tmp_path / "worker.log") as worker,
    ):
        await wait_for(pg, namespace, HELD, job_id, seconds=60)
        code, took = await stop_within(worker, 10)
        assert code == 0, (tmp_path / "worker.log").read_text()[-3000:]
        assert took < 10
        running = await ledger_row(
            pg,
            namespace,
            "SELECT count(*) FROM {s}.slices WHERE job_id = %s AND status = 'running'",
            job_id,
        )
        assert running == (0,)  # every slice handed back, none left to a lease
        code, took = await stop_within(driver, 10)
        assert (code, took < 10) == (130, True), log.read_text()[-3000:]


async def test_stores_tableinator_finishes_with_graphinator_stopped(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    tmp_path: Path,
    url: str,
) -> None:
    job_id, log = f"{namespace}-one", tmp_path / "extractor.log"
    graph_queue = Topology.queue_name("graphinator", namespace, "replays")
    await Topology().declare_queue(amqp, "graphinator", namespace, "replays")  # it exists
    env = both_stores_env(demo_spec_file, url, namespace)
    args = ["run", "--job-id", job_id, "--stores", "tableinator", "--wait-timeout", "60"]
    with extractor_process(args, env, log) as run:
        code = await wait_exit(run, 120)
    text = log.read_text()
    assert code == 0, text[-3000:]
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
    assert await depth(amqp, graph_queue) == 0  # nothing of the job went to graphinator
    assert "waiting for tableinator" in text
    stores = await ledger_row(
        pg, namespace, "SELECT options->'stores' FROM {s}.jobs WHERE job_id = %s", job_id
    )
    assert stores == (["tableinator"],)


async def test_a_queue_without_consumer_fails_the_job_after_the_timeout(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    tmp_path: Path,
    url: str,
) -> None:
    job_id, log = f"{namespace}-nobody", tmp_path / "extractor.log"
    env = both_stores_env(demo_spec_file, url, namespace, EXTRACTOR_NO_CONSUMER_TIMEOUT="2")
    with extractor_process(["run", "--job-id", job_id, "--no-wait"], env, log) as run:
        code = await wait_exit(run, 90)
    assert code == 1, log.read_text()[-3000:]
    failed = await ledger_row(
        pg,
        namespace,
        "SELECT count(*), min(error_kind), min(last_error) FROM {s}.slices"
        " WHERE job_id = %s AND status = 'failed'",
        job_id,
    )
    queue = Topology.queue_name("graphinator", namespace, "replays")
    assert failed[0] > 0
    assert failed[1] == "no_consumer"
    assert failed[2].startswith(f"no consumer on {queue} for over 2 s")


async def wait_for_text(log: Path, text: str, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while text not in (log.read_text() if log.exists() else ""):
            await asyncio.sleep(0.1)


async def test_sigterm_while_the_breaker_is_open_exits_130_within_seconds(
    demo_spec_file: Path, namespace: str, amqp: Any, tmp_path: Path
) -> None:
    """A source answering every request 503: retries, then the breaker's long cool-down."""
    log = tmp_path / "extractor.log"
    async with serve_demo_api(Dataset(size=SIZE), error_rate=1.0) as url:
        env = extractor_env(
            demo_spec_file,
            url,
            namespace,
            EXTRACTOR_BREAKER_FAILURES="2",
            EXTRACTOR_BREAKER_COOLDOWN="60",
        )
        args = ["run", "--job-id", f"{namespace}-breaker", "--no-estimate"]
        with extractor_process(args, env, log) as run:
            await wait_for_text(log, "breaker open", 60)
            code, took = await stop_within(run, 10)
    assert (code, took < 10) == (130, True), log.read_text()[-3000:]
    assert f"continue with: extractor resume {namespace}-breaker" in log.read_text()


async def test_sigterm_while_planning_exits_130_and_says_nothing_ran(
    demo_spec_file: Path, namespace: str, tmp_path: Path
) -> None:
    """The first request to a source that takes its time (20 s a page)."""
    log = tmp_path / "extractor.log"
    async with serve_demo_api(Dataset(size=SIZE), latency_ms=20_000) as url:
        env = extractor_env(demo_spec_file, url, namespace)
        with extractor_process(["run", "--job-id", f"{namespace}-plan"], env, log) as run:
            await asyncio.sleep(3)  # past its imports, into the first request
            code, took = await stop_within(run, 10)
    assert (code, took < 10) == (130, True), log.read_text()[-3000:]
    assert "interrupted while planning the job; nothing was fetched" in log.read_text()


async def test_sigterm_while_waiting_for_rabbitmq_exits_130_and_a_worker_0(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], tmp_path: Path
) -> None:
    """RabbitMQ away at the start is waited for (it may be restarting), but not past a stop."""
    log = tmp_path / "extractor.log"
    async with serve_demo_api(Dataset(size=SIZE)) as url:
        env = extractor_env(
            demo_spec_file,
            url,
            namespace,
            AMQP_CONNECTION=f"amqp://guest:guest@127.0.0.1:{free_port()}/",
        )
        args = ["run", "--job-id", f"{namespace}-nobroker", "--no-estimate"]
        with (
            extractor_process(args, env, log) as run,
            extractor_process(["worker"], env, tmp_path / "worker.log") as worker,
        ):
            await wait_for_text(log, "connect to RabbitMQ", 60)
            await wait_for_text(tmp_path / "worker.log", "connect to RabbitMQ", 60)
            code, took = await stop_within(run, 10)
            assert (code, took < 10) == (130, True), log.read_text()[-3000:]
            code, took = await stop_within(worker, 10)
            assert (code, took < 10) == (0, True), (tmp_path / "worker.log").read_text()[-3000:]
