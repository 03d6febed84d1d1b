"""Size estimates before anything is fetched: records, pages, requests and duration.

From a count endpoint when the spec declares one (``estimate:``; one request per slice),
otherwise by sampling: in a few slices, a page at a few points of the window; the density of
timestamps on each (records per second) is averaged over the window, and the mean density
of the sampled slices extrapolated to every slice of the entity.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import asdict, dataclass
from typing import Any

from common.paths import list_at
from common.records import get_path
from common.spec import DatasetSpec, EntitySpec, EstimateSpec
from common.spec_details import detail_of
from common.spec_source import BeforeTimestampPaginator
from extractor.ledger.slices import Slice, Window
from extractor.pacing.ratelimit import RatePolicy
from extractor.sources.fetch import JsonFetcher
from extractor.sources.page_sources import window_params
from extractor.sources.paginators import Response, paginator_for

SAMPLES_PER_ENTITY = 5
SAMPLE_POINTS = 4  # pages per sampled slice, spread over its window


@dataclass(frozen=True)
class JobEstimate:
    """What a job will cost; ``None`` where it cannot be known."""

    method: str
    slices: int
    records: int | None
    pages: int | None
    requests: int | None
    seconds_at_maximum: float | None
    seconds_at_initial: float | None
    per_slice: dict[str, int | None]
    quota_left: int | None = None  # the source's RateLimit-Remaining after the count requests

    def as_dict(self, *, with_slices: bool = False) -> dict[str, Any]:
        data = asdict(self)
        del data["quota_left"]  # the job's first moments, not part of what it will cost
        if not with_slices:
            del data["per_slice"]
        return data


def page_size(entity: EntitySpec) -> int:
    assert entity.paginator is not None
    return entity.paginator.page_size


def pages_for(records: int, size: int) -> int:
    """Pages a slice of ``records`` publishes."""
    return math.ceil(records / size)


def requests_for(records: int, size: int) -> int:
    """Requests a slice of ``records`` costs: its pages, and one more to see the end."""
    return records // size + 1


def count_params(estimate: EstimateSpec, window: Window) -> dict[str, Any]:
    """The count endpoint's parameters with ``{start}`` and ``{end}`` filled in (or dropped)."""
    bounds = {"{start}": window.start, "{end}": window.end}
    params: dict[str, Any] = {}
    for name, value in estimate.params.items():
        if isinstance(value, str) and value in bounds:
            if bounds[value] is not None:
                params[name] = bounds[value]
        else:
            params[name] = value
    return params


def local_density(stamps: list[int], upper: int, start: int, more: bool) -> float:
    """Records per second just below ``upper``, from one newest-first page of timestamps.

    A page that reached the window's start covers [start, upper); a full one covers
    [oldest stamp on it, upper).
    """
    lower = min(stamps) if more and stamps else start
    return len(stamps) / max(1, upper - lower)


def sample_points(window: Window, points: int) -> list[int]:
    """Positions spread over a bounded window, newest first, the first at its end."""
    assert window.start is not None and window.end is not None
    length = window.end - window.start
    return [window.end - j * length // points for j in range(points)]


def extrapolate(slices: list[Slice], sampled: dict[str, int | None]) -> dict[str, int | None]:
    """Fill unsampled slices of each entity from the mean density of its sampled ones."""
    rates: dict[str, list[float]] = {}
    for item in slices:
        count = sampled.get(item.slice_id)
        if count is not None and _length(item.window):
            rates.setdefault(item.entity, []).append(count / _length(item.window))
    result: dict[str, int | None] = {}
    for item in slices:
        if item.slice_id in sampled:
            result[item.slice_id] = sampled[item.slice_id]
            continue
        entity_rates = rates.get(item.entity)
        length = _length(item.window)
        mean = sum(entity_rates) / len(entity_rates) if entity_rates else None
        result[item.slice_id] = None if mean is None or not length else round(mean * length)
    return result


def _length(window: Window) -> int:
    return 0 if window.start is None or window.end is None else window.end - window.start


def summarise(
    method: str,
    spec: DatasetSpec,
    slices: list[Slice],
    counts: dict[str, int | None],
    policy: RatePolicy,
) -> JobEstimate:
    """Totals from per-slice counts; unknown if any slice is unknown."""
    records = pages = requests = 0
    for item in slices:
        count = counts.get(item.slice_id)
        if count is None:
            return JobEstimate(method, len(slices), None, None, None, None, None, counts)
        size = page_size(spec.entities[item.entity])
        records += count
        pages += pages_for(count, size)
        requests += requests_for(count, size)
        if detail_of(spec, item.entity) is not None:
            requests += count  # each record fetched again by id
    return JobEstimate(
        method=method,
        slices=len(slices),
        records=records,
        pages=pages,
        requests=requests,
        seconds_at_maximum=requests / policy.maximum,
        seconds_at_initial=requests / policy.start,
        per_slice=counts,
    )


async def estimate_job(
    fetcher: JsonFetcher, spec: DatasetSpec, slices: list[Slice], policy: RatePolicy
) -> JobEstimate:
    """Counts from the count endpoint where declared, samples elsewhere."""
    counted = [s for s in slices if spec.entities[s.entity].estimate is not None]
    counts: dict[str, int | None] = dict(
        await asyncio.gather(*(_count(fetcher, spec, s) for s in counted))
    )
    sampled_slices = [s for s in slices if spec.entities[s.entity].estimate is None]
    chosen = _sample_choice(sampled_slices)
    samples = dict(await asyncio.gather(*(_sample(fetcher, spec, s) for s in chosen)))
    counts.update(extrapolate(sampled_slices, samples))
    methods = ["count endpoint"] if counted else []
    if sampled_slices:
        methods.append(f"sampled {len(chosen)} of {len(sampled_slices)} slices")
    return summarise(" + ".join(methods), spec, slices, counts, policy)


async def _count(fetcher: JsonFetcher, spec: DatasetSpec, item: Slice) -> tuple[str, int]:
    estimate = spec.entities[item.entity].estimate
    assert estimate is not None
    body = await fetcher.get(estimate.path, count_params(estimate, item.window))
    value = get_path(body, estimate.field)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"count endpoint gave {estimate.field}={value!r}, not an integer")
    return item.slice_id, value


async def _sample(fetcher: JsonFetcher, spec: DatasetSpec, item: Slice) -> tuple[str, int | None]:
    """A slice's size from pages at a few points of its window (traffic varies by hour)."""
    entity = spec.entities[item.entity]
    window = item.window
    if not isinstance(entity.paginator, BeforeTimestampPaginator) or window.start is None:
        first = await _first_page(fetcher, entity, window, None)
        return item.slice_id, None if first is None or first[1] else len(first[0])
    densities = []
    for point in sample_points(window, SAMPLE_POINTS):
        page = await _first_page(fetcher, entity, window, point)
        if page is None:
            return item.slice_id, None
        stamps, more = page
        if point == window.end and not more:
            return item.slice_id, len(stamps)  # the whole slice fits on one page
        densities.append(local_density(stamps, point, window.start, more))
    assert window.end is not None
    return item.slice_id, round(sum(densities) / len(densities) * (window.end - window.start))


async def _first_page(
    fetcher: JsonFetcher, entity: EntitySpec, window: Window, point: int | None
) -> tuple[list[Any], bool] | None:
    """The records of the page just below ``point`` (timestamps for a timestamp paginator)."""
    assert entity.paginator is not None
    paginator = paginator_for(entity.paginator, key=entity.key, base_url=fetcher.base_url)
    # A bare int below a timestamp paginator: everything at ``point`` and newer is past.
    position = paginator.first_position(window) if point is None else point
    request = paginator.request(position)
    path = entity.path if request.path is None else request.path
    answer = await fetcher.fetch(path, {**window_params(entity, window), **request.params})
    items = list_at(answer.body, entity.records_path) if entity.records_path else answer.body
    if not isinstance(items, list):
        return None
    end = window.end if point is None else point
    response = Response(items, answer.body, answer.headers, answer.url)
    page = paginator.parse(response, position, Window(window.start, end))
    if isinstance(entity.paginator, BeforeTimestampPaginator):
        field = entity.paginator.field
        return [int(get_path(r, field)) for r in page.records], page.next_position is not None
    return page.records, page.next_position is not None


def _sample_choice(slices: list[Slice]) -> list[Slice]:
    """A few slices per entity, spread evenly over its range."""
    chosen: list[Slice] = []
    for entity in dict.fromkeys(s.entity for s in slices):
        own = [s for s in slices if s.entity == entity]
        k = min(SAMPLES_PER_ENTITY, len(own))
        picks = {round(i * (len(own) - 1) / max(1, k - 1)) for i in range(k)}
        chosen.extend(own[i] for i in sorted(picks))
    return chosen
