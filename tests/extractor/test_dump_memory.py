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
    """Run ``python -m extractor ARGS``; its peak RSS (MiB), wall seconds and exit code.

    The peak is the child's own VmHWM, sampled from /proc until it exits: ``ru_maxrss``
    of a child started by a large parent reports the parent's high-water mark instead.
    """
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "extractor", *args], env=env, stdout=out, stderr=out
        )
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, vm_hwm_mib(process.pid))
        time.sleep(0.1)
    return peak, time.monotonic() - started, process.returncode


def vm_hwm_mib(pid: int) -> float:
    """The process's peak resident set since it started, MiB (0 once it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


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
