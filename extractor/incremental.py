"""``extractor run --since-last``: the window of an incremental run, read from the ledger.

The start is where complete coverage of the dataset ends, never past a gap:

- a job is *complete* when it is done (every slice succeeded) and every consumer of it
  that the new run also publishes to reported it finalised; it must have run at least the
  new run's stores and entities (a job for tableinator alone does not cover graphinator);
- the start is the end of the newest complete job, unless a failed or unfinished slice
  (a job not finalised counts whole) lies before that and after the oldest complete job's
  start, outside every complete job's window: then the earliest such slice's start;
- ``--lookback`` moves the start back, and the start is rounded down to the slicing unit
  (midnight UTC for daily, the hour for hourly), so a window ending at an odd time (the
  last run's "now") is fetched again whole; unchanged records are skipped by hash.

The end is now (or ``--end``). Slices older than every complete job are no gap: nothing
complete came before them (``extractor retry-failed JOB`` reruns them).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from common.errors import BackfillError, ConfigError
from common.settings import ExtractorSettings
from common.spec import DatasetSpec, load_spec
from common.spec_source import HttpSourceSpec
from common.topology import Topology, consumes
from extractor.ledger.store import open_ledger
from extractor.options import JobOptions
from extractor.planner import STEPS
from extractor.stores import choose_stores, routed_entities

Pair = tuple[str, str]  # (consumer, entity)
UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
SHORT = re.compile(r"(?:(\d+)([wdhms]))")
ISO = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


def parse_duration(text: str) -> dt.timedelta:
    """``30m``, ``2h``, ``1d``, ``1h30m``, ``1w`` or ISO 8601 ``PT2H``, ``P1D``."""
    value = text.strip()
    if re.fullmatch(r"(?:\d+[wdhms])+", value.lower()):
        parts = SHORT.findall(value.lower())
        return dt.timedelta(seconds=sum(int(n) * UNITS[unit] for n, unit in parts))
    iso = ISO.fullmatch(value.upper())
    if iso and any(iso.groups()) and not value.upper().endswith("T"):
        weeks, days, hours, minutes, seconds = (int(n or 0) for n in iso.groups())
        return dt.timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    raise ConfigError(f"--lookback: not a duration: {text!r} (e.g. 30m, 2h, 1d, 1h30m, PT2H)")


def floor_to_unit(moment: dt.datetime, kind: str) -> dt.datetime:
    """The slice boundary at or before ``moment``: midnight UTC (daily) or the hour."""
    step = int(STEPS[kind].total_seconds())
    seconds = int(moment.timestamp())
    return dt.datetime.fromtimestamp(seconds - seconds % step, dt.UTC)


@dataclass(frozen=True)
class OpenSlice:
    """A slice of an earlier job that did not land: failed, unfinished, or not finalised."""

    slice_id: str
    entity: str
    status: str
    start: int
    end: int


@dataclass(frozen=True)
class Gap:
    """A window an earlier job tried and did not land, and why."""

    start: int
    end: int
    reason: str


@dataclass(frozen=True)
class JobCoverage:
    """What one earlier job says about the dataset's windows (``Ledger.coverage``)."""

    job_id: str
    status: str
    pairs: frozenset[Pair]  # the (consumer, entity) pairs it published to
    finalised: frozenset[Pair]
    start: int
    end: int
    open_slices: tuple[OpenSlice, ...]

    def complete_for(self, needed: frozenset[Pair]) -> bool:
        return self.status == "done" and needed <= self.pairs and needed <= self.finalised

    def gaps(self, needed: frozenset[Pair]) -> list[Gap]:
        """Its windows the new run must not skip (none if it shares no pair with it)."""
        shared = needed & self.pairs
        if not shared:
            return []
        missing = sorted({consumer for consumer, _ in shared - self.finalised})
        if missing:  # nothing of it is known to have landed
            why = f"job {self.job_id} ({self.status}) not finalised by {', '.join(missing)}"
            return [Gap(self.start, self.end, why)]
        entities = {entity for _, entity in shared}
        return [
            Gap(s.start, s.end, f"slice {s.slice_id} of job {self.job_id} {s.status}")
            for s in self.open_slices
            if s.entity in entities
        ]

    @property
    def span(self) -> tuple[int, int]:
        return self.start, self.end


def job_coverage(row: dict[str, Any], configured: list[str], spec: DatasetSpec) -> JobCoverage:
    """A ``Ledger.coverage`` row; its pairs by the current spec's mappings."""
    stores = row["stores"] or configured
    pairs = frozenset(
        (store, name)
        for store in stores
        for name in row["entities"]
        if name in spec.entities and consumes(store, spec.entities[name])
    )
    return JobCoverage(
        job_id=row["job_id"],
        status=row["status"],
        pairs=pairs,
        finalised=frozenset((service, entity) for service, entity in row["finalised"]),
        start=row["span_start"],
        end=row["span_end"],
        open_slices=tuple(OpenSlice(**item) for item in row["open_slices"]),
    )


@dataclass(frozen=True)
class StartPoint:
    """Where an incremental run starts (unix seconds), and why."""

    at: int
    reason: str


def since_last_start(
    jobs: Iterable[JobCoverage], needed: frozenset[Pair], dataset: str
) -> StartPoint:
    """The module docstring's rule, before the lookback and rounding."""
    jobs = list(jobs)
    complete = sorted((j for j in jobs if j.complete_for(needed)), key=lambda j: j.end)
    if not complete:
        raise ConfigError(
            f"no complete earlier job for dataset {dataset}: run with --start/--end first"
        )
    covered = merged(j.span for j in complete)
    newest = complete[-1]
    point = StartPoint(newest.end, f"the end of job {newest.job_id}")
    for job in jobs:
        for gap in job.gaps(needed):
            if gap.end <= covered[0][0] or gap.start >= point.at or inside(covered, gap):
                continue
            point = StartPoint(gap.start, gap.reason)
    return point


def merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Touching or overlapping [start, end) spans joined, in order."""
    joined: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if joined and start <= joined[-1][1]:
            joined[-1] = (joined[-1][0], max(joined[-1][1], end))
        else:
            joined.append((start, end))
    return joined


def inside(covered: list[tuple[int, int]], gap: Gap) -> bool:
    """Whether another, complete job covered the gap's whole window."""
    return any(start <= gap.start and gap.end <= end for start, end in covered)


class NothingToDo(BackfillError):
    """An incremental run's start is not before its end (the text says the window)."""


@dataclass(frozen=True)
class SinceLast:
    """An incremental run's window and the reason for its start."""

    start: dt.datetime
    end: dt.datetime
    reason: str

    @property
    def nothing_to_do(self) -> bool:
        return self.start >= self.end

    def describe(self) -> str:
        window = f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"
        if self.nothing_to_do:
            return f"since last: nothing to do: the start {window} is not before the end"
        return f"since last: {window} (start: {self.reason})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "reason": self.reason,
            "nothing_to_do": self.nothing_to_do,
        }

    def options(self, options: JobOptions) -> JobOptions:
        """The run's options with this window as its explicit range."""
        if self.nothing_to_do:
            raise NothingToDo(self.describe())
        return replace(options, start=self.start, end=self.end, since_last=False)


def window_since(
    spec: DatasetSpec,
    point: StartPoint,
    lookback: dt.timedelta,
    end: dt.datetime,
) -> SinceLast:
    """The start point moved back by ``lookback`` and rounded down to the slicing unit."""
    kind = sliced_kind(spec)
    moved = dt.datetime.fromtimestamp(point.at, dt.UTC) - lookback
    reason = point.reason + (f", {_text(lookback)} back" if lookback else "")
    return SinceLast(floor_to_unit(moved, kind), end.replace(microsecond=0), reason)


def sliced_kind(spec: DatasetSpec) -> str:
    """The dataset's slicing unit; an incremental run needs one."""
    source = spec.source
    if not isinstance(source, HttpSourceSpec) or source.slicing.kind == "none":
        raise ConfigError(
            f"dataset {spec.name}: --since-last needs an http source sliced daily or hourly"
        )
    return source.slicing.kind


def _text(delta: dt.timedelta) -> str:
    return str(delta).replace(", 0:00:00", "")


def needed_pairs(spec: DatasetSpec, stores: list[str]) -> frozenset[Pair]:
    """The (consumer, entity) pairs a new job to these stores publishes to."""
    entities = routed_entities(spec, stores)
    return frozenset(pair for pair in Topology.pairs(stores, spec) if pair[1] in entities)


async def resolve(
    settings: ExtractorSettings, options: JobOptions, now: dt.datetime | None = None
) -> SinceLast:
    """The window of ``extractor run --since-last`` from this settings' ledger."""
    if options.start is not None:
        raise ConfigError("--since-last and --start exclude each other: the ledger sets the start")
    spec = load_spec(settings.dataset.dataset_spec)
    sliced_kind(spec)
    configured = settings.amqp.consumers
    stores = choose_stores(configured, spec, list(options.stores) if options.stores else None)
    async with open_ledger(settings) as ledger:
        rows = await ledger.coverage(spec.name)
    jobs = [job_coverage(row, configured, spec) for row in rows]
    point = since_last_start(jobs, needed_pairs(spec, stores), spec.name)
    end = _as_utc(options.end) if options.end is not None else now or dt.datetime.now(dt.UTC)
    return window_since(spec, point, options.lookback, end)


def _as_utc(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
