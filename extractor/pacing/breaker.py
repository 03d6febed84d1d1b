"""A circuit breaker: stop hammering a source that is down, probe it again later.

Closed: requests flow. After ``failures`` consecutive failed requests it opens for a
cool-down; callers wait for the reopen time (no polling). Then it is half-open: one probe
goes through while the others wait for its result. A good probe closes the breaker; a bad
one opens it again with the cool-down doubled, up to ``max_cooldown``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from enum import Enum

log = logging.getLogger(__name__)


class BreakerState(Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        cooldown: float,
        *,
        max_cooldown: float = 60.0,
        name: str = "source",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self.name = name
        self.clock = clock
        self.state = BreakerState.CLOSED
        self.consecutive_failures = 0
        self.cooldown = cooldown
        self.reopen_at = 0.0
        self.opened = 0
        self._changed = asyncio.Event()

    async def admit(self) -> bool:
        """Wait until a request may go out; True if this caller is the half-open probe."""
        while True:
            if self.state is BreakerState.CLOSED:
                return False
            if self.state is BreakerState.OPEN:
                remaining = self.reopen_at - self.clock()
                if remaining <= 0:
                    self._transition(BreakerState.HALF_OPEN)
                    return True
                await self._wait_for_change(remaining)
            else:
                await self._wait_for_change(None)

    def record(self, *, success: bool) -> None:
        """The outcome of a request that was admitted."""
        if success:
            self.consecutive_failures = 0
            if self.state is not BreakerState.CLOSED:
                log.info("breaker closed source=%s", self.name)
                self.cooldown = self.base_cooldown
                self._transition(BreakerState.CLOSED)
            return
        self.consecutive_failures += 1
        if self.state is BreakerState.HALF_OPEN:
            self.cooldown = min(self.max_cooldown, self.cooldown * 2)
            self._open()
        elif self.state is BreakerState.CLOSED and self.consecutive_failures >= self.threshold:
            self._open()

    def abandon_probe(self) -> None:
        """The probe never finished (its caller was cancelled): let the next caller probe."""
        if self.state is BreakerState.HALF_OPEN:
            self.reopen_at = self.clock()
            self._transition(BreakerState.OPEN)

    def _open(self) -> None:
        self.reopen_at = self.clock() + self.cooldown
        self.opened += 1
        log.warning(
            "breaker open source=%s failures=%d cooldown=%.1fs",
            self.name,
            self.consecutive_failures,
            self.cooldown,
        )
        self._transition(BreakerState.OPEN)

    def _transition(self, state: BreakerState) -> None:
        self.state = state
        self._changed.set()
        self._changed = asyncio.Event()

    async def _wait_for_change(self, seconds: float | None) -> None:
        changed = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await changed.wait()
