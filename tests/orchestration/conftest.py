"""Fixtures for the scheduler tests: the demo API and tableinator as processes (the
schedulers run their own event loops), the extractor's environment, and cleanup."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from common.settings import PostgresSettings
from extractor.ledger.completion import CompletionWaiter
from tests.conftest import delete_namespace_queues
from tests.extractor.support import delete_queue, free_port
from tests.support.processes import running, service_env

SIZE = 1_000  # records of the small job


def wait_for_port(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def demo_api(tmp_path: Path) -> Iterator[str]:
    """The bundled demo API with SIZE records, as a process; its URL."""
    port = free_port()
    log = tmp_path / "demo-api.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "demoapi", "--port", str(port), "--size", str(SIZE)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def tableinator(demo_spec_file: Path, namespace: str, tmp_path: Path) -> Iterator[None]:
    """tableinator consuming the test's dataset into the test's schema, as a process."""
    env = service_env(demo_spec_file, namespace, POSTGRES_BATCH_FLUSH_INTERVAL="0.2")
    with running("tableinator", env, tmp_path / "tableinator.log"):
        yield


@pytest.fixture
def extractor_env(
    demo_spec_file: Path, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The extractor's environment for the scheduler: the test's spec, ledger schema and
    work queue, tableinator the only consumer; the test's schema and queues dropped after."""
    monkeypatch.setenv("DATASET_SPEC", str(demo_spec_file))
    monkeypatch.setenv("EXTRACTOR_LEDGER_SCHEMA", namespace)
    monkeypatch.setenv("AMQP_CONSUMERS", "tableinator")
    monkeypatch.setenv("EXTRACTOR_LEASE_SECONDS", "2")
    yield
    asyncio.run(delete_namespace_queues(namespace))
    with psycopg.connect(PostgresSettings().conninfo, autocommit=True) as conn:
        ledger = conn.execute("SELECT to_regclass(%s)", (f'"{namespace}".jobs',)).fetchone()
        query = f'SELECT job_id FROM "{namespace}".jobs'
        rows = conn.execute(query).fetchall() if ledger and ledger[0] else []
        conn.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
    for (job_id,) in rows:
        asyncio.run(delete_queue(CompletionWaiter.queue_name(job_id)))


def landed_rows(namespace: str) -> tuple[int, int]:
    with psycopg.connect(PostgresSettings().conninfo) as conn:
        row = conn.execute(
            f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".replays'
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def job_rows(namespace: str) -> list[tuple[str, str]]:
    with psycopg.connect(PostgresSettings().conninfo) as conn:
        return [
            (r[0], r[1])
            for r in conn.execute(f'SELECT job_id, status FROM "{namespace}".jobs').fetchall()
        ]
