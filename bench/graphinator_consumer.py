"""The project's path: graphinator, run in this process, consuming pre-published pages.

The records are published as page batches of 100, then an end-of-job message; the clock
runs from the consumer's cold start (driver, constraints) until it reports the job
finalised on the events exchange, which it does only after every record is committed and
the graph counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from bench.graph_context import (
    CONSUMER,
    ForeignWork,
    GraphBenchContext,
    GraphCounts,
    GraphNamespace,
    watching_foreign_work,
)
from bench.harness.broker import queue_depth
from bench.harness.consumer import (
    JobFigures,
    Service,
    consumer_metric,
    flush_stats,
    publish_job,
    time_job,
)
from bench.harness.measure import Measurement, cpu_seconds, load_average
from bench.records import BenchRecords
from common.settings import (
    ConsumerSettings,
    DatasetSettings,
    GraphinatorSettings,
    ObservabilitySettings,
)
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
    job_id, published, publish_seconds = await publish_job(ctx, ns, records, run, changed)
    before, errors_before = _consumer_stats(ns), _store_errors()
    server = neo4j_pid()
    cpu_before, neo4j_before = cpu_seconds(), neo4j_cpu_seconds()
    async with watching_foreign_work(ctx, ns.prefix) as foreign:
        consumer = service(ctx, ns, batch)
        seconds, peak = await time_job(ctx, ns, job_id, consumer, published, records.count)
    cpu, neo4j_cpu = cpu_seconds() - cpu_before, neo4j_cpu_seconds() - neo4j_before
    check_same_server(server, run)
    errors = _store_errors() - errors_before
    if errors:
        # A batch that failed was retried or split: its time is not graphinator's rate.
        raise SpoiledMeasurementError(f"{run}: {errors:.0f} store errors during the run")
    stats = {name: value - before[name] for name, value in _consumer_stats(ns).items()}
    counts = await _check_landed(ctx, ns, expected, run)
    details = {
        **_graph_details(stats, counts),
        **JobFigures(published, publish_seconds, seconds, cpu, stats).details(
            records.count, batch, "writes_in_flight"
        ),
        **server_details(neo4j_cpu, seconds, foreign),
    }
    return Measurement(
        f"graphinator_{run}", LABELS[run], records.count, seconds, round(peak, 1), details
    )


async def _check_landed(
    ctx: GraphBenchContext, ns: GraphNamespace, expected: ExpectedGraph, run: str
) -> GraphCounts:
    """The namespace's graph, which must be the one the records imply, queue drained."""
    counts = await ctx.counts(ns)
    left = await queue_depth(ctx.channel, ns.queue)
    if counts != expected.counts or left:
        raise SpoiledMeasurementError(
            f"{run}: graph {counts.as_dict()} instead of {expected.counts.as_dict()}, "
            f"{left} messages left"
        )
    return counts


# Detail name: the consumer's counter it is read from.
COUNTED = {
    "nodes_created": "nodes_created",
    "nodes_updated": "nodes_updated",
    "records_skipped": "nodes_skipped",
    "relationships_deleted": "relationships_deleted",
}


def _graph_details(stats: dict[str, float], counts: GraphCounts) -> dict[str, Any]:
    return {
        "nodes": int(stats["nodes_created"] + stats["nodes_updated"]),
        "relationships": int(stats["relationships_created"]),
        **{name: int(stats[counter]) for name, counter in COUNTED.items()},
        "graph": counts.as_dict(),
    }


def server_details(neo4j_cpu: float, seconds: float, foreign: ForeignWork) -> dict[str, Any]:
    """Neo4j's CPU share, other clients' work in it and the machine's load during a run."""
    return {
        "neo4j_cpu_share": round(neo4j_cpu / seconds, 2) if neo4j_cpu >= 0 else None,
        "foreign_neo4j_work": foreign.as_dict(),
        "load_average_1m": load_average()[0],
    }


def service(ctx: GraphBenchContext, ns: GraphNamespace, batch: ConsumerSettings) -> Service:
    """graphinator on the namespace's spec, metrics off."""
    settings = GraphinatorSettings(
        amqp=ctx.amqp,
        neo4j=ctx.neo4j,
        dataset=DatasetSettings(dataset_spec=str(ns.spec_path)),
        batch=batch,
        observability=ObservabilitySettings(metrics_port=None),
    )
    return lambda stop: run_graphinator(settings, stop)


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


def _consumer_stats(ns: GraphNamespace) -> dict[str, float]:
    """The consumer's own Prometheus counters for the namespace (it runs in this process)."""

    def value(name: str, outcome: str) -> float:
        return consumer_metric(CONSUMER, ns.name, name, outcome=outcome)

    return {
        **flush_stats(CONSUMER, ns.name),
        "nodes_created": value("backfill_graph_nodes_total", "created"),
        "nodes_updated": value("backfill_graph_nodes_total", "updated"),
        "nodes_skipped": value("backfill_graph_nodes_total", "skipped"),
        "relationships_created": value("backfill_graph_relationships_total", "created"),
        "relationships_deleted": value("backfill_graph_relationships_total", "deleted"),
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
