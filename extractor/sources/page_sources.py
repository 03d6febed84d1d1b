"""Where a slice's pages come from: an HTTP API through its paginator, or a dump file.

A slice run asks its page source for the page at a position, in order, and checkpoints
the position of the next one; resuming starts the source from that position. HTTP pages
are addressed by the paginator's cursor; a dump file's position is the number of its
records already published (``extractor.sources.dump_pages``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from common.outcomes import FailSlice
from common.paths import list_at
from common.spec import DatasetSpec, EntitySpec
from extractor.ledger.leases import ClaimedSlice
from extractor.ledger.slices import Window
from extractor.sources.dump_pages import DumpPages
from extractor.sources.dumps.formats import Format
from extractor.sources.fetch import JsonFetcher
from extractor.sources.paginators import (
    FollowsUrls,
    Page,
    Paginator,
    RepeatGuard,
    Response,
    paginator_for,
)


class PageSource(Protocol):
    """The pages of one slice; entered (``async with``) for the length of a slice run."""

    def first_position(self) -> Any:
        """Where the slice starts."""

    async def page(self, position: Any, errors: Counter[str]) -> Page:
        """The page at ``position``; failures are counted by kind in ``errors``."""

    async def __aenter__(self) -> PageSource: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class HttpPages:
    """A slice's pages from a paginated JSON API (rate limit, retries: the fetcher's).

    ``expected``: the records the job's estimate says are left in the slice, if it says.
    Requests are sent under the rate limit in the order of that: most records left first.
    A slice that outgrew its estimate has an unknown remainder, more than its estimate
    said, so it goes first too (a slice sends one request at a time: it cannot crowd out
    the others).
    """

    def __init__(
        self, fetcher: JsonFetcher, entity: EntitySpec, window: Window, expected: int | None = None
    ) -> None:
        assert entity.paginator is not None
        self.fetcher = fetcher
        self.entity = entity
        self.window = window
        self.expected = expected
        self.paginator = paginator_for(entity.paginator, key=entity.key, base_url=fetcher.base_url)
        self.params = window_params(entity, window)
        self.repeats = RepeatGuard()

    def first_position(self) -> Any:
        return self.paginator.first_position(self.window)

    async def page(self, position: Any, errors: Counter[str]) -> Page:
        path, params = request_at(self.entity, self.paginator, self.params, position)
        answer = await self.fetcher.fetch(path, params, errors, priority=self.priority)
        items = records_of(self.entity, answer.body, position)
        page = self.paginator.parse(
            Response(items, answer.body, answer.headers, answer.url), position, self.window
        )
        if isinstance(self.paginator, FollowsUrls) and page.next_position is not None:
            page = replace(
                page, next_position=self.fetcher.credentials.without_auth_params(page.next_position)
            )
        self.repeats.check(items, position)
        if self.expected is not None:
            self.expected -= len(page.records)
        return page

    @property
    def priority(self) -> float:
        """Records left by the estimate; a slice past its estimate (or without one) first."""
        if self.expected is None:
            return 0.0
        return float(self.expected) if self.expected > 0 else math.inf

    async def __aenter__(self) -> HttpPages:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def request_at(
    entity: EntitySpec, paginator: Paginator, params: dict[str, Any], position: Any
) -> tuple[str, dict[str, Any]]:
    """The path and query of the page at ``position``: the paginator's request, with the
    entity's (window) ``params`` unless it follows a URL that carries its own."""
    request = paginator.request(position)
    merged = {**params, **request.params} if request.entity_params else request.params
    return (entity.path if request.path is None else request.path), merged


def first_request(
    entity: EntitySpec, window: Window, base_url: str = ""
) -> tuple[str, dict[str, Any]]:
    """The path and query a slice's first request sends (``extractor plan`` shows them);
    credentials are added by the fetcher, so they are not here."""
    if entity.paginator is None:
        return entity.path, window_params(entity, window)
    paginator = paginator_for(entity.paginator, key=entity.key, base_url=base_url)
    params = window_params(entity, window)
    return request_at(entity, paginator, params, paginator.first_position(window))


def records_of(entity: EntitySpec, body: Any, position: Any) -> list[Any]:
    """The list of records in a page body."""
    items = list_at(body, entity.records_path) if entity.records_path else body
    if not isinstance(items, list):
        raise FailSlice(f"page at {position!r} holds no list of records")
    return items


def window_params(entity: EntitySpec, window: Window) -> dict[str, Any]:
    """The entity's params with ``{start}``/``{end}`` filled in from the slice window, in its
    ``window_format``; a param naming an unbounded end is left out."""
    bounds = {"{start}": window.start, "{end}": window.end}
    params: dict[str, Any] = {}
    for name, value in entity.params.items():
        if not isinstance(value, str) or not any(b in value for b in bounds):
            params[name] = value
            continue
        if value in bounds and entity.window_format == "unix":
            if bounds[value] is not None:
                params[name] = bounds[value]
            continue
        if any(b in value and bounds[b] is None for b in bounds):
            continue
        for placeholder, bound in bounds.items():
            if bound is not None:
                value = value.replace(placeholder, format_bound(bound, entity.window_format))
        params[name] = value
    return params


def format_bound(bound: int, form: str) -> str:
    """A window bound as unix seconds, ISO 8601 (UTC) or a date."""
    if form == "unix":
        return str(bound)
    moment = dt.datetime.fromtimestamp(bound, dt.UTC)
    return (
        moment.date().isoformat() if form == "date" else moment.isoformat().replace("+00:00", "Z")
    )


@dataclass(frozen=True)
class HttpSource:
    """An HTTP job's source: one fetcher (and shared rate limit) for all its slices."""

    fetcher: JsonFetcher

    @property
    def location(self) -> str:
        return self.fetcher.base_url

    def pages(self, spec: DatasetSpec, claimed: ClaimedSlice) -> PageSource:
        expected = claimed.expected_records
        if expected is not None:
            expected -= claimed.records  # a resumed slice: what its checkpoints confirmed
        return HttpPages(self.fetcher, spec.entities[claimed.entity], claimed.window, expected)


@dataclass(frozen=True)
class DumpSource:
    """A dump job's source: the directory of its files, their format and the page size."""

    base_path: Path
    format: Format
    page_size: int

    @property
    def location(self) -> str:
        return str(self.base_path)

    def pages(self, spec: DatasetSpec, claimed: ClaimedSlice) -> PageSource:
        if claimed.file is None:
            raise FailSlice(f"slice {claimed.slice_id} of a dump job names no file")
        return DumpPages(self.base_path / claimed.file, self.format, claimed.entity, self.page_size)


Source = HttpSource | DumpSource
