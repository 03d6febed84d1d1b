"""Detail requests against a small HTTP source: ids URL-quoted into the path, 404s and
records without the field counted missing (not errors), other failures raised, bounded
concurrency."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from common.resilience import Backoff
from common.spec import EntitySpec
from extractor.pacing.breaker import CircuitBreaker
from extractor.pacing.ratelimit import AdaptiveRateLimiter
from extractor.sources.details import DetailRequests
from extractor.sources.fetch import JsonFetcher, RetryableSourceError

CONCURRENCY = 3


class Source:
    """Answers ``/items/<id>.json`` with ``{"id": <id>}``; ids starting "gone" 404,
    "broken" 500. Remembers the raw paths asked for and the most requests at once."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.open = self.most_open = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.raw_path)
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await asyncio.sleep(0.01)  # stands for the source's latency, so requests overlap
            item = request.match_info["item"]
            if item.startswith("gone"):
                return web.json_response({"error": "not found"}, status=404)
            if item.startswith("broken"):
                return web.Response(status=500)
            return web.json_response({"id": item})
        finally:
            self.open -= 1


@asynccontextmanager
async def serving(source: Source) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/items/{item}.json", source.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def requests_for(
    session: aiohttp.ClientSession, url: str, path: str = "/items/{id}.json", **parent: Any
) -> DetailRequests:
    entity = EntitySpec.model_validate(
        {
            "key": "id",
            "path": path,
            "parent": {"entity": "items", "concurrency": CONCURRENCY, **parent},
        }
    )
    fetcher = JsonFetcher(
        session,
        url,
        AdaptiveRateLimiter(1000, 1000),
        max_retries=1,
        breaker=CircuitBreaker(50, 1.0),
        backoff=Backoff(base=0.01, cap=0.02),
    )
    return DetailRequests(fetcher, "item_details", entity)


async def test_details_are_fetched_in_order_with_404s_and_missing_fields_counted() -> None:
    source = Source()
    parents = [{"id": f"a{n}"} for n in range(10)] + [{"id": "gone-1"}, {"name": "no id"}]
    async with serving(source) as url, aiohttp.ClientSession() as session:
        errors: Counter[str] = Counter()
        page = await requests_for(session, url).fetch(parents, errors)
    assert [record["id"] for record in page.records] == [f"a{n}" for n in range(10)]
    assert page.missing == 2
    assert errors == Counter()  # a 404 is a missing detail, not a failed request
    assert len(source.paths) == 11  # the record without an id asked for nothing
    assert 1 < source.most_open <= CONCURRENCY


async def test_the_value_is_url_quoted_into_the_path() -> None:
    source = Source()
    async with serving(source) as url, aiohttp.ClientSession() as session:
        details = requests_for(session, url, "/items/{key}.json", field="ref.key")
        page = await details.fetch([{"ref": {"key": "a b/c?d"}}], Counter())
    assert source.paths == ["/items/a%20b%2Fc%3Fd.json"]
    assert page.records == [{"id": "a b/c?d"}]


async def test_a_failing_detail_raises_after_its_retries_and_counts_them() -> None:
    source = Source()
    parents = [{"id": "a1"}, {"id": "broken-1"}, {"id": "a2"}]
    async with serving(source) as url, aiohttp.ClientSession() as session:
        errors: Counter[str] = Counter()
        with pytest.raises(RetryableSourceError) as caught:
            await requests_for(session, url).fetch(parents, errors)
    assert caught.value.kind == "http_5xx"
    assert errors["http_5xx"] == 2  # the first try and its one retry
