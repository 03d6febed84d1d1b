"""Planning a job into slices: time windows of a date range (dump files: ``dump_files``)."""

from __future__ import annotations

import datetime as dt

from common.errors import ConfigError
from common.spec_source import SlicingSpec
from extractor.ledger.slices import Slice, Window

STEPS = {"daily": dt.timedelta(days=1), "hourly": dt.timedelta(hours=1)}


def _as_datetime(value: dt.date | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)


def plan_windows(
    slicing: SlicingSpec, start: dt.date | dt.datetime | None, end: dt.date | dt.datetime | None
) -> list[tuple[str, Window]]:
    """Windows newest first (the order a newest-first API serves them), each named."""
    start, end = start or slicing.start, end or slicing.end
    if slicing.kind == "none" or (start is None and end is None):
        return [("all", Window())]
    if start is None or end is None:
        raise ConfigError("slicing needs both a start and an end date")
    first, last = _as_datetime(start), _as_datetime(end)
    if last <= first:
        raise ConfigError(f"slicing end {last.isoformat()} is not after start {first.isoformat()}")
    step = STEPS[slicing.kind]
    windows = []
    cursor = first
    while cursor < last:
        upper = min(cursor + step, last)
        name = cursor.strftime("%Y-%m-%d" if slicing.kind == "daily" else "%Y-%m-%dT%H")
        windows.append((name, Window(int(cursor.timestamp()), int(upper.timestamp()))))
        cursor = upper
    return windows[::-1]


def plan_slices(
    entities: list[str],
    slicing: SlicingSpec,
    start: dt.date | dt.datetime | None = None,
    end: dt.date | dt.datetime | None = None,
) -> list[Slice]:
    windows = plan_windows(slicing, start, end)
    return [
        Slice(entity, f"{entity}:{name}", window) for entity in entities for name, window in windows
    ]
