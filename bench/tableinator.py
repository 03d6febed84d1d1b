"""``python -m bench tableinator``: records/s from queue to committed upsert in PostgreSQL.

In one run, on the same records (~400-byte replays, pages of 100):

1. the baselines, one record per message: (a) one upsert committed per message,
   prefetch 1; (b) executemany of 50 records per commit, prefetch 50;
2. tableinator itself, at its default settings, into empty tables;
3. the same records again, unchanged, then with every 10th record changed;
4. the ceiling: one plain COPY of the same rows into an empty table.

Pages are published and timed as ``bench.harness.consumer`` does for every consumer.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import orjson
import psycopg

from bench import tableinator_baselines as baselines
from bench.context import BenchContext
from bench.harness.cli import ConsumerOptions
from bench.harness.consumer import startup_seconds
from bench.harness.context import broker_context
from bench.harness.measure import Measurement, peak_rss_mib
from bench.harness.run import RunInfo, every_run, isolated, median
from bench.records import BenchRecords
from bench.tableinator_consumer import project_load, service
from common.settings import (
    ConsumerSettings,
    PostgresSettings,
    consumer_settings,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TARGET_VS_BASELINE = 30.0
TARGET_RATE = 50_000.0
TARGET_RERUN_SPEEDUP = 3.0


@dataclass(frozen=True)
class Options(ConsumerOptions):
    """What ``python -m bench tableinator`` measures, and how much."""

    records: int = 200_000
    baseline_records: int = 10_000
    sweep_records: int = 100_000
    sweep_batch_sizes: tuple[int, ...] = (1000, 2000, 5000, 10000)
    sweep_prefetch: tuple[int, ...] = (50, 200, 1000)
    timeout: float = 300.0


async def run_bench(options: Options) -> dict[str, Any]:
    """Every measurement of the run; the result is what ``--json`` writes."""
    base = consumer_settings("POSTGRES")
    info = RunInfo()
    async with _context(options) as ctx:
        versions = await _versions(ctx)
        measurements: list[Measurement] = []
        if not options.skip_baseline:
            few = BenchRecords(options.baseline_records)
            for baseline in (baselines.per_message_upsert, baselines.executemany_upsert):
                measure = partial(baseline, ctx, records=few, limit=options.baseline_seconds)
                measurements.append(await isolated(ctx, measure))
        records = BenchRecords(options.records)
        startup = await isolated(ctx, lambda ns: startup_seconds(ctx, ns, service(ctx, ns, base)))
        medians, rounds = await _project_runs(ctx, records, base, options.repeat)
        measurements += medians
        for primary_key in (False, True):
            copy = partial(baselines.plain_copy, ctx, records=records, primary_key=primary_key)
            measurements.append(await isolated(ctx, copy))
        sweep = await _sweep(ctx, options, base) if options.sweep else []
    return {
        **info.header("tableinator"),
        "versions": versions,
        "options": asdict(options),
        "consumer_settings": base.model_dump(),
        "record_bytes": _record_bytes(records),
        "measurements": [m.as_dict() for m in measurements],
        "summary": {
            **every_run(summarise(measurements), [summarise(measurements + r) for r in rounds]),
            "consumer_startup_seconds": round(startup, 3),
        },
        "sweep": sweep,
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }


@asynccontextmanager
async def _context(options: Options) -> AsyncIterator[BenchContext]:
    with tempfile.TemporaryDirectory(prefix="bench-") as workdir:
        async with broker_context(Path(workdir), options.timeout) as broker:
            yield BenchContext(**broker.shared(), postgres=PostgresSettings())


async def _project_runs(
    ctx: BenchContext, records: BenchRecords, batch: ConsumerSettings, repeat: int
) -> tuple[list[Measurement], list[list[Measurement]]]:
    """First load, unchanged re-run, 10%-changed re-run: the median of ``repeat`` rounds,
    and every round."""
    rounds: list[list[Measurement]] = []
    for _ in range(repeat):
        ns = ctx.namespace()
        try:
            rounds.append(
                [
                    await project_load(ctx, ns, records, batch, run="first", changed=False),
                    await project_load(ctx, ns, records, batch, run="unchanged", changed=False),
                    await project_load(ctx, ns, records, batch, run="changed", changed=True),
                ]
            )
        finally:
            await ctx.cleanup(ns)
    return [_median(list(runs)) for runs in zip(*rounds, strict=True)], rounds


def _median(runs: list[Measurement]) -> Measurement:
    return median(
        runs,
        key=lambda m: m.seconds,
        each={"seconds_of_each_round": lambda m: round(m.seconds, 3)},
    )


async def _sweep(
    ctx: BenchContext, options: Options, base: ConsumerSettings
) -> list[dict[str, Any]]:
    """Batch size x prefetch: first load and unchanged re-run of ``sweep_records``.

    Rounds go over every cell before the next round starts, so a burst of other work on
    the machine spoils one round of several cells rather than every round of one; each
    cell reports its median round.
    """
    records = BenchRecords(options.sweep_records)
    cells = [(b, p) for b in options.sweep_batch_sizes for p in options.sweep_prefetch]
    runs: dict[tuple[int, int], list[tuple[Measurement, Measurement]]] = {c: [] for c in cells}
    for _ in range(options.repeat):
        for batch_size, prefetch in cells:
            batch = base.model_copy(update={"batch_size": batch_size, "prefetch": prefetch})
            ns = ctx.namespace()
            try:
                first = await project_load(ctx, ns, records, batch, run="first", changed=False)
                rerun = await project_load(ctx, ns, records, batch, run="unchanged", changed=False)
            finally:
                await ctx.cleanup(ns)
            log.warning(
                "sweep batch_size=%d prefetch=%d first=%.0f/s unchanged=%.0f/s",
                batch_size,
                prefetch,
                first.rate,
                rerun.rate,
            )
            runs[(batch_size, prefetch)].append((first, rerun))
    return [_sweep_row(cell, runs[cell]) for cell in cells]


def _sweep_row(
    cell: tuple[int, int], runs: list[tuple[Measurement, Measurement]]
) -> dict[str, Any]:
    batch_size, prefetch = cell
    first = _median([f for f, _ in runs])
    rerun = _median([r for _, r in runs])
    return {
        "batch_size": batch_size,
        "prefetch": prefetch,
        "records": first.records,
        "first_records_per_second": round(first.rate, 1),
        "unchanged_records_per_second": round(rerun.rate, 1),
        "first_rounds_records_per_second": [round(f.rate) for f, _ in runs],
        "unchanged_rounds_records_per_second": [round(r.rate) for _, r in runs],
        "first_mean_batch_records": first.details["mean_batch_records"],
        "first_process_cpu_share": first.details["process_cpu_share"],
        "first_peak_rss_mib": first.peak_rss_mib,
    }


def summarise(measurements: list[Measurement]) -> dict[str, Any]:
    """The ratios the project is judged by, and whether each target is met."""
    by_name = {m.name: m for m in measurements}
    first = by_name["tableinator_first"]
    unchanged = by_name["tableinator_unchanged"]
    ceiling = by_name.get("ceiling_copy")
    summary: dict[str, Any] = {
        "first_load_records_per_second": round(first.rate, 1),
        "target_records_per_second": TARGET_RATE,
        "rate_target_met": first.rate >= TARGET_RATE,
        "rerun_speedup": round(unchanged.rate / first.rate, 2),
        "target_rerun_speedup": TARGET_RERUN_SPEEDUP,
        "rerun_target_met": unchanged.rate / first.rate >= TARGET_RERUN_SPEEDUP,
    }
    if ceiling is not None:
        summary["share_of_ceiling"] = round(first.rate / ceiling.rate, 3)
    for name, key in (("baseline_per_message", "a"), ("baseline_executemany", "b")):
        if name in by_name:
            ratio = first.rate / by_name[name].rate
            summary[f"vs_baseline_{key}"] = round(ratio, 1)
    if "vs_baseline_a" in summary:
        summary["target_vs_baseline"] = TARGET_VS_BASELINE
        summary["baseline_target_met"] = summary["vs_baseline_a"] >= TARGET_VS_BASELINE
    return summary


def _record_bytes(records: BenchRecords) -> dict[str, float]:
    sizes = [len(orjson.dumps(r)) for r in records.records(0, 2000)]
    return {"mean": round(statistics.fmean(sizes), 1), "min": min(sizes), "max": max(sizes)}


async def _versions(ctx: BenchContext) -> dict[str, str]:
    server = await ctx.scalar("SHOW server_version")
    return {
        "postgresql": str(server),
        "rabbitmq": ctx.rabbitmq_version,
        "psycopg": psycopg.__version__,
        "aio_pika": aio_pika.__version__,
    }
