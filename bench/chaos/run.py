"""One job of the demo dataset in its own namespace, run by real processes.

The namespace is the dataset name, so the PostgreSQL schema (tables and the extractor's
ledger) and the queues are the run's own; the graph is shared (one Neo4j database), which
is why the runner takes the graph lock around a run. ``cleanup`` drops all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import psycopg
import yaml
from psycopg import sql

from bench.chaos.context import SuiteContext
from bench.chaos.processes import Service, base_env
from common.settings import AmqpSettings, PostgresSettings
from common.spec import BUNDLED_DIR, DatasetSpec, load_spec
from common.topology import Topology

log = logging.getLogger(__name__)
LEASE_SECONDS = "3"  # a killed extractor's slices are free for `resume` after this
WAIT_SECONDS = 900  # `extractor run --wait-timeout`: the stores must finalise within this


@dataclass(frozen=True)
class Addresses:
    """Where the processes reach the servers: directly, or through Toxiproxy's ports."""

    amqp: str
    postgres: str
    neo4j: str

    @classmethod
    def direct(cls) -> Addresses:
        return cls(AmqpSettings().url, PostgresSettings().postgres_address, "bolt://127.0.0.1:7687")

    @classmethod
    def proxied(cls, ports: dict[str, int]) -> Addresses:
        parts = urlsplit(AmqpSettings().url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{ports['rabbitmq']}"
        amqp = urlunsplit(
            parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host)
        )
        return cls(amqp, f"127.0.0.1:{ports['postgres']}", f"bolt://127.0.0.1:{ports['neo4j']}")


@dataclass
class JobRun:
    """The processes of one job: consumer replicas and the extractor."""

    ctx: SuiteContext
    name: str
    addresses: Addresses
    replicas: int = 2
    settings: dict[str, str] = field(default_factory=dict)  # extra env for every process
    direct_ledger: bool = False  # the extractor reaches PostgreSQL (its ledger) unproxied
    consumers: list[Service] = field(default_factory=list)
    extractor: Service | None = None
    driver: Service | None = None  # `run --enqueue-only` when the work is done by a worker
    started: float = 0.0

    def __post_init__(self) -> None:
        self.dir = self.ctx.workdir / self.name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.spec_path = self._write_spec()
        self.spec: DatasetSpec = load_spec(self.spec_path)
        self.job_id = f"{self.name}-job"

    def _write_spec(self) -> Path:
        raw = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
        raw["name"] = self.name
        path = self.dir / "spec.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return base_env(
            **{
                "DATASET_SPEC": str(self.spec_path),
                "AMQP_CONNECTION": self.addresses.amqp,
                "POSTGRES_ADDRESS": self.addresses.postgres,
                "POSTGRES_SCHEMA": self.name,
                "NEO4J_ADDRESS": self.addresses.neo4j,
                "EXTRACTOR_SOURCE_URL": self.ctx.demo_url,
                "EXTRACTOR_LEDGER_SCHEMA": self.name,
                "EXTRACTOR_LEASE_SECONDS": LEASE_SECONDS,
                **self.settings,
                **extra,
            }
        )

    def extractor_env(self) -> dict[str, str]:
        if not self.direct_ledger:
            return self.env()
        return self.env(POSTGRES_ADDRESS=Addresses.direct().postgres)

    @property
    def services(self) -> list[Service]:
        return self.consumers + ([self.extractor] if self.extractor else [])

    def queues(self) -> list[str]:
        names = [f"extractor.work.{self.name}", f"extractor.events.{self.job_id}"]
        for entity in self.spec.entities:
            for consumer in ("tableinator", "graphinator"):
                names.append(Topology.queue_name(consumer, self.name, entity))
                names.append(Topology.dead_letter_queue_name(consumer, self.name, entity))
        return names

    def consumer_queues(self) -> list[str]:
        return [
            Topology.queue_name(consumer, self.name, entity)
            for entity in self.spec.entities
            for consumer in ("tableinator", "graphinator")
        ]

    def dead_letter_queues(self) -> list[str]:
        return [
            Topology.dead_letter_queue_name(consumer, self.name, entity)
            for entity in self.spec.entities
            for consumer in ("tableinator", "graphinator")
        ]

    def start_consumers(self) -> None:
        for module in ("tableinator", "graphinator"):
            for replica in range(1, self.replicas + 1):
                name = f"{module}-{replica}"
                service = Service(name, module, self.env(), self.dir / f"{name}.log")
                service.start()
                self.consumers.append(service)

    def start_extractor(self, args: list[str] | None = None) -> Service:
        """``extractor run`` of this run's job (or ``args``, e.g. ``resume JOB``)."""
        if self.extractor is None:
            env = self.extractor_env()
            self.extractor = Service("extractor", "extractor", env, self.dir / "extractor.log")
        self.extractor.start(args or self.run_args())
        if not self.started:
            self.started = time.monotonic()
        return self.extractor

    def run_args(self) -> list[str]:
        return ["run", "--job-id", self.job_id, "--wait-timeout", str(WAIT_SECONDS)]

    def resume_args(self) -> list[str]:
        return ["resume", self.job_id, "--wait-timeout", str(WAIT_SECONDS)]

    def start_driver(self) -> Service:
        """``extractor run --enqueue-only``: plans and queues the job, follows it to its end
        and waits for the stores (a client, not a service: the work is a worker's)."""
        self.driver = Service("driver", "extractor", self.extractor_env(), self.dir / "driver.log")
        self.driver.start([*self.run_args(), "--enqueue-only"])
        self.started = time.monotonic()
        return self.driver

    def stop_all(self) -> None:
        for service in self.services + ([self.driver] if self.driver else []):
            service.stop_now()

    async def cleanup(self) -> None:
        """Drop the run's schema and delete its queues (a restarting server is waited for)."""
        for attempt in range(5):
            try:
                await self._cleanup()
                return
            except (psycopg.OperationalError, aio_pika.exceptions.AMQPError, OSError):
                if attempt == 4:
                    raise
                await asyncio.sleep(5.0)

    async def _cleanup(self) -> None:
        conninfo = PostgresSettings().conninfo
        async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
            await conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.name))
            )
        connection = await aio_pika.connect(self.ctx.amqp_url)
        async with connection:
            for name in self.queues():
                channel = await connection.channel()
                with contextlib.suppress(aio_pika.exceptions.ChannelClosed):
                    await channel.queue_delete(name)

    def elapsed(self) -> float:
        return time.monotonic() - self.started if self.started else 0.0

    def logs_tail(self, lines: int = 20) -> dict[str, Any]:
        return {
            s.name: s.log.read_text(errors="replace").splitlines()[-lines:]
            for s in self.services
            if s.log.exists()
        }
