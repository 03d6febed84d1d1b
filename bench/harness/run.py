"""A run's metadata (when, where, which commit, the machine's load), rounds and medians."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from bench.harness.measure import Measurement, git_revision, load_average, machine_info

T = TypeVar("T")
N = TypeVar("N")


class RunInfo:
    """Taken when a run starts; ``header`` adds the machine and the load at its end."""

    def __init__(self) -> None:
        self.started = dt.datetime.now(dt.UTC)
        self.load_at_start = load_average()
        self.revision = git_revision()

    def header(self, benchmark: str) -> dict[str, Any]:
        return {
            "benchmark": benchmark,
            "date": self.started.isoformat(timespec="seconds"),
            "machine": machine_info(),
            "git": self.revision,
            "load_average": {"start": self.load_at_start, "end": load_average()},
        }


class Isolating(Protocol[N]):
    """A benchmark context that hands out fresh namespaces and cleans them up."""

    def namespace(self) -> N: ...

    async def cleanup(self, ns: N) -> None: ...


async def isolated(ctx: Isolating[N], measure: Callable[[N], Awaitable[T]]) -> T:
    """Run one measurement in a fresh namespace, dropped afterwards."""
    ns = ctx.namespace()
    try:
        return await measure(ns)
    finally:
        await ctx.cleanup(ns)


def median(
    runs: Sequence[Measurement],
    key: Callable[[Measurement], float],
    each: dict[str, Callable[[Measurement], float]],
) -> Measurement:
    """The run with the median ``key``, with every run's figures beside it (``each``: the
    detail name of a figure, and how to read it): all runs are reported, not the best."""
    chosen = sorted(runs, key=key)[len(runs) // 2]
    if len(runs) > 1:
        for name, figure in each.items():
            chosen.details[name] = [figure(m) for m in runs]
    return chosen


def every_run(summary: dict[str, Any], each: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary of the medians with each run's summary beside it (``each_run``): every
    verdict (a ``..._met`` key) holds only if it held in every run. One run: unchanged."""
    if len(each) < 2:
        return summary
    verdicts = {key: all(run.get(key) for run in each) for key in summary if key.endswith("_met")}
    return {**summary, **verdicts, "each_run": each}
