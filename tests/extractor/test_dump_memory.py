"""Memory stays flat however long the dump: peak RSS of ``extractor run`` over 20k and 200k
generated releases (the pages go to a queue that keeps only the newest message)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import pytest

from common.settings import AmqpSettings
from common.topology import Topology
from tests.extractor.dump_support import delete_dump_queues, discogs_spec, table_only
from tests.extractor.dumps.samples import write_releases


@pytest.fixture
async def sink(namespace: str) -> AsyncIterator[None]:
    """A queue taking the job's pages and dropping all but the newest: nothing piles up."""
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        exchange = await Topology().declare_exchanges(channel)
        queue = await channel.declare_queue(
            f"sink.{namespace}", auto_delete=False, arguments={"x-max-length": 1}
        )
        await queue.bind(exchange, routing_key=Topology.routing_key(namespace, "releases"))
        yield
        await queue.delete(if_unused=False, if_empty=False)
    await delete_dump_queues(namespace, ("releases",))


def peak_rss_mib(args: list[str], env: dict[str, str], log: Path) -> tuple[float, float, int]:
    """Run ``python -m extractor ARGS``; its peak RSS (MiB), wall seconds and exit code."""
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extractor", *args], env=env, stdout=out, stderr=out
        )
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        process.returncode = 0  # reaped above
    print(f"cpu user {usage.ru_utime:.1f} s, system {usage.ru_stime:.1f} s")
    return usage.ru_maxrss / 1024, time.monotonic() - started, os.waitstatus_to_exitcode(status)


def run_over(tmp_path: Path, namespace: str, records: int) -> tuple[float, float]:
    files = tmp_path / f"r{records}"
    files.mkdir()
    write_releases(files / "discogs_20990101_releases.xml.gz", records)
    spec = table_only(
        discogs_spec(tmp_path / f"s{records}.yaml", namespace, files, entities=("releases",))
    )
    env = dict(
        os.environ,
        DATASET_SPEC=str(spec),
        AMQP_CONSUMERS="",
        EXTRACTOR_LEDGER_SCHEMA=namespace,
        LOG_LEVEL="WARNING",
    )
    log = tmp_path / "extractor.log"
    rss, seconds, code = peak_rss_mib(["run", "--no-wait"], env, log)
    assert code == 0, log.read_text()[-3000:]
    return rss, seconds


async def test_peak_rss_is_flat_from_20k_to_200k_releases(
    tmp_path: Path, namespace: str, sink: None, pg: psycopg.AsyncConnection[Any]
) -> None:
    small, small_seconds = await asyncio.to_thread(run_over, tmp_path, namespace, 20_000)
    large, large_seconds = await asyncio.to_thread(run_over, tmp_path, namespace, 200_000)
    print(
        f"peak RSS: 20k releases {small:.1f} MiB in {small_seconds:.1f} s; "
        f"200k releases {large:.1f} MiB in {large_seconds:.1f} s; ratio {large / small:.2f}"
    )
    assert large <= small * 1.2, (small, large)
