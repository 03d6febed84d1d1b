"""The fetcher against a small scripted HTTP source: breaker, retries, error kinds."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import pytest
from aiohttp import web

from common.resilience import Backoff
from extractor.pacing.breaker import BreakerState, CircuitBreaker
from extractor.pacing.ratelimit import PACING_FLOOR, AdaptiveRateLimiter
from extractor.sources.fetch import JsonFetcher, RetryableSourceError, SourceError

QUICK = Backoff(base=0.01, cap=0.02)
Script = Callable[[int], web.Response]


@asynccontextmanager
async def scripted(script: Script) -> AsyncIterator[tuple[str, list[float]]]:
    """A source answering request number n with script(n); yields its URL and hit times."""
    hits: list[float] = []

    async def handler(_request: web.Request) -> web.Response:
        hits.append(time.monotonic())
        return script(len(hits))

    app = web.Application()
    app.router.add_get("/page", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", hits
    finally:
        await runner.cleanup()


def fetcher(
    session: aiohttp.ClientSession, url: str, breaker: CircuitBreaker, retries: int
) -> JsonFetcher:
    limiter = AdaptiveRateLimiter(1000, 1000)
    return JsonFetcher(session, url, limiter, max_retries=retries, breaker=breaker, backoff=QUICK)


async def test_breaker_stops_the_hammering_and_probes_once() -> None:
    def down_then_up(n: int) -> web.Response:
        return web.json_response([n]) if n > 6 else web.Response(status=503)

    breaker = CircuitBreaker(3, 0.3)
    async with scripted(down_then_up) as (url, hits), aiohttp.ClientSession() as session:
        source = fetcher(session, url, breaker, retries=20)
        errors: Counter[str] = Counter()
        results = await asyncio.gather(*(source.get("/page", {}, errors) for _ in range(4)))
    assert all(isinstance(body, list) for body in results)
    assert breaker.opened >= 1 and breaker.state is BreakerState.CLOSED
    assert errors["http_503"] == 6
    # While open nothing went out: the gap after the third failure is the cool-down.
    gaps = [b - a for a, b in itertools.pairwise(hits)]
    assert max(gaps) >= 0.25
    assert len(hits) <= 6 + 4


async def test_error_kinds_and_what_is_retried() -> None:
    answers = {
        1: web.Response(body=b"[1, 2", content_type="application/json"),
        2: web.Response(status=404),
    }

    def script(n: int) -> web.Response:
        return answers.get(n, web.json_response([n]))

    async with scripted(script) as (url, hits), aiohttp.ClientSession() as session:
        source = fetcher(session, url, CircuitBreaker(5, 1.0), retries=0)
        errors: Counter[str] = Counter()
        with pytest.raises(RetryableSourceError, match="not valid JSON"):
            await source.get("/page", {}, errors)
        with pytest.raises(SourceError, match="HTTP 404"):
            await source.get("/page", {}, errors)
        assert await source.get("/page", {}, errors) == [3]
    assert errors == {"malformed": 1, "http_404": 1}
    assert len(hits) == 3


async def test_retry_after_pauses_the_limiter() -> None:
    def throttled_once(n: int) -> web.Response:
        if n == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.json_response([n])

    async with scripted(throttled_once) as (url, hits), aiohttp.ClientSession() as session:
        source = fetcher(session, url, CircuitBreaker(5, 1.0), retries=3)
        assert await source.get("/page", {}) == [2]
    assert hits[1] - hits[0] >= 0.95  # the second request waited for Retry-After
    assert source.limiter.rate == 500  # type: ignore[attr-defined]


def quota_headers(limit: int, remaining: int, reset: int) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(limit),
        "RateLimit-Remaining": str(remaining),
        "RateLimit-Reset": str(reset),
    }


async def test_the_rate_is_paced_by_the_quota_the_source_reports() -> None:
    def script(n: int) -> web.Response:
        # Under half of 100 left and 2 fewer with each request: at 20 requests a second
        # the quota falls 40 a second, so the source refills nothing at all.
        return web.json_response([n], headers=quota_headers(100, 45 - 2 * n, 10))

    async with scripted(script) as (url, hits), aiohttp.ClientSession() as session:
        limiter = AdaptiveRateLimiter(20, 20)
        source = JsonFetcher(session, url, limiter, max_retries=0)
        while limiter.rate == 20 and len(hits) < 20:
            await source.get("/page", {})
    # Paced once the trend spanned half a second (about 11 requests at 20/s): to what
    # spends the rest by the reset, but at most half off at once.
    assert 10 <= len(hits) <= 14
    assert limiter.rate == pytest.approx(20 * PACING_FLOOR)


async def test_a_fixed_window_quota_is_not_paced_below_what_it_allows() -> None:
    # 40 requests left, the window resets in 10 s: 4/s spends it exactly; 3/s is fine.
    def script(n: int) -> web.Response:
        return web.json_response([n], headers=quota_headers(100, 40, 10))

    async with scripted(script) as (url, _hits), aiohttp.ClientSession() as session:
        source = fetcher(session, url, CircuitBreaker(5, 1.0), retries=0)
        source.limiter.rate = 3
        await source.get("/page", {})
        assert source.limiter.rate == 3


async def test_a_low_quota_that_holds_steady_is_met_not_paced() -> None:
    # The source refills as fast as it is spent: the rate is the source's own; keep it.
    def script(n: int) -> web.Response:
        return web.json_response([n], headers=quota_headers(100, 40, 1))

    async with scripted(script) as (url, _hits), aiohttp.ClientSession() as session:
        limiter = AdaptiveRateLimiter(100, 1000, increase_every=1)
        source = JsonFetcher(session, url, limiter, max_retries=0)
        for _ in range(5):
            await source.get("/page", {})
        assert limiter.rate == 100  # neither eased off nor raised while the quota is low
