"""What every extractor measurement shares: a namespace (dataset name, ledger schema, spec
file, work queue) and the broker sink its pages go to.

Nothing consumes during the benchmark, so a consumer's queue would only grow (a job at 200
requests/s publishes ~90 MB a minute). Instead each namespace has one durable *sink* queue
bound to its routing key that keeps the newest ``SINK_MESSAGES`` pages and drops older ones:
every page is still routed to a durable queue, stored (persistent) and confirmed, as with
the consumers' queues, but the broker's memory stays flat. ``cleanup`` deletes the queues
and drops the ledger schema.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import yaml
from psycopg import sql

from bench.harness.broker import delete_queues
from bench.harness.context import BrokerContext, broker_context, retrying
from common.settings import PostgresSettings
from common.spec import BUNDLED_DIR
from common.topology import Topology

log = logging.getLogger(__name__)
T = TypeVar("T")

ENTITY = "replays"
SINK_MESSAGES = 1000
CLEANUP_SECONDS = 30
ATTEMPTS = 3
JOB_SECONDS = 600.0  # the longest a measurement may take
POSTMASTER_STARTED = "SELECT pg_postmaster_start_time()"


def bench_spec(
    name: str, base_url: str, initial: float, maximum: float, days: int | None = None
) -> dict[str, Any]:
    """The bundled demo spec under a unique name, with the rate limit under test; ``days``
    moves the start of its daily slicing (30 days before 2026-01-01) further back."""
    raw: dict[str, Any] = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
    raw["name"] = name
    raw["description"] = "extractor benchmark: " + raw.get("description", "")
    raw["source"]["base_url"] = base_url
    raw["source"]["rate_limit"] = {"initial": initial, "maximum": maximum}
    if days is not None:
        slicing = raw["source"]["slicing"]
        slicing["start"] = slicing["end"] - dt.timedelta(days=days)
    return raw


@dataclass(frozen=True)
class Namespace:
    """One measurement's dataset name, which is also its ledger schema and names its queues."""

    name: str
    workdir: Path

    @property
    def spec_path(self) -> Path:
        return self.workdir / f"{self.name}.yaml"

    @property
    def sink_queue(self) -> str:
        return f"bench.{self.name}.sink"

    @property
    def routing_key(self) -> str:
        return Topology.routing_key(self.name, ENTITY)

    def work_queue(self, prefix: str) -> str:
        return f"{prefix}.{self.name}"

    def write_spec(
        self, base_url: str, initial: float, maximum: float, days: int | None = None
    ) -> Path:
        spec = bench_spec(self.name, base_url, initial, maximum, days)
        self.spec_path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return self.spec_path


@dataclass(kw_only=True)
class ExtractorBenchContext(BrokerContext):
    """The shared context with PostgreSQL's settings (the ledger) and the work queues'
    prefix."""

    postgres: PostgresSettings
    work_queue_prefix: str

    def namespace(self) -> Namespace:
        return Namespace("bench_ext_" + secrets.token_hex(4), self.workdir)

    async def declare_sink(self, ns: Namespace) -> None:
        queue = await self.channel.declare_queue(
            ns.sink_queue,
            durable=True,
            arguments={"x-max-length": SINK_MESSAGES, "x-overflow": "drop-head"},
        )
        await queue.bind(self.exchange, routing_key=ns.routing_key)

    async def cleanup(self, ns: Namespace) -> None:
        """Delete the namespace's queues, its spec file and its ledger schema."""
        await delete_queues(self.channel, (ns.sink_queue, ns.work_queue(self.work_queue_prefix)))
        ns.spec_path.unlink(missing_ok=True)
        drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(ns.name))
        await self.postgres_scalar(drop)

    async def postgres_scalar(self, query: sql.Composed | str) -> Any:
        """One value from PostgreSQL (None for a statement without rows), waiting up to
        ``CLEANUP_SECONDS`` for it to be up."""
        return await retrying(
            lambda: self._scalar_once(query), (psycopg.OperationalError,), CLEANUP_SECONDS
        )

    async def _scalar_once(self, query: sql.Composed | str) -> Any:
        async with await psycopg.AsyncConnection.connect(
            self.postgres.conninfo, autocommit=True
        ) as conn:
            cursor = await conn.execute(query)
            row = await cursor.fetchone() if cursor.description else None
        return row[0] if row else None

    async def unspoiled(self, label: str, measure: Callable[[], Awaitable[T]]) -> T:
        """``measure()``, again (up to ``ATTEMPTS`` times) if it failed or PostgreSQL
        restarted meanwhile: tests beside the benchmark restart it, and a job whose ledger
        was down for a while measures the restart, not the extractor. The last attempt's
        error is raised."""
        for _ in range(ATTEMPTS - 1):
            kept = await self._kept(label, measure)
            if kept:
                return kept[0]
        started = await self.postgres_scalar(POSTMASTER_STARTED)
        result = await measure()
        if await self.postgres_scalar(POSTMASTER_STARTED) != started:
            raise RuntimeError(f"{label}: PostgreSQL restarted during each of {ATTEMPTS} attempts")
        return result

    async def _kept(self, label: str, measure: Callable[[], Awaitable[T]]) -> tuple[T] | None:
        """``(measure(),)`` if it succeeded with PostgreSQL up all along, else None (logged)."""
        started = await self.postgres_scalar(POSTMASTER_STARTED)
        try:
            result = await measure()
        except Exception as exc:  # any failure of a measurement: it is measured again
            log.warning("%s failed (%s); measuring it again", label, exc)
            return None
        if await self.postgres_scalar(POSTMASTER_STARTED) != started:
            log.warning("PostgreSQL restarted during %s; measuring it again", label)
            return None
        return (result,)


@contextlib.asynccontextmanager
async def extractor_context(
    workdir: Path, work_queue_prefix: str
) -> AsyncIterator[ExtractorBenchContext]:
    async with broker_context(workdir, JOB_SECONDS) as broker:
        yield ExtractorBenchContext(
            **broker.shared(), postgres=PostgresSettings(), work_queue_prefix=work_queue_prefix
        )
