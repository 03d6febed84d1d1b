"""Backoff with jitter and a retry loop for transient failures."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped."""

    base: float = 0.2
    cap: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return (rng or random).uniform(ceiling / 2, ceiling)


DEFAULT_BACKOFF = Backoff()


async def retry_transient(
    operation: Callable[[], Awaitable[T]],
    is_transient: Callable[[BaseException], bool],
    *,
    backoff: Backoff = DEFAULT_BACKOFF,
    what: str = "operation",
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds or fails non-transiently; transient errors wait.

    There is no attempt limit: a store that is down is waited for (the consumer pauses),
    never turned into dead letters. Cancellation (shutdown) ends the wait.
    """
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            attempt += 1
            delay = backoff.delay(attempt)
            if on_retry is not None:
                on_retry(exc)
            log.warning(
                "retrying %s after transient error attempt=%d delay=%.2fs error=%s",
                what,
                attempt,
                delay,
                _short(exc),
            )
            await asyncio.sleep(delay)


class Stopped(Exception):
    """SIGTERM (or SIGINT) arrived during a wait; the wait was abandoned."""


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T:
    """``work``'s result; if ``stop`` is set first, ``work`` is cancelled and Stopped raised
    (a service waiting for a store that is down, or a queue that is full, must still answer
    SIGTERM)."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Stopped
    return task.result()


async def sleep_unless_stopped(seconds: float, stop: asyncio.Event) -> bool:
    """Wait ``seconds``; True if ``stop`` was set (at once, or during the wait)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    return stop.is_set()


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}"
