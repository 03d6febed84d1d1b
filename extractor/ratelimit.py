"""One adaptive rate limit shared by every request of a job.

Additive increase while responses are healthy, multiplicative decrease on 429/503, and a
pause honouring Retry-After; never above the configured maximum. Requests are spaced by
the current rate (a token bucket with a burst of one second's worth).
"""

from __future__ import annotations

import asyncio
import time


class AdaptiveRateLimiter:
    def __init__(self, initial: float, maximum: float, *, increase_every: int = 20) -> None:
        self.rate = min(initial, maximum)
        self.maximum = maximum
        self.minimum = min(1.0, self.rate)
        self.increase_every = increase_every
        self._tokens = 1.0
        self._updated = time.monotonic()
        self._paused_until = 0.0
        self._healthy_streak = 0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until a request may be sent."""
        async with self._lock:
            while True:
                now = time.monotonic()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)

    def _refill(self, now: float) -> None:
        burst = max(1.0, self.rate)
        self._tokens = min(burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def on_success(self) -> None:
        self._healthy_streak += 1
        if self._healthy_streak >= self.increase_every:
            self._healthy_streak = 0
            self.rate = min(self.maximum, self.rate * 1.1 + 1.0)

    def on_throttled(self, retry_after: float | None) -> None:
        """The source said "too many": slow down, and pause everyone if it said how long."""
        self._healthy_streak = 0
        self.rate = max(self.minimum, self.rate / 2)
        if retry_after is not None:
            self._paused_until = max(self._paused_until, time.monotonic() + retry_after)
