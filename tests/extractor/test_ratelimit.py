"""The rate limit's arithmetic, latency signal, header parsing and in-process limiter."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from extractor.ledger.store import start_tokens
from extractor.pacing.ratelimit import (
    THROTTLED_FACTOR,
    AdaptiveRateLimiter,
    CpuLoad,
    LatencyTracker,
    QuotaTrend,
    RatePolicy,
    slice_concurrency,
)
from extractor.sources.fetch import (
    JsonFetcher,
    RetryableSourceError,
    SourceError,
    quota,
    retry_after_seconds,
    status_error,
)


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


def test_the_rate_grows_per_half_second_of_healthy_responses() -> None:
    policy = RatePolicy(initial=100, maximum=1000)
    intervals = [policy.increase_interval(r) for r in (0.5, 1, 2.1, 10, 40, 500)]
    assert intervals == [1, 1, 2, 5, 20, 250]  # as fast in time at any rate
    assert RatePolicy(10, 100, increase_every=1).increase_interval(500) == 1
    limiter = AdaptiveRateLimiter(initial=1, maximum=100)
    for _ in range(12):  # about four seconds of responses at the rates they arrive
        limiter.on_success()
    assert limiter.rate > 7  # with a fixed 20 responses a step: still 1/s for 20 s


def test_hold_blocks_the_increase() -> None:
    limiter = AdaptiveRateLimiter(initial=10, maximum=100, increase_every=1)
    for _ in range(10):
        limiter.on_success(hold=True)
    assert limiter.rate == 10


async def test_halves_and_pauses_when_throttled() -> None:
    limiter = AdaptiveRateLimiter(initial=40, maximum=100)
    epoch = await limiter.acquire()
    await limiter.on_throttled(2.0, THROTTLED_FACTOR, epoch)
    assert limiter.rate == 20
    assert limiter._paused_until - time.monotonic() > 1.5


async def test_one_overload_lowers_the_rate_once() -> None:
    limiter = AdaptiveRateLimiter(initial=40, maximum=100)
    epochs = [await limiter.acquire() for _ in range(3)]  # three requests in flight
    for epoch in epochs:  # all three answered 429
        await limiter.on_throttled(None, THROTTLED_FACTOR, epoch)
    assert limiter.rate == 20
    await limiter.on_throttled(None, THROTTLED_FACTOR, limiter.epoch)  # a new overload
    assert limiter.rate == 10


def test_concurrency_is_sized_to_reach_the_maximum_rate() -> None:
    assert slice_concurrency(3, RatePolicy(10, 200)) == 3  # configured wins
    assert slice_concurrency(None, None) == 8  # dump files: no rate to reach
    assert slice_concurrency(None, RatePolicy(10, 20)) == 8
    # 200/s with pages of up to 250 ms needs 50 slices in flight.
    assert slice_concurrency(None, RatePolicy(100, 200)) == 50
    assert slice_concurrency(None, RatePolicy(100, 5000)) == 64


def test_policy_steps() -> None:
    policy = RatePolicy(initial=10, maximum=1000)
    assert policy.increased(10, 0) == 10
    assert policy.increased(10, 1) == pytest.approx(12.0)
    assert policy.increased(10, 2) == pytest.approx(14.2)
    assert policy.increased(900, 5) == 1000
    assert policy.decreased(10, 0.5) == 5
    assert policy.decreased(1.5, 0.5) == 1.0  # never below the minimum
    assert RatePolicy(initial=500, maximum=100).start == 100
    assert policy.burst(0.5) == 1.0 and policy.burst(40) == 36  # a tenth under a second


def test_latency_tracker_signals_once_per_slow_spell() -> None:
    tracker = LatencyTracker(quiet=5)
    assert not any(tracker.observe(0.02) for _ in range(20))
    signals = [tracker.observe(0.5) for _ in range(10)]
    assert tracker.rising
    assert 1 <= sum(signals) <= 2
    for _ in range(40):
        tracker.observe(0.02)
    assert not tracker.rising


def test_retry_after_forms() -> None:
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0


def test_ratelimit_headers() -> None:
    assert quota({"RateLimit-Limit": "20", "RateLimit-Remaining": "0", "RateLimit-Reset": "1"}) == (
        20,
        0,
        1.0,
    )
    assert quota({}) == (None, None, None)
    *_, reset = quota({"RateLimit-Reset": str(int(time.time()) + 30)})
    assert reset is not None and 28 <= reset <= 30  # a unix time, not seconds


def test_status_errors_say_retry_or_stop() -> None:
    throttled = status_error(429, "u")
    assert isinstance(throttled, RetryableSourceError) and not throttled.source_down
    unavailable = status_error(503, "u")
    assert isinstance(unavailable, RetryableSourceError) and unavailable.kind == "http_503"
    assert isinstance(status_error(502, "u"), RetryableSourceError)
    assert status_error(502, "u").kind == "http_5xx"  # type: ignore[attr-defined]
    missing = status_error(404, "u")
    assert isinstance(missing, SourceError) and missing.kind == "http_404"


def test_quota_trend_tells_spending_from_refilling() -> None:
    trend = QuotaTrend()
    steady = (50, 50, 51, 50, 49, 50, 50, 51, 50, 50)  # give or take a request
    for tick, remaining in enumerate(steady):
        trend.observe(remaining, 100, now=tick * 0.1)
    assert not trend.falling and not trend.rising
    for tick, remaining in enumerate(range(50, 30, -1)):  # 10 a second more than refilled
        trend.observe(remaining, 100, now=1 + tick * 0.1)
    assert trend.falling
    for tick, remaining in enumerate(range(30, 60)):
        trend.observe(remaining, 100, now=3 + tick * 0.1)
    assert trend.rising


def test_spending_a_held_burst_is_not_spending_too_fast() -> None:
    # The bucket starts with 60 of the source's quota: the quota falls while it is spent,
    # then the job runs at the source's rate (the quota holds), then 5 a second over it.
    trend = QuotaTrend()
    for tick in range(11):
        trend.observe(90 - 6 * tick, 100, spending=True, now=tick * 0.1)
    assert not trend.falling and trend.slope == 0
    assert trend.lowest == 30 and trend.spendable() == 20  # a tenth of the limit kept back
    for tick in range(1, 11):
        trend.observe(30, 100, now=1 + tick * 0.1)
    assert not trend.falling and not trend.rising
    for tick in range(1, 21):
        trend.observe(30 - tick // 2, 100, now=2 + tick * 0.1)
    assert trend.falling
    assert trend.slope == pytest.approx(-5, abs=0.6)  # the job's rate less 5: the source's


async def test_waiting_requests_are_served_most_records_left_first() -> None:
    limiter = AdaptiveRateLimiter(initial=20, maximum=20)
    await limiter.acquire()  # the one token the bucket starts with: now all must wait
    served: list[float] = []

    async def request(priority: float) -> None:
        await limiter.acquire(priority)
        served.append(priority)

    priorities = [5.0, 500.0, 0.0, math.inf, 50.0]
    await asyncio.gather(*(request(p) for p in priorities))
    assert served == sorted(priorities, reverse=True)


async def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    limiter = AdaptiveRateLimiter(initial=10, maximum=10)
    await limiter.acquire()
    abandoned = asyncio.create_task(limiter.acquire(1000.0))
    await asyncio.sleep(0)
    abandoned.cancel()
    started = time.monotonic()
    assert await limiter.acquire(1.0) == 0  # served the next token, not one after it
    assert time.monotonic() - started < 0.15


def test_a_new_bucket_starts_with_what_the_source_said_is_left() -> None:
    policy = RatePolicy(initial=200, maximum=200)
    assert start_tokens(policy, None) == 1.0  # no RateLimit-Remaining: one token
    assert start_tokens(policy, 150) == 150.0
    assert start_tokens(policy, 500) == 180.0  # at most the bucket's 0.9 s


def slow_spell() -> list[float]:
    return [0.01] * 30 + [1.0] * 30


def fetcher(*, latency_pacing: bool, starved: bool) -> JsonFetcher:
    made = JsonFetcher(
        None,  # type: ignore[arg-type]  # no request is sent: only the latency signal is read
        "http://source.example",
        AdaptiveRateLimiter(10, 100),
        max_retries=0,
        latency_pacing=latency_pacing,
    )
    made.cpu.starved = lambda: starved  # type: ignore[method-assign]
    return made


def test_latency_lowers_the_rate_only_when_asked_and_the_cpu_is_not_the_cause() -> None:
    def signals(made: JsonFetcher) -> int:
        return sum(made._slow_source(seconds) for seconds in slow_spell())

    assert signals(fetcher(latency_pacing=False, starved=False)) == 0  # the default
    assert signals(fetcher(latency_pacing=True, starved=False)) >= 1
    assert signals(fetcher(latency_pacing=True, starved=True)) == 0


def test_the_cpu_load_sees_a_busy_process() -> None:
    load = CpuLoad(busy_share=0.5, window=0.2)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:  # a busy loop: this process takes a whole core
        pass
    assert load.starved()
