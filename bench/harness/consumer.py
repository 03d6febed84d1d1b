"""Timing a consumer of the project: publish the records as page batches and an end-of-job,
run the consumer in this process from a cold start until it reports the job finalised.

The clock runs from the consumer's start until its "finalised" event for the job arrives on
the events exchange, which it sends only after every record is committed.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import orjson
from aio_pika.abc import AbstractChannel, AbstractExchange
from prometheus_client import REGISTRY

from bench.harness.broker import declare_plain_queue, publish_all
from bench.harness.measure import Stopwatch, run_until_finalised
from bench.records import PAGE_SIZE, BenchRecords
from common.envelope import EndOfJob, encode
from common.settings import ConsumerSettings
from common.topology import Topology
from extractor.ledger.completion import CompletionWaiter

ENTITY = "replays"
# Runs a consumer until the event is set.
Service = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class Publishing(Protocol):
    """What a benchmark context offers for publishing and timing."""

    channel: AbstractChannel
    exchange: AbstractExchange
    topology: Topology
    timeout: float


@dataclass(frozen=True)
class ConsumerNamespace:
    """One measurement's dataset name (naming its queues) and spec file."""

    consumer: ClassVar[str] = ""
    name: str
    spec_path: Path

    @property
    def queue(self) -> str:
        return Topology.queue_name(self.consumer, self.name, ENTITY)

    @property
    def baseline_queue(self) -> str:
        """The baselines' queue: one record per message, on the default exchange."""
        return f"bench.{self.name}.one_record_per_message"

    @property
    def queues(self) -> list[str]:
        dlq = Topology.dead_letter_queue_name(self.consumer, self.name, ENTITY)
        return [self.queue, dlq, self.baseline_queue]


async def publish_job(
    ctx: Publishing, ns: ConsumerNamespace, records: BenchRecords, run: str, changed: bool
) -> tuple[str, int, float]:
    """Publish the records as page batches of a new job; (job id, pages, seconds)."""
    consumer, dataset = ns.consumer, ns.name
    job_id = f"{dataset}-{run}-{secrets.token_hex(3)}"
    await ctx.topology.declare_queue(ctx.channel, consumer, dataset, ENTITY)
    pages = records.pages(job_id=job_id, dataset=dataset, entity=ENTITY, changed=changed)
    watch = Stopwatch()
    published = await publish_all(
        ctx.exchange,
        Topology.routing_key(dataset, ENTITY),
        ((encode(page), page.message_id) for page in pages),
    )
    return job_id, published, watch.elapsed()


async def time_job(
    ctx: Publishing, ns: ConsumerNamespace, job_id: str, service: Service, pages: int, records: int
) -> tuple[float, float]:
    """Publish the job's end-of-job message (``pages`` and ``records`` published), then time
    the consumer until it is finalised; (seconds, peak RSS)."""
    consumer, dataset = ns.consumer, ns.name
    waiter = CompletionWaiter(ctx.channel, ctx.topology, job_id)
    await waiter.listen()
    try:
        end = EndOfJob(job_id=job_id, dataset=dataset, entity=ENTITY, pages=pages, records=records)
        routing_key = Topology.routing_key(dataset, ENTITY)
        await publish_all(ctx.exchange, routing_key, [(encode(end), end.message_id)])
        return await run_until_finalised(consumer, service, waiter, ENTITY, ctx.timeout)
    finally:
        await waiter.close()


async def startup_seconds(ctx: Publishing, ns: ConsumerNamespace, service: Service) -> float:
    """The fixed cost inside every timed run: a cold start and an end-of-job, no records."""
    await ctx.topology.declare_queue(ctx.channel, ns.consumer, ns.name, ENTITY)
    seconds, _ = await time_job(ctx, ns, f"{ns.name}-startup", service, 0, 0)
    return seconds


async def publish_one_per_message(ctx: Publishing, queue: str, records: BenchRecords) -> float:
    """The baselines' input: every record its own message on ``queue``; the seconds it took."""
    await declare_plain_queue(ctx.channel, queue)
    watch = Stopwatch()
    await publish_all(
        ctx.channel.default_exchange,
        queue,
        ((orjson.dumps(r), f"bench/{r['id']}") for r in records.records()),
    )
    return watch.elapsed()


def consumer_metric(consumer: str, dataset: str, name: str, **extra: str) -> float:
    """One of the consumer's own Prometheus samples (it runs in this process)."""
    labels = {"service": consumer, "dataset": dataset, "entity": ENTITY, **extra}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def flush_stats(consumer: str, dataset: str) -> dict[str, float]:
    """Batches written, records in them and seconds spent writing, so far."""
    return {
        "batches": consumer_metric(consumer, dataset, "backfill_batch_size_records_count"),
        "batched": consumer_metric(consumer, dataset, "backfill_batch_size_records_sum"),
        "flush_seconds": consumer_metric(consumer, dataset, "backfill_flush_duration_seconds_sum"),
    }


def flush_details(stats: dict[str, float]) -> dict[str, Any]:
    """The flush figures of a measurement from the difference of ``flush_stats``."""
    batches = stats["batches"]
    return {
        "batches_written": int(batches),
        "mean_batch_records": round(stats["batched"] / batches, 1) if batches else 0,
        "flush_seconds": round(stats["flush_seconds"], 3),
    }


def batch_details(batch: ConsumerSettings, *extra: str) -> dict[str, Any]:
    """The consumer's batch settings a measurement ran with."""
    names = ("batch_size", "prefetch", "max_pending", *extra)
    return {name: getattr(batch, name) for name in names}


@dataclass(frozen=True)
class JobFigures:
    """What every consumer measurement reports of its job beside its rate."""

    pages: int
    publish_seconds: float
    seconds: float
    cpu_seconds: float
    flushed: dict[str, float]  # the difference of ``flush_stats`` over the run

    def details(self, records: int, batch: ConsumerSettings, *extra: str) -> dict[str, Any]:
        return {
            "publish_seconds": round(self.publish_seconds, 3),
            "publish_records_per_second": round(records / self.publish_seconds, 1),
            "pages": self.pages,
            "page_size": PAGE_SIZE,
            **batch_details(batch, *extra),
            **flush_details(self.flushed),
            "process_cpu_share": round(self.cpu_seconds / self.seconds, 2),
        }
