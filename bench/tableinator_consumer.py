"""The project's path: tableinator, run in this process, consuming pre-published pages.

The records are published as page batches of 100, then an end-of-job message; the clock
runs from the consumer's cold start (connections, tables) until it reports the job
finalised on the events exchange, which it does only after every record is committed.
"""

from __future__ import annotations

import secrets

from prometheus_client import REGISTRY
from psycopg import sql

from bench.broker import publish_all, queue_depth
from bench.context import CONSUMER, ENTITY, BenchContext, Namespace
from bench.measure import Measurement, Stopwatch, cpu_seconds, run_until_finalised
from bench.records import PAGE_SIZE, BenchRecords
from common.envelope import EndOfJob, encode
from common.settings import (
    ConsumerSettings,
    DatasetSettings,
    ObservabilitySettings,
    TableinatorSettings,
)
from common.topology import Topology
from extractor.ledger.completion import CompletionWaiter
from tableinator.service import run as run_tableinator

LABELS = {
    "first": "tableinator, empty tables",
    "unchanged": "tableinator, re-run unchanged",
    "changed": "tableinator, re-run 10% changed",
}


async def project_load(
    ctx: BenchContext,
    ns: Namespace,
    records: BenchRecords,
    batch: ConsumerSettings,
    *,
    run: str,
    changed: bool,
) -> Measurement:
    """Publish the records as pages and an end-of-job, then time tableinator consuming them."""
    job_id = f"{ns.name}-{run}-{secrets.token_hex(3)}"
    await ctx.topology.declare_queue(ctx.channel, CONSUMER, ns.name, ENTITY)
    pages = records.pages(job_id=job_id, dataset=ns.name, entity=ENTITY, changed=changed)
    watch = Stopwatch()
    published = await publish_all(
        ctx.exchange, _routing_key(ns), ((encode(page), page.message_id) for page in pages)
    )
    publish_seconds = watch.elapsed()
    db_started = await ctx.scalar("SELECT clock_timestamp()")
    flushed_before = _flush_stats(ns)
    cpu_before = cpu_seconds()
    seconds, peak = await _time_job(ctx, ns, batch, job_id, pages=published, records=records.count)
    cpu = cpu_seconds() - cpu_before
    batches, batched, flush_seconds = (
        after - before for after, before in zip(_flush_stats(ns), flushed_before, strict=True)
    )
    rows, written = await _landed(ctx, ns, db_started)
    left = await queue_depth(ctx.channel, ns.queue)
    if rows != records.count or left:
        raise RuntimeError(f"{run}: {rows} rows of {records.count}, {left} messages left")
    return Measurement(
        name=f"tableinator_{run}",
        label=LABELS[run],
        records=records.count,
        seconds=seconds,
        peak_rss_mib=round(peak, 1),
        details={
            "rows_written": written,
            "publish_seconds": round(publish_seconds, 3),
            "publish_records_per_second": round(records.count / publish_seconds, 1),
            "pages": published,
            "page_size": PAGE_SIZE,
            "batch_size": batch.batch_size,
            "prefetch": batch.prefetch,
            "max_pending": batch.max_pending,
            "batches_written": int(batches),
            "mean_batch_records": round(batched / batches, 1) if batches else 0,
            "flush_seconds": round(flush_seconds, 3),
            "process_cpu_share": round(cpu / seconds, 2),
        },
    )


async def startup_seconds(ctx: BenchContext, ns: Namespace, batch: ConsumerSettings) -> float:
    """The fixed cost inside every timed run: a cold start and an end-of-job, no records."""
    await ctx.topology.declare_queue(ctx.channel, CONSUMER, ns.name, ENTITY)
    seconds, _ = await _time_job(ctx, ns, batch, f"{ns.name}-startup", pages=0, records=0)
    return seconds


def _routing_key(ns: Namespace) -> str:
    return Topology.routing_key(ns.name, ENTITY)


async def _time_job(
    ctx: BenchContext,
    ns: Namespace,
    batch: ConsumerSettings,
    job_id: str,
    *,
    pages: int,
    records: int,
) -> tuple[float, float]:
    """Publish the job's end-of-job message, then time the consumer until it is finalised."""
    waiter = CompletionWaiter(ctx.channel, ctx.topology, job_id)
    await waiter.listen()
    try:
        end = EndOfJob(job_id=job_id, dataset=ns.name, entity=ENTITY, pages=pages, records=records)
        await publish_all(ctx.exchange, _routing_key(ns), [(encode(end), end.message_id)])
        return await _consume_until_finalised(ctx, ns, batch, waiter)
    finally:
        await waiter.close()


async def _landed(ctx: BenchContext, ns: Namespace, since: object) -> tuple[int, int]:
    """Rows in the table, and rows written (inserted or updated) since ``since``."""
    rows = await ctx.scalar(sql.SQL("SELECT count(*) FROM {}").format(ns.table))
    written = await ctx.scalar(
        sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s").format(ns.table), (since,)
    )
    return int(rows), int(written)


def _flush_stats(ns: Namespace) -> tuple[float, float, float]:
    """Batches written, records in them and seconds spent writing, from the consumer's own
    Prometheus metrics (the consumer runs in this process)."""
    labels = {"service": CONSUMER, "dataset": ns.name, "entity": ENTITY}

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return (
        value("backfill_batch_size_records_count"),
        value("backfill_batch_size_records_sum"),
        value("backfill_flush_duration_seconds_sum"),
    )


async def _consume_until_finalised(
    ctx: BenchContext, ns: Namespace, batch: ConsumerSettings, waiter: CompletionWaiter
) -> tuple[float, float]:
    """Run tableinator from a cold start until it reports the job; (seconds, peak RSS)."""
    settings = TableinatorSettings(
        amqp=ctx.amqp,
        postgres=ctx.postgres.model_copy(update={"postgres_schema": ns.name}),
        dataset=DatasetSettings(dataset_spec=str(ns.spec_path)),
        batch=batch,
        observability=ObservabilitySettings(metrics_port=None),
    )
    return await run_until_finalised(
        CONSUMER, lambda stop: run_tableinator(settings, stop), waiter, ENTITY, ctx.timeout
    )
