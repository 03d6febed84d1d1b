"""One end-to-end round: a dataset spec under a fresh name (its own queues, ledger, schema
and graph labels), ``extractor run`` into both stores with a ``tableinator`` and a
``graphinator`` process, timed from the job's start to the run's exit (the extractor waits
until both stores finalised the job), with the CPU seconds of every process involved."""

from __future__ import annotations

import asyncio
import os
import resource
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
import yaml
from psycopg import sql

from bench.dlt_baseline import count_rows, drop_dataset
from bench.e2e_graph import drop_graph, graph_totals, prefix_labels, throwaway_neo4j
from bench.harness.broker import delete_queues
from bench.harness.processes import Background, ServiceCpu, background
from common.settings import AmqpSettings, PostgresSettings
from common.topology import Topology

STORES = ("tableinator", "graphinator")
WATCH_SECONDS = 1.0  # how often a running job's consumers are looked at


@dataclass
class JobRound:
    """What one job moved and what it cost."""

    label: str
    records: int  # records in the source
    seconds: float  # the job's start to both stores finalised
    rows: dict[str, int] = field(default_factory=dict)  # per table
    nodes: int = 0
    relationships: int = 0
    store_seconds: dict[str, float] = field(default_factory=dict)  # start to finalised
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        cores = os.cpu_count() or 1
        return {
            "label": self.label,
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(self.rate, 1),
            "rows": self.rows,
            "nodes": self.nodes,
            "relationships": self.relationships,
            "store_seconds": {k: round(v, 3) for k, v in self.store_seconds.items()},
            "store_records_per_second": {
                k: round(self.records / v, 1) for k, v in self.store_seconds.items() if v
            },
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu.items()},
            # the share of the machine's CPU each process used over the job's wall time
            "cpu_share": {k: round(v / (self.seconds * cores), 3) for k, v in self.cpu.items()},
        }


@dataclass(frozen=True)
class Job:
    """A spec to run (already pointed at its source) and the source's record count."""

    raw: dict[str, Any]
    records: int
    label: str
    env: dict[str, str] = field(default_factory=dict)
    stores: tuple[str, ...] = STORES
    graph_bulk: bool = False  # GRAPHINATOR_BULK_LOAD into a throwaway Neo4j, then its import


class Namespace:
    """A round's dataset name, label prefix and the spec written under them."""

    def __init__(self, job: Job, directory: Path) -> None:
        token = secrets.token_hex(4)
        self.name, self.prefix = f"e2e_{token}", f"E{token}"
        raw = yaml.safe_load(yaml.safe_dump(job.raw))  # a deep copy
        raw["name"] = self.name
        self.labels = prefix_labels(raw, self.prefix)
        self.entities = tuple(raw["entities"])
        self.tables = {e: raw["entities"][e]["table"]["name"] for e in self.entities}
        self.stores, self.graph_bulk = job.stores, job.graph_bulk
        self.spec = directory / f"{self.name}.yaml"
        self.spec.write_text(yaml.safe_dump(raw, sort_keys=False))

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        return dict(
            os.environ,
            DATASET_SPEC=str(self.spec),
            AMQP_CONSUMERS=",".join(self.stores),
            POSTGRES_SCHEMA=self.name,
            EXTRACTOR_LEDGER_SCHEMA=self.ledger,
            EXTRACTOR_WORK_QUEUE=f"extractor.work.{self.name}",
            LOG_LEVEL="WARNING",
            **extra,
        )

    @property
    def ledger(self) -> str:
        return f"{self.name}_ledger"

    def queues(self) -> list[str]:
        names = [f"extractor.work.{self.name}"]
        for store in self.stores:
            for entity in self.entities:
                names.append(Topology.queue_name(store, self.name, entity))
                names.append(Topology.dead_letter_queue_name(store, self.name, entity))
        return names


def run_job(job: Job, logs: Path, timeout: float) -> JobRound:
    """Run one job into its stores and count what landed; everything it made is deleted.

    With ``graph_bulk`` graphinator stages the graph in files (GRAPHINATOR_BULK_LOAD) for a
    throwaway Neo4j of the round's own, and ``graphinator bulk-import`` (timed with the
    job) loads them with neo4j-admin once the extractor is done.
    """
    ns = Namespace(job, logs)
    extra = dict(job.env)
    try:
        with ExitStack() as stack:
            if job.graph_bulk:
                extra.update(stack.enter_context(throwaway_neo4j(logs)))
                extra["GRAPHINATOR_BULK_LOAD"] = "true"
                extra["GRAPHINATOR_BULK_DIR"] = str(logs / f"{ns.name}.bulk")
            result = _measure(job, ns, ns.env(extra), logs, timeout)
    finally:
        cleanup(ns)
    return result


def _measure(job: Job, ns: Namespace, env: dict[str, str], logs: Path, timeout: float) -> JobRound:
    services = ServiceCpu()
    imported = 0.0
    with ExitStack() as stack:
        consumers = [
            stack.enter_context(
                background(["-m", store], env, logs / f"{ns.name}.{store}.log", store)
            )
            for store in ns.stores
        ]
        services.start()
        started_at, started = time.time(), time.perf_counter()
        log = logs / f"{ns.name}.extractor.log"
        cpu = run_python(["-m", "extractor", "run"], env, log, timeout, watch=consumers)
        store_seconds = finalised_after(ns.ledger, started_at)
        for consumer in consumers:
            consumer.stop()
        if job.graph_bulk:
            log = logs / f"{ns.name}.bulk-import.log"
            staged = store_seconds.get("graphinator")  # the job's files written and synced
            imported = run_python(["-m", "graphinator", "bulk-import"], env, log, timeout)
            store_seconds.update(graphinator=time.time() - started_at, staged=staged or 0.0)
        seconds = time.perf_counter() - started
    result = JobRound(job.label, job.records, seconds, store_seconds=store_seconds)
    result.cpu = {
        "extractor": cpu,
        **{consumer.name: consumer.cpu for consumer in consumers},
        **services.stop(),
    }
    if job.graph_bulk:  # neo4j-admin's CPU included; the shared Neo4j above sat idle
        result.cpu["bulk-import"] = imported
    conninfo = PostgresSettings().conninfo
    result.rows = {t: count_rows(conninfo, ns.name, t) for t in ns.tables.values()}
    if "graphinator" in ns.stores:
        address = env.get("NEO4J_ADDRESS") if job.graph_bulk else None
        result.nodes, result.relationships = asyncio.run(graph_totals(ns.labels, address))
    return result


def run_python(
    args: list[str],
    env: dict[str, str],
    log: Path,
    timeout: float,
    watch: Sequence[Background] = (),
) -> float:
    """``python ARGS`` to its exit (it raises on failure); its CPU seconds (the children's
    rusage taken around its wait: no other child of this process exits meanwhile).

    A process of ``watch`` that exits first (a consumer the job waits for) stops it at once
    and raises ConsumerDiedError, rather than leaving the job to wait until ``timeout``.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, *args], env=env, stdout=out, stderr=out)
    try:
        code = _wait(process, timeout, watch)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if code:
        raise subprocess.CalledProcessError(code, args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


class ConsumerDiedError(RuntimeError):
    """A consumer the job waits for exited while the job ran."""


def _wait(process: subprocess.Popen[bytes], timeout: float, watch: Sequence[Background]) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return process.wait(min(WATCH_SECONDS, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(process.args, timeout) from None
        for consumer in watch:
            code = consumer.process.poll()
            if code is not None:
                raise ConsumerDiedError(
                    f"{consumer.name} exited with code {code} while the job ran "
                    f"(see {consumer.log}); the job was stopped"
                )


def finalised_after(ledger: str, started_at: float) -> dict[str, float]:
    """Seconds from ``started_at`` to each store's last "finalised" event of the job."""
    query = sql.SQL(
        "SELECT service, extract(epoch FROM max(received_at)) FROM {}.job_events GROUP BY 1"
    ).format(sql.Identifier(ledger))
    with psycopg.connect(PostgresSettings().conninfo) as conn:
        rows = conn.execute(query).fetchall()
    return {service: float(at) - started_at for service, at in rows}


def cleanup(ns: Namespace) -> None:
    """Delete what the round made; every part is tried, even after one failed."""
    conninfo = PostgresSettings().conninfo
    with ExitStack() as stack:  # callbacks run last-in first-out: the schemas go first
        stack.callback(ns.spec.unlink, missing_ok=True)
        stack.callback(asyncio.run, _delete_queues(ns.queues()))
        if "graphinator" in ns.stores and not ns.graph_bulk:  # a throwaway goes whole
            stack.callback(asyncio.run, drop_graph(ns.labels, ns.prefix))
        for schema in (ns.ledger, ns.name):
            stack.callback(drop_dataset, conninfo, schema)


async def _delete_queues(names: list[str]) -> None:
    async with await aio_pika.connect(AmqpSettings().url) as connection:
        await delete_queues(await connection.channel(), names)
