"""Adaptive rate limiting: the AIMD policy, the quota and latency signals, and an
in-process limiter.

The policy: start at the spec's initial rate, with the bucket holding what the source said
was left of its quota (RateLimit-Remaining after the estimate's count requests, less a
tenth of the limit; else one token); the bucket holds at most 0.9 s of the rate, so it
never spends all of a source's one-second quota at once. Every half second of healthy
responses raise the rate (x1.1 + 1) unless latency is rising or the quota is not keeping
up (``QuotaTrend``: falling, or low and not gaining). When under half of the quota is left
and it keeps falling, pace the rate down to the source's refill rate (this rate plus the
quota's slope), once a second, at most halving it. On 429/503 halve it and pause for
Retry-After; when RateLimit-Remaining reaches 0, take a fifth off and pause until
RateLimit-Reset; when latency rises well above its floor, take a tenth off. Never above the
maximum, never below the minimum. A decrease happens once per *epoch*: every request
carries the epoch it was sent under, and the responses to requests sent before a decrease
cannot lower the rate again (a burst of 429s answers one overload, not many). Waiting
requests get tokens in the order of the records their slice has left
(``extractor.pacing.tokens``). A job's workers share one limiter through the ledger
(``extractor.pacing.shared_limit``); ``AdaptiveRateLimiter`` is the same policy in one process,
for the dry run's count requests.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from common.spec import DatasetSpec
from common.spec_source import HttpSourceSpec
from extractor.pacing.tokens import TokenQueue

THROTTLED_FACTOR = 0.5  # 429 or 503
QUOTA_SPENT_FACTOR = 0.8  # RateLimit-Remaining: 0
LATENCY_FACTOR = 0.9  # latency well above its floor
PACING_FLOOR = 0.5  # pacing by the quota takes at most half the rate off at once
QUOTA_HOLD = 0.75  # no increase while less than this share of RateLimit-Limit remains
QUOTA_PACE = 0.5  # pace to the source's refill rate while less than this share remains
QUOTA_MARGIN = 0.1  # share of RateLimit-Limit a new bucket leaves unspent
BURST_HELD = 0.1  # a bucket holding this many seconds of its rate is spending a burst
PACING_COOLDOWN = 1.0  # seconds between two paced decreases: the quota's own time scale
ASSUMED_PAGE_SECONDS = 0.25  # page latency the default concurrency can keep up with
MIN_CONCURRENCY, MAX_CONCURRENCY = 8, 64
INCREASE_SECONDS = 0.5  # an increase is earned by this long of healthy responses


@dataclass(frozen=True)
class RatePolicy:
    """The arithmetic of the limit, shared by the in-process and the shared limiter."""

    initial: float
    maximum: float
    increase_every: int = 1_000_000  # a cap on the responses an increase needs (tests: 1)
    increase_factor: float = 1.1
    increase_step: float = 1.0
    # A source's quota holds about a second of its rate; a bucket holding a little less
    # never spends all of it at once, so jitter does not run the source's quota to 0.
    burst_seconds: float = 0.9

    @property
    def minimum(self) -> float:
        return min(1.0, self.start)

    @property
    def start(self) -> float:
        return min(self.initial, self.maximum)

    def increase_interval(self, rate: float) -> int:
        """Healthy responses that earn one increase at ``rate``: half a second's worth (at
        1 request/s, every response; at 200/s, 100), or ``increase_every`` if fewer.

        Counted in time, not in responses, so the rate grows as fast (x1.1 + 1 twice a
        second) however high it is: a fixed count of responses would make a fast job grow
        its rate ten times a second, far past the source's limit before the quota's trend
        (a second of responses) can say so."""
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


class CpuLoad:
    """Whether this machine, not the source, is the likely cause of slow responses: the
    process used most of a core over the last second, or the load average is at the number
    of cores. Then responses wait in the event loop or the run queue, and their latency
    says nothing about the source."""

    def __init__(self, *, busy_share: float = 0.8, window: float = 1.0) -> None:
        self.busy_share, self.window = busy_share, window
        self._mark = (time.monotonic(), time.process_time())
        self._share = 0.0

    def starved(self) -> bool:
        wall, cpu = time.monotonic(), time.process_time()
        if wall - self._mark[0] >= self.window:
            self._share = (cpu - self._mark[1]) / (wall - self._mark[0])
            self._mark = (wall, cpu)
        cores = os.cpu_count() or 1
        return self._share >= self.busy_share or os.getloadavg()[0] >= cores


class QuotaTrend:
    """Whether the quota a source reports (RateLimit-Remaining) is spent faster than the
    source refills it: its change per second over the last second of responses.

    At the source's own rate the quota stays where it is, however low; only a quota that
    keeps falling says the rate is above what the source refills, and then the job's rate
    plus the slope is the source's rate. While the job's bucket spends a burst it holds
    (the job's first second: the bucket starts with what the source said was left) the
    quota falls by design, so those responses say nothing of the rate: the trend is read
    only from responses since the bucket last held a burst, and of the *gap* between the
    quota and the tokens the bucket still holds (a few, spent with the quota, move both).
    A change of less than
    ``dead_band`` of the limit per second is neither falling nor rising (responses arrive
    out of order: the quota jitters).
    """

    def __init__(self, *, window: float = 1.0, dead_band: float = 0.02) -> None:
        self.window, self.dead_band = window, dead_band
        self._samples: deque[tuple[float, float]] = deque()
        self._recent: deque[int] = deque(maxlen=16)
        self.limit = 0

    def observe(
        self,
        remaining: int,
        limit: int,
        *,
        stored: float = 0.0,
        spending: bool = False,
        now: float | None = None,
    ) -> None:
        """One response's quota; ``stored``: the tokens the job's bucket holds now;
        ``spending``: it held a burst when the request was sent."""
        now = time.monotonic() if now is None else now
        self._recent.append(remaining)
        self.limit = limit
        if spending:
            self._samples.clear()
            return
        self._samples.append((now, remaining - stored))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()

    @property
    def slope(self) -> float:
        """Quota gained per second (negative: spent) over the window: the least-squares line
        through every sample, not its two ends (a quota of whole requests, reported out of
        order, jitters by a request or two); 0 until the samples span half the window."""
        if len(self._samples) < 2:
            return 0.0
        first_at, last_at = self._samples[0][0], self._samples[-1][0]
        if last_at - first_at < self.window / 2:
            return 0.0
        n = len(self._samples)
        mean_t = sum(t - first_at for t, _ in self._samples) / n
        mean_g = sum(g for _, g in self._samples) / n
        spread = sum((t - first_at - mean_t) ** 2 for t, _ in self._samples)
        if spread <= 0:
            return 0.0
        return sum((t - first_at - mean_t) * (g - mean_g) for t, g in self._samples) / spread

    @property
    def lowest(self) -> int | None:
        """The least quota the last few responses reported (they arrive out of order)."""
        return min(self._recent, default=None)

    def spendable(self) -> int | None:
        """What a new bucket may start with: the quota left, less a margin (``QUOTA_MARGIN``
        of the limit) so that jitter does not run it to 0 (a pause until RateLimit-Reset)."""
        lowest = self.lowest
        if lowest is None:
            return None
        return max(0, lowest - math.ceil(QUOTA_MARGIN * self.limit))

    @property
    def falling(self) -> bool:
        return self.slope < -self.dead_band * self.limit

    @property
    def rising(self) -> bool:
        return self.slope > self.dead_band * self.limit


class RateLimiter(Protocol):
    """What the fetcher needs from a limiter."""

    rate: float  # requests a second allowed now

    @property
    def stored(self) -> float:
        """Tokens the bucket holds now: requests it may send at once."""

    async def acquire(self, priority: float = 0.0) -> int:
        """Wait until one request may be sent (the highest ``priority`` first); the epoch it
        is sent under."""

    def on_success(self, *, hold: bool = False) -> None:
        """A healthy response; ``hold`` (latency rising, quota low) blocks any increase."""

    async def on_throttled(self, pause: float | None, factor: float, seen: int) -> None:
        """Slow down by ``factor`` unless the rate changed since epoch ``seen``; if ``pause``
        is given, send nothing for that long."""


class AdaptiveRateLimiter(TokenQueue):
    """The policy as a token bucket in one process."""

    def __init__(self, initial: float, maximum: float, *, increase_every: int = 1_000_000) -> None:
        super().__init__()
        self.policy = RatePolicy(initial, maximum, increase_every=increase_every)
        self.rate = self.policy.start
        self.maximum = maximum
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._healthy_streak = 0
        self.epoch = 0

    @property
    def stored(self) -> float:
        elapsed = max(0.0, time.monotonic() - self._updated)
        return min(self.policy.burst(self.rate), self._tokens + elapsed * self.rate)

    def _take_now(self) -> bool:
        now = time.monotonic()
        if now < self._paused_until:
            return False
        self._refill(now)
        return self._tokens >= 1.0

    async def _replenish(self) -> None:
        while True:
            now = time.monotonic()
            if now < self._paused_until:
                await asyncio.sleep(self._paused_until - now)
                continue
            self._refill(now)
            if self._tokens >= 1.0:
                return
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
