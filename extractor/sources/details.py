"""Detail requests: each record of a parent page fetched again by id (``/items/{id}.json``).

A detail entity (``parent:`` in the spec) has no slices of its own: once a parent page is
fetched, its records' details are fetched side by side (at most ``parent.concurrency`` per
slice) through the job's fetcher, so under the same shared rate limit, breaker, retries,
error-body checks and credentials as the pages. The slice run publishes them as one page
batch of the detail entity and checkpoints the parent page only when both are confirmed.

A detail that answers 404 (deleted since the search listed it), or a parent record without
the field the path needs, is counted ``detail_missing``, not an error; any other failure of
a detail fails the slice as a page's would.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from common.outcomes import FailSlice
from common.records import get_path
from common.spec import EntitySpec, ParentSpec
from common.spec_details import placeholder
from extractor.sources.fetch import JsonFetcher, SourceError

MISSING_STATUS = "http_404"
# Details finish work already fetched (a parent page waits for them to be checkpointed):
# under the rate limit they go before the next pages.
DETAIL_PRIORITY = math.inf


@dataclass(frozen=True)
class DetailPage:
    """The details of one parent page: the records found, and how many were missing."""

    records: list[Any]
    missing: int


class DetailRequests:
    """Fetches the details of parent pages for one slice run."""

    def __init__(self, fetcher: JsonFetcher, name: str, entity: EntitySpec) -> None:
        assert entity.parent is not None
        self.fetcher = fetcher
        self.name = name
        self.entity = entity
        self.parent: ParentSpec = entity.parent
        self._slots = asyncio.Semaphore(entity.parent.concurrency)

    async def fetch(self, parents: list[Any], errors: Counter[str]) -> DetailPage:
        """Every parent record's detail, in the parents' order; the first failure (not a
        404) cancels the rest and is raised."""
        tasks = [asyncio.ensure_future(self._one(record, errors)) for record in parents]
        try:
            found = await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
        records = [record for record in found if record is not None]
        return DetailPage(records, len(parents) - len(records))

    def path_of(self, parent: Any) -> str | None:
        """The detail's path for a parent record, its value URL-quoted; None without one."""
        value = get_path(parent, self.parent.field)
        if value is None or isinstance(value, (dict, list, bool)) or value == "":
            return None
        return self.entity.path.replace(placeholder(self.parent), quote(str(value), safe=""))

    async def _one(self, parent: Any, errors: Counter[str]) -> Any | None:
        path = self.path_of(parent)
        if path is None:
            return None
        tried: Counter[str] = Counter()
        async with self._slots:
            try:
                body = await self.fetcher.get(
                    path, dict(self.entity.params), tried, priority=DETAIL_PRIORITY
                )
            except SourceError as exc:
                if exc.kind != MISSING_STATUS:
                    raise
                del tried[MISSING_STATUS]  # counted as missing, not as a failed request
                return None
            finally:
                errors.update(tried)
        record = get_path(body, self.entity.records_path) if self.entity.records_path else body
        if not isinstance(record, dict):
            raise FailSlice(f"detail {path} holds no record (a JSON object)")
        return record
