"""``python -m bench graphinator``: nodes+relationships/s from queue to committed MERGE in Neo4j.

In one run, on the same kind of records (the demo API's replays, pages of 100; a replay is
a node with ~2 PLAYED_BY relationships to players and one IN_FORMAT to its format):

1. the baselines, one record per message, prefetch 1, one transaction per record with its
   MERGEs: (a) a statement per MERGE group (discogsography's shape), (b) one statement;
2. graphinator itself, at its default settings, into an empty graph;
3. the same records again, unchanged (skipped by hash), then with every 10th record changed;
4. optionally, a sweep of ``NEO4J_BATCH_SIZE``.

Pages are published and timed as ``bench.harness.consumer`` does for every consumer.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import neo4j

from bench import graphinator_baselines as baselines
from bench.graph_context import GraphBenchContext, GraphNamespace, graph_context
from bench.graphinator_consumer import ExpectedGraph, SpoiledMeasurementError, project_load, service
from bench.harness.cli import ConsumerOptions
from bench.harness.consumer import startup_seconds
from bench.harness.measure import Measurement, peak_rss_mib
from bench.harness.run import RunInfo, every_run, isolated, median
from bench.records import BenchRecords
from common.settings import ConsumerSettings, consumer_settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# The issue's floors, and DESIGN.md's targets. The rate ("10k records/s including
# relationships"; DESIGN.md: "nodes+rels/s ... >= 20k rec/s") reads two ways, so both are
# judged: records/s (a record with all its relationships written) and nodes+rels/s.
TARGET_VS_BASELINE = 20.0
TARGET_RATE = 10_000.0
DESIGN_VS_BASELINE = 50.0
DESIGN_RATE = 20_000.0
# DESIGN.md's anchor: discogsography's consumers into Neo4j on a 2-core machine.
DISCOGSOGRAPHY_RECORDS_PER_SECOND = 960.0
# A test beside the benchmark may wipe or restart Neo4j mid-run: that round is measured again.
ATTEMPTS = 3
# What a restarted or wiped Neo4j raises at the benchmark (graphinator retries its own).
DISTURBED = (
    SpoiledMeasurementError,
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    OSError,
)
# Other clients' queries seen in more than this share of a measurement's samples spoil it.
FOREIGN_LIMIT = 0.1
# Untimed work first, so the JIT of a freshly started Neo4j does not slow the first figure.
WARM_UP_RECORDS = 10_000
WARM_UP_BASELINE_RECORDS = 300


class Options(ConsumerOptions):
    """What ``python -m bench graphinator`` measures, and how much (the common defaults)."""


def graph_rate(m: Measurement) -> float:
    """Nodes and relationships written per second (created, or updated for nodes)."""
    items = m.details.get("nodes", 0) + m.details.get("relationships", 0)
    return items / m.seconds if m.seconds > 0 else 0.0


@contextmanager
def _graph_turn() -> Iterator[None]:
    """Take the tests' turn with Neo4j (tests/conftest.py graph_turn): a test wiping the one
    graph of Neo4j Community mid-run would delete the benchmark's nodes."""
    path = Path(tempfile.gettempdir()) / "backfill-tests-neo4j.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


async def run_bench(options: Options) -> dict[str, Any]:
    """Every measurement of the run; the result is what ``--json`` writes."""
    base = consumer_settings("NEO4J", writes_in_flight=1)  # graphinator's own defaults
    info = RunInfo()
    with _graph_turn(), tempfile.TemporaryDirectory(prefix="bench-graph-") as workdir:
        async with graph_context(Path(workdir), options.timeout) as ctx:
            versions = await _versions(ctx)
            await _warm_up(ctx, base)
            records = BenchRecords(options.records)
            expected = ExpectedGraph.of(records)
            startup = await isolated(
                ctx, lambda ns: startup_seconds(ctx, ns, service(ctx, ns, base))
            )
            measurements, rounds = await _rounds(ctx, options, base, records, expected)
            sweep = await _sweep(ctx, options, base) if options.sweep else []
    return {
        **info.header("graphinator"),
        "versions": versions,
        "options": asdict(options),
        "consumer_settings": base.model_dump(),
        "expected_graph": expected.counts.as_dict(),
        "measurements": [_as_dict(m) for m in measurements],
        "summary": {
            **every_run(summarise(measurements), [summarise(r) for r in rounds]),
            "consumer_startup_seconds": round(startup, 3),
        },
        "sweep": sweep,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


def _as_dict(m: Measurement) -> dict[str, Any]:
    return {**m.as_dict(), "graph_items_per_second": round(graph_rate(m), 1)}


async def _warm_up(ctx: GraphBenchContext, base: ConsumerSettings) -> None:
    """A short untimed load through both paths (its figures are thrown away)."""
    records = BenchRecords(WARM_UP_RECORDS)
    expected = ExpectedGraph.of(records)
    few = BenchRecords(WARM_UP_BASELINE_RECORDS)
    load = partial(project_load, records=records, expected=expected, batch=base)
    try:
        for shape in baselines.SHAPES:
            baseline = partial(baselines.per_record_transaction, ctx, records=few, shape=shape)
            await isolated(ctx, baseline)
        await isolated(ctx, lambda ns: load(ctx, ns, run="first", changed=False))
    except DISTURBED as exc:
        log.warning("warm-up disturbed (%s)", exc)
        await _wait_for_neo4j(ctx)


async def _attempts(
    ctx: GraphBenchContext, base: ConsumerSettings, what: str, measure: Callable[[], Awaitable[T]]
) -> T:
    """Measure again when Neo4j restarted or was wiped during the measurement (after a
    restart, warm the new server up first), or when other clients' queries ran in Neo4j
    for more than ``FOREIGN_LIMIT`` of it; the last attempt's figures stand, flagged."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            result = await measure()
        except DISTURBED as exc:
            if attempt == ATTEMPTS:
                raise
            log.warning("%s: measuring again (%s)", what, exc)
            await _wait_for_neo4j(ctx)
            await _warm_up(ctx, base)
            continue
        shared = _foreign_share(result)
        if shared <= FOREIGN_LIMIT or attempt == ATTEMPTS:
            return result
        log.warning(
            "%s: other Neo4j work in %.0f%% of samples; measuring again", what, shared * 100
        )
    raise AssertionError("unreachable")


def _foreign_share(result: object) -> float:
    """The largest share of samples in which other clients used Neo4j, over the result's
    measurements."""
    found = result if isinstance(result, list | tuple) else [result]
    return max(
        (
            float(m.details.get("foreign_neo4j_work", {}).get("share", 0.0))
            for m in found
            if isinstance(m, Measurement)
        ),
        default=0.0,
    )


async def _wait_for_neo4j(ctx: GraphBenchContext) -> None:
    for _ in range(120):
        try:
            await ctx.driver.verify_connectivity()
            return
        except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired, OSError):
            await asyncio.sleep(1)


async def _rounds(
    ctx: GraphBenchContext,
    options: Options,
    base: ConsumerSettings,
    records: BenchRecords,
    expected: ExpectedGraph,
) -> tuple[list[Measurement], list[list[Measurement]]]:
    """``repeat`` rounds of: the baselines, then graphinator's first load, unchanged re-run
    and 10%-changed re-run; each measurement's median round. Baselines and graphinator run
    side by side in every round, so a busy spell on the machine hits both."""
    few = BenchRecords(options.baseline_records)

    async def project_round(ns: GraphNamespace) -> list[Measurement]:
        load = partial(project_load, ctx, ns, records, expected, base)
        return [
            await load(run="first", changed=False),
            await load(run="unchanged", changed=False),
            await load(run="changed", changed=True),
        ]

    rounds: list[list[Measurement]] = []
    for number in range(1, options.repeat + 1):
        measured: list[Measurement] = []
        for shape in () if options.skip_baseline else baselines.SHAPES:
            baseline = partial(
                baselines.per_record_transaction,
                ctx,
                records=few,
                shape=shape,
                limit=options.baseline_seconds,
            )
            what = f"round {number} baseline {shape}"
            measured.append(await _attempts(ctx, base, what, partial(isolated, ctx, baseline)))
        spoilable = partial(isolated, ctx, project_round)
        measured += await _attempts(ctx, base, f"round {number}", spoilable)
        log.warning(
            "round %d: %s",
            number,
            ", ".join(f"{m.name} {m.seconds:.2f} s ({m.rate:,.0f} rec/s)" for m in measured),
        )
        rounds.append(measured)
    return [_median(list(runs)) for runs in zip(*rounds, strict=True)], rounds


def _median(runs: list[Measurement]) -> Measurement:
    """The round with the median rate (a baseline stopped by its time limit has fewer
    records), with every round's figures beside it."""
    return median(
        runs,
        key=lambda m: m.rate,
        each={
            "seconds_of_each_round": lambda m: round(m.seconds, 3),
            "records_per_second_of_each_round": lambda m: round(m.rate),
            "graph_items_per_second_of_each_round": lambda m: round(graph_rate(m)),
        },
    )


async def _sweep(
    ctx: GraphBenchContext, options: Options, base: ConsumerSettings
) -> list[dict[str, Any]]:
    """Batch size: first load and unchanged re-run of ``sweep_records``, other settings as
    graphinator's defaults. Rounds go over every cell before the next round starts."""
    records = BenchRecords(options.sweep_records)
    expected = ExpectedGraph.of(records)
    runs: dict[int, list[tuple[Measurement, Measurement]]] = {
        size: [] for size in options.sweep_batch_sizes
    }
    for _ in range(options.repeat):
        for batch_size in options.sweep_batch_sizes:
            batch = base.model_copy(update={"batch_size": batch_size})

            cell = partial(_sweep_cell, ctx, records, expected, batch)
            first, rerun = await _attempts(
                ctx, base, f"sweep batch {batch_size}", partial(isolated, ctx, cell)
            )
            log.warning(
                "sweep batch_size=%d first=%.0f rec/s %.0f nodes+rels/s unchanged=%.0f rec/s",
                batch_size,
                first.rate,
                graph_rate(first),
                rerun.rate,
            )
            runs[batch_size].append((first, rerun))
    return [_sweep_row(size, runs[size]) for size in options.sweep_batch_sizes]


async def _sweep_cell(
    ctx: GraphBenchContext,
    records: BenchRecords,
    expected: ExpectedGraph,
    batch: ConsumerSettings,
    ns: GraphNamespace,
) -> tuple[Measurement, Measurement]:
    load = partial(project_load, ctx, ns, records, expected, batch)
    return await load(run="first", changed=False), await load(run="unchanged", changed=False)


def _sweep_row(batch_size: int, runs: list[tuple[Measurement, Measurement]]) -> dict[str, Any]:
    first = _median([f for f, _ in runs])
    rerun = _median([r for _, r in runs])
    return {
        "batch_size": batch_size,
        "records": first.records,
        "nodes": first.details["nodes"],
        "relationships": first.details["relationships"],
        "first_seconds": round(first.seconds, 3),
        "first_records_per_second": round(first.rate, 1),
        "first_graph_items_per_second": round(graph_rate(first), 1),
        "unchanged_records_per_second": round(rerun.rate, 1),
        "first_rounds_graph_items_per_second": [round(graph_rate(f)) for f, _ in runs],
        "unchanged_rounds_records_per_second": [round(r.rate) for _, r in runs],
        "first_mean_batch_records": first.details["mean_batch_records"],
        "first_process_cpu_share": first.details["process_cpu_share"],
        "first_neo4j_cpu_share": first.details["neo4j_cpu_share"],
        "first_peak_rss_mib": first.peak_rss_mib,
        "first_foreign_neo4j_share": first.details["foreign_neo4j_work"]["share"],
    }


def summarise(measurements: list[Measurement]) -> dict[str, Any]:
    """The ratios the project is judged by, and whether each target is met."""
    by_name = {m.name: m for m in measurements}
    first = by_name["graphinator_first"]
    unchanged = by_name["graphinator_unchanged"]
    summary: dict[str, Any] = {
        "first_load_records_per_second": round(first.rate, 1),
        "first_load_graph_items_per_second": round(graph_rate(first), 1),
        "target_records_per_second": TARGET_RATE,
        "design_records_per_second": DESIGN_RATE,
        "rate_target_met": first.rate >= TARGET_RATE,
        "design_rate_met": first.rate >= DESIGN_RATE,
        "graph_rate_target_met": graph_rate(first) >= TARGET_RATE,
        "design_graph_rate_met": graph_rate(first) >= DESIGN_RATE,
        "rerun_records_per_second": round(unchanged.rate, 1),
        "rerun_speedup": round(unchanged.rate / first.rate, 2),
        "vs_discogsography_anchor": round(first.rate / DISCOGSOGRAPHY_RECORDS_PER_SECOND, 1),
    }
    bases = [m for m in measurements if m.name.startswith("baseline_")]
    for m in bases:
        shape = m.name.removeprefix("baseline_")
        summary[f"vs_baseline_{shape}"] = round(graph_rate(first) / graph_rate(m), 1)
        summary[f"vs_baseline_{shape}_records"] = round(first.rate / m.rate, 1)
    if bases:
        # The faster baseline is the one the targets are judged against.
        best = max(bases, key=graph_rate)
        ratio = graph_rate(first) / graph_rate(best)
        summary.update(
            baseline=best.name,
            vs_baseline=round(ratio, 1),
            target_vs_baseline=TARGET_VS_BASELINE,
            design_vs_baseline=DESIGN_VS_BASELINE,
            baseline_target_met=ratio >= TARGET_VS_BASELINE,
            design_baseline_met=ratio >= DESIGN_VS_BASELINE,
        )
    return summary


async def _versions(ctx: GraphBenchContext) -> dict[str, str]:
    return {
        "neo4j": await ctx.neo4j_version(),
        "neo4j_driver": neo4j.__version__,
        "neo4j_rust_ext": _rust_ext_version(),
        "rabbitmq": ctx.rabbitmq_version,
        "aio_pika": aio_pika.__version__,
    }


def _rust_ext_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neo4j-rust-ext")
    except PackageNotFoundError:
        return "not installed"
