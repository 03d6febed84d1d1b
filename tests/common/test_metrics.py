"""The /metrics and /health endpoint of a real consumer process."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from aio_pika.abc import AbstractChannel
from prometheus_client.parser import text_string_to_metric_families

from tests.support.broker import declare, publish_pages
from tests.support.pipeline import finalised_events
from tests.support.processes import running, service_env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_consumer_serves_health_and_moving_metrics(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: AbstractChannel,
    tmp_path: Path,
) -> None:
    port = free_port()
    env = service_env(demo_spec_file, namespace, METRICS_HOST="127.0.0.1", METRICS_PORT=str(port))
    await declare(amqp, "tableinator", namespace)
    page = [{"id": f"m{i}", "format": "gen9ou", "uploadtime": i} for i in range(30)]
    async with finalised_events(namespace) as next_event:
        with running("tableinator", env, tmp_path / "t.log"):
            async with asyncio.timeout(20):
                while True:
                    try:
                        status, body = await get(f"http://127.0.0.1:{port}/health")
                        break
                    except aiohttp.ClientConnectionError:
                        await asyncio.sleep(0.1)
            assert status == 200 and '"ok"' in body
            await publish_pages(amqp, namespace, [page, [{"no": "key"}]])
            await next_event()
            status, metrics = await get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    labels = (("dataset", namespace), ("entity", "replays"), ("service", "tableinator"))
    assert samples[("backfill_records_consumed_total", labels)] == 31
    assert samples[("backfill_records_written_total", labels)] == 30
    dead = tuple(sorted((*labels, ("reason", "bad_key"))))
    assert samples[("backfill_records_dead_lettered_total", dead)] == 1
    assert samples[("backfill_flush_duration_seconds_count", labels)] >= 1
    open_connections = (("service", "tableinator"), ("state", "open"))
    assert samples[("backfill_pool_connections", open_connections)] >= 1
