"""Fault knobs that make the demo API behave like a strained real one, and their dice."""

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

Clock = Callable[[], float]


class Faults(BaseModel):
    """How badly the demo API behaves; every knob defaults to off."""

    model_config = ConfigDict(frozen=True)

    latency_ms: float = Field(default=0.0, ge=0, description="delay added to every page, ms")
    rate_limit: float = Field(
        default=0.0, ge=0, description="requests/s allowed over all clients, 0 = unlimited"
    )
    error_rate: float = Field(default=0.0, ge=0, le=1, description="share of requests answered 503")
    throttle_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of requests answered 429 with Retry-After: 1 whatever the quota "
        "(a secondary limit, like GitHub's, that RateLimit-Remaining does not warn of)",
    )
    slow_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of pages delayed by slow_ms"
    )
    slow_ms: float = Field(default=2000.0, ge=0, description="extra delay of a slow page, ms")
    malformed_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of pages answered 200 with truncated JSON"
    )
    error_body_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description='share of pages answered 200 with {"error": ...} instead of records',
    )
    html_rate: float = Field(
        default=0.0, ge=0, le=1, description="share of pages answered 200 with an HTML page"
    )
    fixed_page_size: int = Field(
        default=0,
        ge=0,
        description="page size the server fixes whatever the client asks, 0 = the client's",
    )
    auth_token: str = Field(
        default="",
        description="secret data requests must carry (Bearer, X-API-Key, ?api_key= or the "
        "basic-auth password), 401 otherwise; empty = no auth",
    )
    detail_missing_every: int = Field(
        default=0,
        ge=0,
        description="every Nth replay (by age) has no detail: /replays/{id}.json answers 404, "
        "0 = none",
    )
    oauth_client_id: str = Field(
        default="demo-client", description="the client id POST /oauth/token accepts"
    )
    oauth_client_secret: str = Field(
        default="",
        description="the client secret POST /oauth/token accepts; when set, data requests "
        "need a live token it issued (Bearer), 401 otherwise; empty = no OAuth",
    )
    token_ttl: float = Field(
        default=3600.0, gt=0, description="seconds an issued token lives (its expires_in)"
    )
    token_revoke_after: int = Field(
        default=0,
        ge=0,
        description="revoke every token issued so far, once, after this many authorised "
        "data requests (the client sees 401 before expiry), 0 = never",
    )
    fault_seed: int = Field(default=0, description="seed of the dice that pick faulty requests")


@dataclass(frozen=True, slots=True)
class RateDecision:
    """Whether the token bucket let a request through, and the quota it reports."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int

    def headers(self) -> dict[str, str]:
        """RateLimit-* headers, plus Retry-After when the request was refused."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after_s)
        return headers


class TokenBucket:
    """Admits `rate` requests/s on average with bursts of one second's worth."""

    def __init__(self, rate: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()

    def acquire(self) -> RateDecision:
        """Take one token if there is one; report the quota either way."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        allowed = self._tokens >= 1.0
        if allowed:
            self._tokens -= 1.0
        return RateDecision(
            allowed=allowed,
            limit=math.floor(self.capacity),
            remaining=math.floor(self._tokens),
            reset_s=math.ceil((self.capacity - self._tokens) / self.rate),
            # Whole seconds, as the header allows; at least 1 so a client never spins.
            retry_after_s=max(1, math.ceil((1.0 - self._tokens) / self.rate)),
        )


@dataclass(frozen=True, slots=True)
class PageFault:
    """What to do to one page: hold it back for `delay_s`, and/or cut its body short."""

    delay_s: float
    malformed: bool


class FaultInjector:
    """Rolls the seeded dice for each request according to `faults`."""

    def __init__(self, faults: Faults, clock: Clock = time.monotonic) -> None:
        self.faults = faults
        self._bucket = TokenBucket(faults.rate_limit, clock) if faults.rate_limit > 0 else None
        # One stream per kind of fault, so turning one knob does not reshuffle the others.
        self._error_dice = random.Random(f"{faults.fault_seed}:error")
        self._throttle_dice = random.Random(f"{faults.fault_seed}:throttle")
        self._slow_dice = random.Random(f"{faults.fault_seed}:slow")
        self._malformed_dice = random.Random(f"{faults.fault_seed}:malformed")
        self._error_body_dice = random.Random(f"{faults.fault_seed}:error_body")
        self._html_dice = random.Random(f"{faults.fault_seed}:html")

    def admit(self) -> RateDecision | None:
        """Ask the rate limiter about one request; None when there is no limit."""
        return None if self._bucket is None else self._bucket.acquire()

    def throttles(self) -> bool:
        """Whether this request is refused 429 by the secondary limit."""
        return _roll(self._throttle_dice, self.faults.throttle_rate)

    def fails(self) -> bool:
        """Whether this request is answered 503."""
        return _roll(self._error_dice, self.faults.error_rate)

    def error_body(self) -> bool:
        """Whether this request is answered 200 with an error body."""
        return _roll(self._error_body_dice, self.faults.error_body_rate)

    def html(self) -> bool:
        """Whether this request is answered 200 with an HTML page."""
        return _roll(self._html_dice, self.faults.html_rate)

    def page_size(self, asked: int) -> int:
        """The rows a page holds: the client's ask, unless the server fixes it."""
        return self.faults.fixed_page_size or asked

    def page_fault(self) -> PageFault:
        """Decide the delay and corruption of one page."""
        delay_ms = self.faults.latency_ms
        if _roll(self._slow_dice, self.faults.slow_rate):
            delay_ms += self.faults.slow_ms
        return PageFault(delay_ms / 1000, _roll(self._malformed_dice, self.faults.malformed_rate))


def _roll(dice: random.Random, rate: float) -> bool:
    return rate > 0 and dice.random() < rate


def truncate_json(body: bytes) -> bytes:
    """Cut a JSON document short so that no parser accepts it."""
    # Any proper prefix of an array is unterminated, so half of it is always invalid.
    return body[: max(1, len(body) // 2)]
