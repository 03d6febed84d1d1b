"""The circuit breaker: opens after K failures, waits out the cool-down, one probe."""

from __future__ import annotations

import asyncio

from extractor.pacing.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(3, 5.0, clock=Clock())
    for _ in range(2):
        breaker.record(success=False)
    breaker.record(success=True)  # resets the streak
    for _ in range(2):
        breaker.record(success=False)
    assert breaker.state is BreakerState.CLOSED
    breaker.record(success=False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reopen_at == 105.0


async def test_after_the_cooldown_one_probe_goes_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    assert await breaker.admit() is False  # closed: not a probe
    breaker.record(success=False)
    clock.now += 5.0
    assert await breaker.admit() is True
    assert breaker.state is BreakerState.HALF_OPEN
    waiter = asyncio.create_task(breaker.admit())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # others wait for the probe's answer
    breaker.record(success=True)
    assert await asyncio.wait_for(waiter, 1) is False
    assert breaker.state is BreakerState.CLOSED


async def test_a_failed_probe_doubles_the_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, max_cooldown=8.0, clock=clock)
    breaker.record(success=False)
    clock.now += 5.0
    assert await breaker.admit()
    breaker.record(success=False)
    assert breaker.state is BreakerState.OPEN
    assert breaker.reopen_at == clock.now + 8.0  # doubled, capped
    clock.now += 8.0
    assert await breaker.admit()
    breaker.abandon_probe()  # the probe's caller was cancelled: the next caller probes
    assert await breaker.admit()


async def test_open_breaker_waits_for_the_reopen_time() -> None:
    breaker = CircuitBreaker(1, 0.2)
    breaker.record(success=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await asyncio.wait_for(breaker.admit(), 2) is True
    assert loop.time() - started >= 0.15
