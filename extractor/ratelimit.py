"""Adaptive rate limiting: the AIMD policy, the latency signal, and an in-process limiter.

The policy: start at the spec's initial rate; every ``increase_every`` healthy responses
(fewer at a low rate: at least one increase per half second of them, so a rate knocked
down to the floor climbs back in seconds, not minutes) raise it (x1.1 + 1) unless latency
is rising or the quota is getting spent (RateLimit-Remaining under three quarters of
RateLimit-Limit); when less than half of the quota is left, take a twentieth off; on
429/503 halve it and pause for Retry-After; when RateLimit-Remaining reaches 0, take a fifth
off and pause until RateLimit-Reset; when latency rises well above its floor, take a tenth
off. Never above the maximum, never below the minimum. A decrease happens once per *epoch*:
every request carries the epoch it was sent under, and the responses to requests sent
before a decrease cannot lower the rate again (a burst of 429s answers one overload, not
many). A job's workers share one limiter through the ledger (``extractor.shared_limit``);
``AdaptiveRateLimiter`` is the same policy in one process, for the dry run's count requests.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from common.spec import DatasetSpec, HttpSourceSpec

THROTTLED_FACTOR = 0.5  # 429 or 503
QUOTA_SPENT_FACTOR = 0.8  # RateLimit-Remaining: 0
LATENCY_FACTOR = 0.9  # latency well above its floor
PACING_FACTOR = 0.95  # less than half of RateLimit-Limit remaining
QUOTA_HOLD = 0.75  # no increase while less than this share of RateLimit-Limit remains
QUOTA_PACE = 0.5  # slow down a little while less than this share remains
PACING_COOLDOWN = 1.0  # seconds between two paced decreases: the quota's own time scale
ASSUMED_PAGE_SECONDS = 0.25  # page latency the default concurrency can keep up with
MIN_CONCURRENCY, MAX_CONCURRENCY = 8, 64
INCREASE_SECONDS = 0.5  # at a low rate, an increase is earned by this long of healthy responses


@dataclass(frozen=True)
class RatePolicy:
    """The arithmetic of the limit, shared by the in-process and the shared limiter."""

    initial: float
    maximum: float
    increase_every: int = 20
    increase_factor: float = 1.1
    increase_step: float = 1.0
    burst_seconds: float = 1.0

    @property
    def minimum(self) -> float:
        return min(1.0, self.start)

    @property
    def start(self) -> float:
        return min(self.initial, self.maximum)

    def increase_interval(self, rate: float) -> int:
        """Healthy responses that earn one increase at ``rate``: ``increase_every``, or half
        a second's worth when that is fewer (at 1 request/s, every response)."""
        return max(1, min(self.increase_every, math.ceil(rate * INCREASE_SECONDS)))

    def increased(self, rate: float, steps: int) -> float:
        """The rate after ``steps`` rounds of healthy responses."""
        for _ in range(steps):
            rate = rate * self.increase_factor + self.increase_step
        return min(self.maximum, rate)

    def decreased(self, rate: float, factor: float) -> float:
        return max(self.minimum, rate * factor)

    def burst(self, rate: float) -> float:
        """Tokens a bucket may hold: ``burst_seconds`` of the current rate, at least one."""
        return max(1.0, rate * self.burst_seconds)


def rate_policy(spec: DatasetSpec) -> RatePolicy | None:
    """The HTTP source's rate limit; files have none."""
    if not isinstance(spec.source, HttpSourceSpec):
        return None
    limit = spec.source.rate_limit
    return RatePolicy(limit.initial, limit.maximum)


def slice_concurrency(configured: int | None, policy: RatePolicy | None) -> int:
    """Slices to run at once: as configured, else enough to reach the maximum rate.

    A slice fetches one page after the other (the next cursor comes from this page), so it
    sends at most 1 / latency requests a second; reaching the spec's maximum needs
    ``maximum x latency`` slices in flight. The limiter, not the concurrency, bounds the rate.
    """
    if configured is not None:
        return configured
    if policy is None:
        return MIN_CONCURRENCY
    wanted = math.ceil(policy.maximum * ASSUMED_PAGE_SECONDS)
    return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, wanted))


class LatencyTracker:
    """An EWMA of response latency against its floor; says when to back off.

    After signalling once it waits ``quiet`` more responses before signalling again, so one
    slow spell costs one decrease, not one per response.
    """

    def __init__(
        self, *, alpha: float = 0.2, factor: float = 2.0, slack: float = 0.05, quiet: int = 20
    ) -> None:
        self.alpha, self.factor, self.slack, self.quiet = alpha, factor, slack, quiet
        self.ewma: float | None = None
        self.floor: float | None = None
        self._since_signal = quiet

    def observe(self, seconds: float) -> bool:
        """Record one latency; True when the limiter should back off now."""
        self.ewma = seconds if self.ewma is None else self.ewma + self.alpha * (seconds - self.ewma)
        self.floor = self.ewma if self.floor is None else min(self.floor, self.ewma)
        self._since_signal += 1
        if self.rising and self._since_signal >= self.quiet:
            self._since_signal = 0
            return True
        return False

    @property
    def rising(self) -> bool:
        if self.ewma is None or self.floor is None:
            return False
        return self.ewma > self.floor * self.factor + self.slack


class QuotaTrend:
    """Whether the quota a source reports (RateLimit-Remaining) is being spent or refilled:
    its change per second over the last second of responses.

    At the source's own rate the quota stays where it is, however low; only a quota that
    keeps falling says the rate is above what the source refills, and only one that keeps
    rising says there is room to go faster. A change of less than ``dead_band`` of the
    limit per second is neither (responses arrive out of order: the quota jitters).
    """

    def __init__(self, *, window: float = 1.0, dead_band: float = 0.02) -> None:
        self.window, self.dead_band = window, dead_band
        self._samples: deque[tuple[float, int]] = deque()
        self._limit = 0

    def observe(self, remaining: int, limit: int, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self._samples.append((now, remaining))
        self._limit = limit
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def slope(self) -> float:
        """Quota gained per second (negative: spent), over the window."""
        if len(self._samples) < 2:
            return 0.0
        (first_at, first), (last_at, last) = self._samples[0], self._samples[-1]
        return (last - first) / max(last_at - first_at, 0.1)

    @property
    def falling(self) -> bool:
        return self.slope < -self.dead_band * self._limit

    @property
    def rising(self) -> bool:
        return self.slope > self.dead_band * self._limit


class RateLimiter(Protocol):
    """What the fetcher needs from a limiter."""

    rate: float  # requests a second allowed now

    async def acquire(self) -> int:
        """Wait until one request may be sent; the epoch it is sent under."""

    def on_success(self, *, hold: bool = False) -> None:
        """A healthy response; ``hold`` (latency rising, quota low) blocks any increase."""

    async def on_throttled(self, pause: float | None, factor: float, seen: int) -> None:
        """Slow down by ``factor`` unless the rate changed since epoch ``seen``; if ``pause``
        is given, send nothing for that long."""


class AdaptiveRateLimiter:
    """The policy as a token bucket in one process."""

    def __init__(self, initial: float, maximum: float, *, increase_every: int = 20) -> None:
        self.policy = RatePolicy(initial, maximum, increase_every=increase_every)
        self.rate = self.policy.start
        self.maximum = maximum
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._healthy_streak = 0
        self.epoch = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> int:
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return self.epoch
                await asyncio.sleep((1.0 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        burst = self.policy.burst(self.rate)
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(burst, self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)

    def on_success(self, *, hold: bool = False) -> None:
        if hold:
            self._healthy_streak = 0
            return
        self._healthy_streak += 1
        if self._healthy_streak >= self.policy.increase_interval(self.rate):
            self._healthy_streak = 0
            self.rate = self.policy.increased(self.rate, 1)

    async def on_throttled(self, pause: float | None, factor: float, seen: int) -> None:
        self._healthy_streak = 0
        if seen == self.epoch:
            self.rate = self.policy.decreased(self.rate, factor)
            self.epoch += 1
        if pause:
            self._paused_until = max(self._paused_until, time.monotonic() + pause)
            self._tokens = 0.0
            self._updated = self._paused_until  # the bucket refills from the end of the pause
