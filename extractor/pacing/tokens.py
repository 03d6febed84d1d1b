"""Who gets the next token: the waiting request whose slice has the most work left.

A job's slices run side by side and share one rate limit. Served first come, first served,
each gets an equal share of the rate, so the slices the source holds more records for
(busier days) finish last, one page at a time, while the rate the source allows goes
unused: the tail of a job. Served by priority (the records a slice still expects to fetch)
the larger slices catch up and all of them end together. Under the limit nothing changes:
when tokens are plentiful every waiter is served at once.

A slice waits for one token at a time (its next cursor comes from the page it fetches), so
even the highest priority takes at most one token per round trip: priority orders the
waiters, it cannot starve the others.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from abc import ABC, abstractmethod


class TokenQueue(ABC):
    """A limiter's waiting requests, served highest priority first by one dispatcher task.

    A subclass says how tokens are had (``_replenish``: wait until at least one is) and
    keeps them in ``_tokens``; the queue hands them out and names the epoch each request
    is sent under.
    """

    epoch: int

    def __init__(self) -> None:
        self._tokens: float = 0.0
        self._waiting: list[tuple[float, int, asyncio.Future[int]]] = []
        self._order = itertools.count()
        self._dispatcher: asyncio.Task[None] | None = None

    @abstractmethod
    async def _replenish(self) -> None:
        """Wait until ``_tokens`` holds at least one token."""

    def _take_now(self) -> bool:
        """Whether a token is here without waiting (the fast path: nobody queued)."""
        return self._tokens >= 1.0

    async def acquire(self, priority: float = 0.0) -> int:
        """Wait for a token; the epoch the request is sent under.

        ``priority``: the records the caller's slice still expects (higher goes first).
        """
        if not self._waiting and self._take_now():
            self._tokens -= 1.0
            return self.epoch
        ticket: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-priority, next(self._order), ticket))
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.create_task(self._dispatch())
        return await ticket

    async def _dispatch(self) -> None:
        try:
            while self._drop_abandoned():
                await self._replenish()
                while self._tokens >= 1.0 and self._drop_abandoned():
                    _, _, ticket = heapq.heappop(self._waiting)
                    ticket.set_result(self.epoch)
                    self._tokens -= 1.0
        except asyncio.CancelledError:
            self._fail(None)
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every waiter, which raises it
            self._fail(exc)

    def _drop_abandoned(self) -> bool:
        """Forget waiters that gave up (cancelled); whether any is left."""
        while self._waiting and self._waiting[0][2].done():
            heapq.heappop(self._waiting)
        return bool(self._waiting)

    def _fail(self, exc: Exception | None) -> None:
        """Tokens cannot be had (the ledger failed, or the loop is closing): tell every waiter."""
        for _, _, ticket in self._waiting:
            if not ticket.done():
                if exc is None:
                    ticket.cancel()
                else:
                    ticket.set_exception(exc)
        self._waiting.clear()
