"""The project's path: tableinator, run in this process, consuming pre-published pages.

The records are published as page batches of 100, then an end-of-job message; the clock
runs from the consumer's cold start (connections, tables) until it reports the job
finalised on the events exchange, which it does only after every record is committed.
"""

from __future__ import annotations

from psycopg import sql

from bench.context import CONSUMER, BenchContext, Namespace
from bench.harness.broker import queue_depth
from bench.harness.consumer import (
    JobFigures,
    Service,
    flush_stats,
    publish_job,
    time_job,
)
from bench.harness.measure import Measurement, cpu_seconds
from bench.records import BenchRecords
from common.settings import (
    ConsumerSettings,
    DatasetSettings,
    ObservabilitySettings,
    TableinatorSettings,
)
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
    job_id, published, publish_seconds = await publish_job(ctx, ns, records, run, changed)
    db_started = await ctx.scalar("SELECT clock_timestamp()")
    flushed_before, cpu_before = flush_stats(CONSUMER, ns.name), cpu_seconds()
    consumer = service(ctx, ns, batch)
    seconds, peak = await time_job(ctx, ns, job_id, consumer, published, records.count)
    cpu = cpu_seconds() - cpu_before
    flushed = flush_stats(CONSUMER, ns.name)
    rows, written = await _landed(ctx, ns, db_started)
    left = await queue_depth(ctx.channel, ns.queue)
    if rows != records.count or left:
        raise RuntimeError(f"{run}: {rows} rows of {records.count}, {left} messages left")
    details = {
        "rows_written": written,
        **JobFigures(
            published,
            publish_seconds,
            seconds,
            cpu,
            {k: flushed[k] - flushed_before[k] for k in flushed},
        ).details(records.count, batch),
    }
    return Measurement(
        f"tableinator_{run}", LABELS[run], records.count, seconds, round(peak, 1), details
    )


def service(ctx: BenchContext, ns: Namespace, batch: ConsumerSettings) -> Service:
    """tableinator on the namespace's schema and spec, metrics off."""
    settings = TableinatorSettings(
        amqp=ctx.amqp,
        postgres=ctx.postgres.model_copy(update={"postgres_schema": ns.name}),
        dataset=DatasetSettings(dataset_spec=str(ns.spec_path)),
        batch=batch,
        observability=ObservabilitySettings(metrics_port=None),
    )
    return lambda stop: run_tableinator(settings, stop)


async def _landed(ctx: BenchContext, ns: Namespace, since: object) -> tuple[int, int]:
    """Rows in the table, and rows written (inserted or updated) since ``since``."""
    rows = await ctx.scalar(sql.SQL("SELECT count(*) FROM {}").format(ns.table))
    written = await ctx.scalar(
        sql.SQL("SELECT count(*) FROM {} WHERE updated_at >= %s").format(ns.table), (since,)
    )
    return int(rows), int(written)
