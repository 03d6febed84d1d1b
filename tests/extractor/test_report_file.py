"""The full report after a real small job: the file, its numbers against the store, the PNG.

The demo API, tableinator and the extractor run for real (RabbitMQ, PostgreSQL); a record of
the job holding a NUL is dead-lettered by tableinator, and a second job over the same data
writes nothing new: the report must say so (all unchanged and skipped).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aio_pika
import matplotlib.image
import numpy as np
import orjson
import psycopg
import pytest
from rich.console import Console

from common.envelope import PageBatch, encode
from common.topology import Topology
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, run_backfill
from extractor.reporting.report_chart import per_second
from extractor.reporting.report_data import load_report
from tests.extractor.support import (
    delete_queue,
    extractor_env,
    extractor_settings,
    running_tableinator,
    table_counts,
    work_queue,
)
from tests.support.broker import depth

SIZE = 2_000
BAR_COLOUR = np.array([0x4C, 0x72, 0xB0]) / 255  # the chart's records/s bars


@pytest.fixture
async def work_queue_deleted(namespace: str) -> AsyncIterator[None]:
    yield
    await delete_queue(work_queue(namespace))


async def dead_letter_one_record(channel: Any, namespace: str, job_id: str) -> None:
    """A page of the job whose only record PostgreSQL cannot store (a NUL)."""
    exchange = await Topology().declare_exchanges(channel)
    page = PageBatch(job_id, namespace, "replays", "replays:extra", 0, [{"id": "x", "w": "a\0"}])
    message = aio_pika.Message(encode(page), message_id=page.message_id, delivery_mode=2)
    await exchange.publish(message, routing_key=Topology.routing_key(namespace, "replays"))
    dlq = Topology.dead_letter_queue_name("tableinator", namespace, "replays")
    async with asyncio.timeout(20):
        while await depth(channel, dlq) < 1:
            await asyncio.sleep(0.1)


async def test_report_file_matches_the_store_and_has_the_chart(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    first, second = f"{namespace}-first", f"{namespace}-again"
    quiet = Console(file=io.StringIO())
    async with (
        serve_demo_api(Dataset(size=SIZE), latency_ms=20) as url,
        running_tableinator(demo_spec_file, namespace),
    ):
        settings = extractor_settings(demo_spec_file, url, namespace)
        for job_id in (first, second):
            done = await run_backfill(settings, JobOptions(job_id=job_id, wait_timeout=60), quiet)
            assert done.ok, done.as_dict()
            if job_id == first:
                await dead_letter_one_record(amqp, namespace, first)
        out = tmp_path / "out" / "report.md"
        env = extractor_env(demo_spec_file, url, namespace, COLUMNS="200")
        shown = subprocess.run(
            [sys.executable, "-m", "extractor", "report", first, "--out", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        again = await load_report(settings, second)
    assert shown.returncode == 0, shown.stderr
    rows, _ = await table_counts(pg, namespace)
    assert rows == SIZE

    text = out.read_text()
    table = f"{namespace}.replays"
    assert (
        f"| tableinator | replays | {SIZE:,} rows in {table} | {SIZE:,} | {SIZE:,} | 0 | 1 |"
        in (text)
    ), text
    assert "| tableinator | replays | nul_character | 1 |" in text
    assert f"extractor dlq list --spec {demo_spec_file} --job {first}" in text
    assert "![records confirmed per second](report.png)" in text
    assert "nul_character" in shown.stdout and f"report written to {out}" in shown.stdout

    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(png)[..., :3]
    bars = np.isclose(pixels, BAR_COLOUR, atol=0.02).all(axis=-1).sum()
    assert bars > 500, "the chart has no records/s bars"

    # The second job over the same data wrote nothing: every record unchanged and skipped.
    [store] = again.stores
    assert (store.published, store.written, store.unchanged) == (SIZE, 0, SIZE)
    assert sum(per_second(again.timeline)[1]) == SIZE  # the ledger's per-second throughput
    assert all(again.phases[phase] is not None for phase in ("plan", "fetch_and_publish"))
    assert again.phases["drain_to_stores"] is not None and again.dead_letters == []
    assert orjson.loads(orjson.dumps(again.as_dict()))["next"] == []
