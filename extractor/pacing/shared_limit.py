"""One adaptive rate limit per job, shared by every worker in every process.

The token bucket is a row of the ledger (``rate_limits``): rate, tokens, when it was last
refilled, a pause (Retry-After, RateLimit-Reset) and an epoch. A process leases a few
tokens at a time with one ``UPDATE .. RETURNING`` (refill, grant, and the additive increase
earned by the healthy responses it reports), so one round trip buys up to 50 ms of
requests. A decrease names the epoch its request was sent under: when several requests
(of any worker) are throttled by the same burst, only the first halves the rate. Waiting is
for the time the row says (the pause, or until the next token), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from extractor import metrics
from extractor.ledger.store import Ledger
from extractor.pacing.ratelimit import INCREASE_SECONDS
from extractor.pacing.tokens import TokenQueue

log = logging.getLogger(__name__)

LEASE = """
WITH cur AS (
    SELECT job_id, clock_timestamp() AS now,
        least(greatest(1.0, rate * burst_seconds),
              tokens + greatest(0, extract(epoch FROM clock_timestamp() - refilled_at)) * rate)
            AS available,
        paused_until > clock_timestamp() AS paused,
        healthy + %(ok)s AS healthy_now,
        greatest(1, least(increase_every, ceil(rate * %(isec)s)))::int AS every
    FROM {s}.rate_limits WHERE job_id = %(j)s FOR UPDATE
), g AS (
    SELECT *, CASE WHEN paused THEN 0 ELSE least(%(want)s, floor(available))::int END AS granted,
        healthy_now / every AS steps
    FROM cur
)
UPDATE {s}.rate_limits r SET
    tokens = g.available - g.granted,
    refilled_at = greatest(r.refilled_at, g.now),
    rate = CASE WHEN %(hold)s OR g.steps = 0 THEN r.rate ELSE least(r.maximum,
        r.rate * power(r.increase_factor, g.steps)
        + r.increase_step * (power(r.increase_factor, g.steps) - 1) / (r.increase_factor - 1))
    END,
    healthy = CASE WHEN %(hold)s THEN 0 ELSE g.healthy_now %% g.every END
FROM g WHERE r.job_id = g.job_id
RETURNING g.granted, r.tokens, r.rate, r.epoch, greatest(1.0, r.rate * r.burst_seconds) AS burst,
    extract(epoch FROM greatest(r.paused_until, g.now) - g.now)::float8 AS pause
"""

THROTTLE = """
WITH before AS (
    SELECT job_id, epoch = %(seen)s AS lowers FROM {s}.rate_limits WHERE job_id = %(j)s FOR UPDATE
)
UPDATE {s}.rate_limits r SET
    rate = CASE WHEN b.lowers THEN greatest(minimum, rate * %(factor)s) ELSE rate END,
    epoch = CASE WHEN b.lowers THEN epoch + 1 ELSE epoch END,
    healthy = 0,
    throttled = throttled + 1,
    paused_until = CASE WHEN %(pause)s > 0 THEN greatest(paused_until,
        clock_timestamp() + make_interval(secs => %(pause)s)) ELSE paused_until END,
    tokens = CASE WHEN %(pause)s > 0 THEN 0 ELSE tokens END,
    refilled_at = CASE WHEN %(pause)s > 0 THEN greatest(refilled_at,
        clock_timestamp() + make_interval(secs => %(pause)s)) ELSE refilled_at END
FROM before b WHERE r.job_id = b.job_id
RETURNING r.rate, r.epoch, b.lowers
"""


@dataclass(frozen=True)
class Grant:
    """What one lease returned."""

    granted: int
    tokens: float
    rate: float
    epoch: int
    burst: float
    pause: float
    at: float = field(default_factory=time.monotonic)

    def tokens_now(self) -> float:
        """The shared bucket's tokens now, as this lease left them refilled since (other
        workers' leases aside)."""
        return min(self.burst, self.tokens + (time.monotonic() - self.at) * self.rate)

    @property
    def wait(self) -> float:
        """Seconds until asking again can succeed."""
        if self.pause > 0:
            return self.pause
        return max(0.001, (1.0 - self.tokens) / self.rate)


class SharedRateLimiter(TokenQueue):
    """This process's view of a job's shared limit: leased tokens and pending feedback.

    The tokens a lease brings go to this process's waiting requests, the slice with the
    most records left first (``extractor.pacing.tokens``).
    """

    def __init__(
        self,
        ledger: Ledger,
        job_id: str,
        *,
        dataset: str = "",
        chunk_seconds: float = 0.05,
        max_chunk: int = 20,
    ) -> None:
        super().__init__()
        self.ledger = ledger
        self.dataset = dataset
        self.job_id = job_id
        self.chunk_seconds = chunk_seconds
        self.max_chunk = max_chunk
        self.rate = 1.0
        self.epoch = 0
        self._successes = 0
        self._hold = False
        self._grant: Grant | None = None  # the last lease

    @property
    def stored(self) -> float:
        held = self._grant.tokens_now() if self._grant is not None else 0.0
        return self._tokens + held

    async def _replenish(self) -> None:
        while self._tokens < 1:
            grant = await self.lease()
            self._tokens += grant.granted
            if grant.granted == 0:
                await asyncio.sleep(grant.wait)

    async def lease(self) -> Grant:
        """One round trip: report feedback, refill, take up to a chunk of tokens."""
        want = max(1, min(self.max_chunk, int(self.rate * self.chunk_seconds)))
        successes, hold = self._successes, self._hold
        self._successes, self._hold = 0, False
        params = {
            "j": self.job_id,
            "want": want,
            "ok": successes,
            "hold": hold,
            "isec": INCREASE_SECONDS,
        }
        found = await self.ledger.rows_once(LEASE, params)
        if found is None:  # a retry: the first attempt committed, its grant's reply was lost
            return Grant(0, 0.0, self.rate, self.epoch, 1.0, 0.0)
        if not found:
            raise LookupError(f"job {self.job_id} has no rate limit row")
        grant = Grant(**found[0])
        self.rate, self.epoch, self._grant = grant.rate, grant.epoch, grant
        metrics.RATE_LIMIT.labels(self.dataset).set(self.rate)
        return grant

    def on_success(self, *, hold: bool = False) -> None:
        self._successes += 1
        self._hold = self._hold or hold

    async def on_throttled(self, pause: float | None, factor: float, seen: int) -> None:
        if pause:
            self._tokens = 0.0  # tokens leased before the pause would burst right after it
            self._grant = None  # and the shared bucket is emptied
        found = await self.ledger.rows_once(
            THROTTLE, {"j": self.job_id, "seen": seen, "factor": factor, "pause": pause or 0.0}
        )
        if found:  # None: a retry found its first attempt applied
            row = found[0]
            if row["lowers"]:  # this response lowered it, not one of the same burst
                log.info(
                    "rate limit lowered job=%s rate=%.1f/s pause=%.1fs",
                    self.job_id,
                    row["rate"],
                    pause or 0.0,
                )
            self.rate, self.epoch = row["rate"], row["epoch"]
