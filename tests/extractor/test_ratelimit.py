"""The adaptive rate limiter: pure logic with the real clock, bounded to a fraction of a second."""

from __future__ import annotations

import time

from extractor.fetch import retry_after_seconds
from extractor.ratelimit import AdaptiveRateLimiter


async def test_spaces_requests_at_the_rate() -> None:
    limiter = AdaptiveRateLimiter(initial=50, maximum=50)
    await limiter.acquire()  # the first token is free
    started = time.monotonic()
    for _ in range(10):
        await limiter.acquire()
    assert 0.15 <= time.monotonic() - started < 0.5


def test_increases_while_healthy_never_above_maximum() -> None:
    limiter = AdaptiveRateLimiter(initial=10, maximum=12, increase_every=1)
    for _ in range(10):
        limiter.on_success()
    assert limiter.rate == 12


def test_halves_and_pauses_when_throttled() -> None:
    limiter = AdaptiveRateLimiter(initial=40, maximum=100)
    limiter.on_throttled(retry_after=2)
    assert limiter.rate == 20
    assert limiter._paused_until - time.monotonic() > 1.5


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0
