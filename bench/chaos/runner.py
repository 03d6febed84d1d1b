"""The suite: a clean reference run, then each scenario's faulted run compared with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import secrets
import statistics
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.context import SuiteContext, start_services, suite_context
from bench.chaos.execute import Outcome, describe, execute
from bench.chaos.harness import Chaos, Reference
from bench.chaos.monitor import Monitor
from bench.chaos.run import Addresses, JobRun
from bench.chaos.scenarios import BY_NAME, SCENARIOS, Scenario
from bench.chaos.stores import Snapshot, compare
from bench.chaos.toxiproxy import Toxiproxy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    records: int = 100_000
    scenarios: tuple[str, ...] = tuple(s.name for s in SCENARIOS)
    scale: float = 1.0  # fault counts times this (the short suite in the tests uses less)
    replicas: int = 2  # of each consumer
    seed: int = 7
    workdir: Path = Path(".local/chaos")
    start_services: bool = True
    # scenario -> settings over its own (the short suite's smaller job needs a smaller limit)
    settings: dict[str, dict[str, str]] = field(default_factory=dict)


async def run_suite(options: Options) -> dict[str, Any]:
    options.workdir.mkdir(parents=True, exist_ok=True)
    logging.getLogger("aiormq.connection").setLevel(logging.CRITICAL)  # a restart is expected
    if options.start_services:
        await asyncio.to_thread(start_services)
    async with suite_context(options.workdir.resolve(), options.records) as ctx:
        reference, truth = await reference_run(ctx, options)
        log.info("reference: %s in %.1f s", reference.counts, reference.seconds)
        results = []
        for index, name in enumerate(options.scenarios):
            rng = random.Random(options.seed + index)
            row = await run_scenario(ctx, BY_NAME[name], reference, truth, options, rng)
            log.info("scenario %s: %s", name, {k: v for k, v in row.items() if k != "about"})
            results.append(row)
    return {
        "benchmark": "chaos",
        "records": options.records,
        "replicas": options.replicas,
        "reference": {
            "rows_nodes_relationships": reference.counts,
            "requests": reference.requests,
            "seconds": round(reference.seconds, 1),
        },
        "scenarios": results,
        "totals": totals(results),
    }


async def reference_run(ctx: SuiteContext, options: Options) -> tuple[Reference, Snapshot]:
    run = JobRun(ctx, _name("ref"), Addresses.direct(), options.replicas)
    before = await ctx.demo_requests()
    try:
        outcome, _ = await execute(run, None, None, worker=False)
    finally:
        await run.cleanup()
    if not outcome.finished_alone or outcome.counts is None:
        raise RuntimeError(f"the reference run did not finish cleanly: {describe(outcome)}")
    after = await ctx.demo_requests()
    requests = after.get("200", 0) - before.get("200", 0)
    return Reference(outcome.counts, requests, outcome.seconds), outcome.snapshot


def _name(kind: str) -> str:
    return f"chaos_{kind}_{secrets.token_hex(3)}"


async def run_scenario(
    ctx: SuiteContext,
    scenario: Scenario,
    reference: Reference,
    truth: Snapshot,
    options: Options,
    rng: random.Random,
) -> dict[str, Any]:
    faults = max(1, math.ceil(scenario.faults * options.scale))
    log.info("scenario %s: %d faults", scenario.name, faults)
    async with _addresses(scenario, ctx) as (addresses, proxy):
        run = JobRun(
            ctx,
            _name(scenario.name[:12]),
            addresses,
            options.replicas,
            {**scenario.settings, **options.settings.get(scenario.name, {})},
            scenario.direct_ledger,
        )
        chaos: Chaos | None = None

        async def inject(monitor: Monitor) -> None:
            nonlocal chaos
            chaos = Chaos(run, monitor, rng, faults, reference, proxy)
            await scenario.inject(chaos)

        try:
            outcome, monitor = await execute(run, inject, reference.counts, scenario.worker)
        finally:
            await run.cleanup()
    assert chaos is not None
    return result(scenario, outcome, monitor, truth, chaos, reference)


@contextlib.asynccontextmanager
async def _addresses(
    scenario: Scenario, ctx: SuiteContext
) -> AsyncIterator[tuple[Addresses, Toxiproxy | None]]:
    if not scenario.proxied:
        yield Addresses.direct(), None
        return
    async with Toxiproxy(_name("proxy")) as proxy:
        yield Addresses.proxied(proxy.ports), proxy


def result(
    scenario: Scenario,
    outcome: Outcome,
    monitor: Monitor,
    truth: Snapshot,
    chaos: Chaos,
    reference: Reference,
) -> dict[str, Any]:
    difference = compare(truth, outcome.snapshot)
    recovery = [r for r in monitor.recovery_seconds(reference.counts) if not math.isnan(r)]
    return {
        "scenario": scenario.name,
        "about": scenario.about,
        "faults": len(monitor.faults),
        "fault_kinds": sorted({f"{f.kind} {f.target}" for f in monitor.faults}),
        "lost": difference.total_lost,
        "duplicated": difference.total_duplicated,
        "differing": difference.total_differing,
        "recovery_max_s": max(recovery, default=0.0),
        "recovery_median_s": round(statistics.median(recovery), 2) if recovery else 0.0,
        "recovered_faults": len(recovery),
        "finished_without_person": outcome.finished_alone,
        "dead_letters": outcome.dead_letters,
        "peak_queue_depth": monitor.peak_depth,
        "peak_rss_mib": {s.name: round(s.peak_rss_mib, 1) for s in chaos.run.services},
        "difference": difference.as_dict(),
        "outcome": describe(outcome),
        "figures": chaos.figures,
    }


def totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "faults": sum(r["faults"] for r in results),
        "lost": sum(r["lost"] for r in results),
        "duplicated": sum(r["duplicated"] for r in results),
        "differing": sum(r["differing"] for r in results),
        "dead_letters": sum(r["dead_letters"] for r in results),
        "all_finished_without_person": all(r["finished_without_person"] for r in results),
    }
