"""The project's path: graphinator, run in this process, consuming pre-published pages.

The records are published as page batches of 100, then an end-of-job message; the clock
runs from the consumer's cold start (driver, constraints) until it reports the job
finalised on the events exchange, which it does only after every record is committed and
the graph counted.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY

from bench.broker import publish_all, queue_depth
from bench.graph_context import (
    CONSUMER,
    ENTITY,
    GraphBenchContext,
    GraphCounts,
    GraphNamespace,
    watching_foreign_work,
)
from bench.measure import Measurement, Stopwatch, cpu_seconds, load_average, run_until_finalised
from bench.records import PAGE_SIZE, BenchRecords
from common.envelope import EndOfJob, encode
from common.settings import (
    ConsumerSettings,
    DatasetSettings,
    GraphinatorSettings,
    ObservabilitySettings,
)
from common.topology import Topology
from extractor.ledger.completion import CompletionWaiter
from graphinator.service import run as run_graphinator

LABELS = {
    "first": "graphinator, empty graph",
    "unchanged": "graphinator, re-run unchanged",
    "changed": "graphinator, re-run 10% changed",
}
NEO4J_PID_FILE = Path(__file__).resolve().parents[1] / ".local" / "run" / "neo4j.pid"
_TICKS = os.sysconf("SC_CLK_TCK")


class SpoiledMeasurementError(RuntimeError):
    """Neo4j restarted during a measurement, or the graph after it is not the one the
    records imply (a test beside the benchmark wiped the database): measure again."""


@dataclass(frozen=True)
class ExpectedGraph:
    """The graph ``count`` records make: nodes per label, relationships per type."""

    counts: GraphCounts

    @classmethod
    def of(cls, records: BenchRecords) -> ExpectedGraph:
        players: set[str] = set()
        formats: set[str] = set()
        played_by = 0
        for record in records.records():
            userids = {player["userid"] for player in record["players"]}
            players |= userids
            played_by += len(userids)
            formats.add(record["format"])
        nodes = {"Replay": records.count, "Player": len(players), "Format": len(formats)}
        return cls(GraphCounts(nodes, {"PLAYED_BY": played_by, "IN_FORMAT": records.count}))


async def project_load(
    ctx: GraphBenchContext,
    ns: GraphNamespace,
    records: BenchRecords,
    expected: ExpectedGraph,
    batch: ConsumerSettings,
    *,
    run: str,
    changed: bool,
) -> Measurement:
    """Publish the records as pages and an end-of-job, then time graphinator consuming them."""
    job_id = f"{ns.name}-{run}-{secrets.token_hex(3)}"
    await ctx.topology.declare_queue(ctx.channel, CONSUMER, ns.name, ENTITY)
    pages = records.pages(job_id=job_id, dataset=ns.name, entity=ENTITY, changed=changed)
    watch = Stopwatch()
    published = await publish_all(
        ctx.exchange, _routing_key(ns), ((encode(page), page.message_id) for page in pages)
    )
    publish_seconds = watch.elapsed()
    before, errors_before = _consumer_stats(ns), _store_errors()
    server = neo4j_pid()
    cpu_before, neo4j_before = cpu_seconds(), neo4j_cpu_seconds()
    async with watching_foreign_work(ctx, ns.prefix) as foreign:
        seconds, peak = await _time_job(
            ctx, ns, batch, job_id, pages=published, records=records.count
        )
    cpu, neo4j_cpu = cpu_seconds() - cpu_before, neo4j_cpu_seconds() - neo4j_before
    check_same_server(server, run)
    errors = _store_errors() - errors_before
    if errors:
        # A batch that failed was retried or split: its time is not graphinator's rate.
        raise SpoiledMeasurementError(f"{run}: {errors:.0f} store errors during the run")
    stats = {name: value - before[name] for name, value in _consumer_stats(ns).items()}
    counts = await ctx.counts(ns)
    left = await queue_depth(ctx.channel, ns.queue)
    if counts != expected.counts or left:
        raise SpoiledMeasurementError(
            f"{run}: graph {counts.as_dict()} instead of {expected.counts.as_dict()}, "
            f"{left} messages left"
        )
    nodes = int(stats["nodes_created"] + stats["nodes_updated"])
    relationships = int(stats["relationships_created"])
    return Measurement(
        name=f"graphinator_{run}",
        label=LABELS[run],
        records=records.count,
        seconds=seconds,
        peak_rss_mib=round(peak, 1),
        details={
            "nodes": nodes,
            "relationships": relationships,
            "nodes_created": int(stats["nodes_created"]),
            "nodes_updated": int(stats["nodes_updated"]),
            "records_skipped": int(stats["nodes_skipped"]),
            "relationships_deleted": int(stats["relationships_deleted"]),
            "graph": counts.as_dict(),
            "publish_seconds": round(publish_seconds, 3),
            "publish_records_per_second": round(records.count / publish_seconds, 1),
            "pages": published,
            "page_size": PAGE_SIZE,
            "batch_size": batch.batch_size,
            "prefetch": batch.prefetch,
            "max_pending": batch.max_pending,
            "writes_in_flight": batch.writes_in_flight,
            "batches_written": int(stats["batches"]),
            "mean_batch_records": (
                round(stats["batched"] / stats["batches"], 1) if stats["batches"] else 0
            ),
            "flush_seconds": round(stats["flush_seconds"], 3),
            "process_cpu_share": round(cpu / seconds, 2),
            "neo4j_cpu_share": round(neo4j_cpu / seconds, 2) if neo4j_cpu >= 0 else None,
            "foreign_neo4j_work": foreign.as_dict(),
            "load_average_1m": load_average()[0],
        },
    )


async def startup_seconds(
    ctx: GraphBenchContext, ns: GraphNamespace, batch: ConsumerSettings
) -> float:
    """The fixed cost inside every timed run: a cold start and an end-of-job, no records."""
    await ctx.topology.declare_queue(ctx.channel, CONSUMER, ns.name, ENTITY)
    seconds, _ = await _time_job(ctx, ns, batch, f"{ns.name}-startup", pages=0, records=0)
    return seconds


def neo4j_pid() -> int | None:
    """The local Neo4j server's process id (scripts/services.sh), if it runs here."""
    try:
        return int(NEO4J_PID_FILE.read_text().strip())
    except (OSError, ValueError):
        return None


def check_same_server(before: int | None, what: str) -> None:
    """Raise if Neo4j was restarted (by a test beside the benchmark) since ``before``."""
    now = neo4j_pid()
    if before != now:
        raise SpoiledMeasurementError(f"{what}: Neo4j restarted (pid {before} -> {now})")


def neo4j_cpu_seconds() -> float:
    """CPU time the local Neo4j server has used so far (-1 if it cannot be read)."""
    try:
        fields = Path(f"/proc/{neo4j_pid()}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return -1.0
    # utime and stime are fields 14 and 15 of /proc/PID/stat (11 and 12 after the name).
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _routing_key(ns: GraphNamespace) -> str:
    return Topology.routing_key(ns.name, ENTITY)


def _consumer_stats(ns: GraphNamespace) -> dict[str, float]:
    """The consumer's own Prometheus counters for the namespace (it runs in this process)."""
    labels = {"service": CONSUMER, "dataset": ns.name, "entity": ENTITY}

    def value(name: str, **extra: str) -> float:
        return REGISTRY.get_sample_value(name, {**labels, **extra}) or 0.0

    return {
        "batches": value("backfill_batch_size_records_count"),
        "batched": value("backfill_batch_size_records_sum"),
        "flush_seconds": value("backfill_flush_duration_seconds_sum"),
        "nodes_created": value("backfill_graph_nodes_total", outcome="created"),
        "nodes_updated": value("backfill_graph_nodes_total", outcome="updated"),
        "nodes_skipped": value("backfill_graph_nodes_total", outcome="skipped"),
        "relationships_created": value("backfill_graph_relationships_total", outcome="created"),
        "relationships_deleted": value("backfill_graph_relationships_total", outcome="deleted"),
    }


def _store_errors() -> float:
    """Store errors graphinator has met in this process (any kind: retried or split)."""
    total = 0.0
    for family in REGISTRY.collect():
        for sample in family.samples:
            if (
                sample.name == "backfill_store_errors_total"
                and sample.labels.get("service") == CONSUMER
            ):
                total += sample.value
    return total


async def _time_job(
    ctx: GraphBenchContext,
    ns: GraphNamespace,
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


async def _consume_until_finalised(
    ctx: GraphBenchContext,
    ns: GraphNamespace,
    batch: ConsumerSettings,
    waiter: CompletionWaiter,
) -> tuple[float, float]:
    """Run graphinator from a cold start until it reports the job; (seconds, peak RSS)."""
    settings = GraphinatorSettings(
        amqp=ctx.amqp,
        neo4j=ctx.neo4j,
        dataset=DatasetSettings(dataset_spec=str(ns.spec_path)),
        batch=batch,
        observability=ObservabilitySettings(metrics_port=None),
    )
    return await run_until_finalised(
        CONSUMER, lambda stop: run_graphinator(settings, stop), waiter, ENTITY, ctx.timeout
    )
