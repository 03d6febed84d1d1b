"""Scenario 3: RabbitMQ, PostgreSQL or Neo4j restarted mid-job (``scripts/services.sh
restart``). Every process must reconnect by itself, with backoff; nothing may be
dead-lettered while a server is down (the runner checks the dead-letter queues)."""

from __future__ import annotations

import asyncio
import subprocess
import time

from bench.chaos.context import REPO
from bench.chaos.harness import Chaos


class NotOwned(RuntimeError):
    """services.sh leaves alone a server another checkout started."""


def restart(server: str) -> None:
    done = subprocess.run(
        [str(REPO / "scripts/services.sh"), "restart", server],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    if "left alone" in done.stdout + done.stderr:
        raise NotOwned(f"{server} was started by another checkout; run from its checkout")


async def _restart_mid_job(chaos: Chaos, server: str) -> None:
    shares = [0.2 + 0.5 * i / max(chaos.faults, 1) for i in range(chaos.faults)]
    for share in shares:
        await chaos.until(share)
        if chaos.complete():
            break
        started = time.monotonic()
        await asyncio.to_thread(restart, server)
        chaos.monitor.fault("restart", server, started)
        chaos.figures.setdefault("outage_seconds", []).append(round(time.monotonic() - started, 1))


async def restart_rabbitmq(chaos: Chaos) -> None:
    """RabbitMQ stopped and started mid-job: publishers and consumers reconnect; durable
    queues and persistent messages survive; unacked pages are redelivered."""
    await _restart_mid_job(chaos, "rabbitmq")


async def restart_postgres(chaos: Chaos) -> None:
    """PostgreSQL restarted mid-job: tableinator's pool and the extractor's ledger
    reconnect; the batches in the air are retried, never dead-lettered."""
    await _restart_mid_job(chaos, "postgres")


async def restart_neo4j(chaos: Chaos) -> None:
    """Neo4j restarted mid-job: graphinator retries its batches until the server is back."""
    await _restart_mid_job(chaos, "neo4j")
