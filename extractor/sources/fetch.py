"""Fetching JSON pages: rate limit, circuit breaker, retries with backoff and jitter.

Every response feeds the limiter, naming the epoch its request was sent under (so one
overload lowers the rate once): 429 (and 503 with Retry-After) halve the rate and pause for
Retry-After, a bare 503 takes a tenth off; RateLimit-Remaining 0 pauses until
RateLimit-Reset; under half of RateLimit-Limit and spent faster than the source refills it,
the rate is paced down to the source's (``QuotaTrend``); a low quota that is not gaining
holds the rate; latency rising well above its floor takes a tenth off; healthy responses
earn increases. Failed requests are counted by kind
(``timeout``, ``connection``, ``http_429``, ``http_503``, ``malformed``, ...) for the report.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from common.errors import BackfillError
from common.records import get_path
from common.resilience import Backoff
from common.settings import ExtractorSettings
from extractor import metrics
from extractor.pacing.breaker import CircuitBreaker
from extractor.pacing.ratelimit import (
    BURST_HELD,
    LATENCY_FACTOR,
    PACING_COOLDOWN,
    PACING_FLOOR,
    QUOTA_HOLD,
    QUOTA_PACE,
    QUOTA_SPENT_FACTOR,
    THROTTLED_FACTOR,
    CpuLoad,
    LatencyTracker,
    QuotaTrend,
    RateLimiter,
)
from extractor.sources.auth import Credentials
from extractor.sources.source_errors import RetryableSourceError as RetryableSourceError
from extractor.sources.source_errors import SourceError as SourceError

log = logging.getLogger(__name__)
THROTTLED = {429, 503}
DEFAULT_BACKOFF = Backoff(base=0.25, cap=30.0)
EPOCH_THRESHOLD = 1_000_000_000  # a RateLimit-Reset this large is a unix time, not seconds


@dataclass(frozen=True, slots=True)
class _Reply:
    """A response as read, before it is judged."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    seconds: float
    epoch: int
    spending: bool
    authorization: str  # the Authorization header sent (OAuth: which token was refused)


@dataclass(frozen=True)
class Answer:
    """A decoded 200: its body, headers and the URL that answered."""

    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


TAGS = re.compile(r"<[^>]*>|\s+")
SNIPPET = 200


def decode_body(body: bytes, content_type: str, error_path: str | None) -> Any:
    """The JSON of a 200 body; an HTML or other non-JSON body, a truncated one, or one that
    holds an error at ``error_path`` is retryable (a source under strain answers so)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "json" not in content_type or body.lstrip()[:1] == b"<":
            text = TAGS.sub(" ", body[:4096].decode("utf-8", "replace")).strip()
            message = f"body is not JSON ({content_type or 'no content type'}): {text[:SNIPPET]}"
            raise RetryableSourceError(message, "not_json", source_down=True) from exc
        message = f"body is not valid JSON ({len(body)} bytes): {exc}"
        raise RetryableSourceError(message, "malformed", source_down=False) from exc
    if error_path is not None and isinstance(data, dict):
        error = get_path(data, error_path)
        if error not in (None, "", False, [], {}):
            text = orjson.dumps(error).decode() if not isinstance(error, str) else error
            message = f"error in body ({error_path}): {text[:SNIPPET]}"
            raise RetryableSourceError(message, "error_body", source_down=True)
    return data


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def quota(headers: Mapping[str, str]) -> tuple[int | None, int | None, float | None]:
    """RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset (seconds from now)."""

    def number(name: str) -> int | None:
        raw = headers.get(name, "").split(",")[0].strip()
        return int(raw) if raw.isdigit() else None

    reset = number("RateLimit-Reset")
    seconds = None if reset is None else float(reset)
    if seconds is not None and seconds > EPOCH_THRESHOLD:
        seconds = max(0.0, seconds - time.time())
    return number("RateLimit-Limit"), number("RateLimit-Remaining"), seconds


def http_session(settings: ExtractorSettings, concurrency: int) -> aiohttp.ClientSession:
    """One pooled HTTP client per process; source headers go on each request."""
    timeout = aiohttp.ClientTimeout(
        sock_connect=settings.extractor_connect_timeout,
        sock_read=settings.extractor_read_timeout,
    )
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    return aiohttp.ClientSession(timeout=timeout, connector=connector, raise_for_status=False)


def status_error(status: int, url: str) -> BackfillError:
    """The error a failed status stands for."""
    kind = f"http_{status}" if status in (408, 429) or status < 500 else "http_5xx"
    if status == 503:
        kind = "http_503"
    if status in THROTTLED or status >= 500 or status == 408:
        return RetryableSourceError(f"HTTP {status} from {url}", kind, source_down=status != 429)
    return SourceError(f"HTTP {status} from {url}", kind)


class JsonFetcher:
    """GET JSON from one source under its rate limit and breaker, retrying what is transient."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        limiter: RateLimiter,
        *,
        max_retries: int,
        breaker: CircuitBreaker | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        headers: Mapping[str, str] | None = None,
        dataset: str = "",
        error_path: str | None = None,
        credentials: Credentials | None = None,
        latency_pacing: bool = False,
    ) -> None:
        self.dataset = dataset
        self.credentials = credentials or Credentials()
        self.error_path = error_path
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.headers = {**(headers or {}), **self.credentials.headers}
        self.limiter = limiter
        self.max_retries = max_retries
        self.breaker = breaker or CircuitBreaker(5, 5.0, name=base_url)
        self.backoff = backoff
        self.latency = LatencyTracker()
        self.latency_pacing = latency_pacing  # the spec's rate_limit.latency_pacing
        self.cpu = CpuLoad()
        self.quota_trend = QuotaTrend()
        self._paced_at = -PACING_COOLDOWN  # once a second at most: the trend lags a decrease
        self.requests = 0
        self.retries = 0
        metrics.start_fetching(dataset)

    async def get(
        self,
        path: str,
        params: dict[str, Any],
        errors: Counter[str] | None = None,
        *,
        priority: float = 0.0,
    ) -> Any:
        """The decoded body; raises SourceError, or RetryableSourceError once retries run out.

        ``priority``: the records the caller's slice still expects; under the rate limit,
        the request with the most work behind it is sent first (``extractor.pacing.tokens``).
        """
        return (await self.fetch(path, params, errors, priority=priority)).body

    async def fetch(
        self,
        path: str,
        params: dict[str, Any],
        errors: Counter[str] | None = None,
        *,
        priority: float = 0.0,
    ) -> Answer:
        """As ``get``, with the response's headers and URL; ``path`` may be a whole URL (a
        paginator's next page, checked by the paginator to be on this source)."""
        errors = Counter() if errors is None else errors
        attempt = 0
        while True:
            try:
                body = await self._attempt(path, params, priority)
            except (RetryableSourceError, SourceError) as exc:
                exc.args = (self.credentials.redact(str(exc)),)
                errors[exc.kind] += 1
                metrics.REQUESTS.labels(self.dataset, exc.kind).inc()
                attempt += 1
                if isinstance(exc, SourceError) or attempt > self.max_retries:
                    raise
                self.retries += 1
                metrics.RETRIES.labels(self.dataset, exc.kind).inc()
                delay = self.backoff.delay(attempt)
                log.info(
                    "retrying path=%s attempt=%d delay=%.2fs kind=%s error=%s",
                    self.credentials.redact(path),
                    attempt,
                    delay,
                    exc.kind,
                    exc,
                )
                await asyncio.sleep(delay)
            else:
                metrics.REQUESTS.labels(self.dataset, "ok").inc()
                return body

    async def _attempt(self, path: str, params: dict[str, Any], priority: float) -> Answer:
        probe = await self.breaker.admit()
        metrics.observe_breaker(self.dataset, self.breaker.state.value)
        try:
            data = await self._get_once(path, params, priority)
        except RetryableSourceError as exc:
            self._record(success=not exc.source_down)
            raise
        except SourceError:
            self._record(success=True)
            raise
        except BaseException:
            if probe:
                self.breaker.abandon_probe()
            raise
        self._record(success=True)
        return data

    def _record(self, *, success: bool) -> None:
        self.breaker.record(success=success)
        metrics.observe_breaker(self.dataset, self.breaker.state.value)

    async def _get_once(self, path: str, params: dict[str, Any], priority: float) -> Answer:
        reply = await self._send(path, params, priority)
        tokens = self.credentials.tokens
        if reply.status == 401 and tokens is not None:
            # A token revoked before its expiry: a new one, and this request once more (a
            # second 401 is a refusal like any other).
            await tokens.refused(self.session, reply.authorization)
            reply = await self._send(path, params, priority)
        await self._feedback(
            reply.status,
            reply.headers,
            reply.seconds,
            reply.url,
            reply.epoch,
            spending=reply.spending,
        )
        content_type = reply.headers.get("Content-Type", "")
        return Answer(
            decode_body(reply.body, content_type, self.error_path), reply.headers, reply.url
        )

    async def _send(self, path: str, params: dict[str, Any], priority: float) -> _Reply:
        """One GET under the rate limit, with the current token when the source has OAuth."""
        headers = self.headers
        if self.credentials.tokens is not None:
            authorization = await self.credentials.tokens.authorization(self.session)
            headers = {**headers, "Authorization": authorization}
        epoch = await self.limiter.acquire(priority)
        limiter = self.limiter  # spending a burst it holds: the quota falls by design
        spending = limiter.stored >= max(1.0, BURST_HELD * limiter.rate)
        self.requests += 1
        started = time.monotonic()
        try:
            url = path if path.startswith(("http://", "https://")) else self.base_url + path
            params = self.credentials.apply(params)
            async with self.session.get(url, params=params, headers=headers) as response:
                body = await response.read()
                status, answered, url = response.status, response.headers, str(response.url)
        except TimeoutError as exc:
            raise RetryableSourceError(f"timeout: {exc}", "timeout", source_down=True) from exc
        except aiohttp.ClientError as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise RetryableSourceError(message, "connection", source_down=True) from exc
        seconds = time.monotonic() - started
        authorization = headers.get("Authorization", "")
        return _Reply(status, answered, body, url, seconds, epoch, spending, authorization)

    async def _feedback(
        self,
        status: int,
        headers: Mapping[str, str],
        seconds: float,
        url: str,
        epoch: int,
        *,
        spending: bool = False,
    ) -> None:
        """Tell the limiter what this response (sent under ``epoch``, while the bucket was
        ``spending`` a burst it held, or not) says about capacity."""
        if status in THROTTLED:
            pause = retry_after_seconds(headers.get("Retry-After"))
            # A 503 without Retry-After is as likely a fault as overload: a gentler step.
            factor = THROTTLED_FACTOR if status == 429 or pause else LATENCY_FACTOR
            await self.limiter.on_throttled(pause, factor, epoch)
        if status >= 400:
            raise status_error(status, url)
        limit, remaining, reset = quota(headers)
        if remaining is not None and limit:
            stored = self.limiter.stored
            self.quota_trend.observe(remaining, limit, stored=stored, spending=spending)
        paced = self._paced_rate(limit, remaining, reset)
        if remaining == 0 and reset:
            await self.limiter.on_throttled(reset, QUOTA_SPENT_FACTOR, epoch)
        elif paced is not None:
            self._paced_at = time.monotonic()
            await self.limiter.on_throttled(None, paced / self.limiter.rate, epoch)
        slow_source = self._slow_source(seconds)
        if slow_source:
            log.info("latency rising ewma=%.3fs floor=%.3fs", self.latency.ewma, self.latency.floor)
            await self.limiter.on_throttled(None, LATENCY_FACTOR, epoch)
        quota_low = limit is not None and remaining is not None and remaining < QUOTA_HOLD * limit
        # No increase while the quota is spent faster than refilled, or while it is low and
        # not gaining: the job is at the source's rate.
        hold = self.quota_trend.falling or (quota_low and not self.quota_trend.rising)
        rising = self.latency_pacing and self.latency.rising and not self.cpu.starved()
        self.limiter.on_success(hold=hold or rising)

    def _slow_source(self, seconds: float) -> bool:
        """Whether latency says the source is overloaded: only with latency pacing on, and
        not while this machine's CPU is what slows the responses down."""
        if not self.latency_pacing or not self.latency.observe(seconds):
            return False
        if self.cpu.starved():
            log.info("latency rising while this machine is CPU-bound: the rate stays")
            return False
        return True

    def _paced_rate(
        self, limit: int | None, remaining: int | None, reset: float | None
    ) -> float | None:
        """The rate to slow down to, if the quota says so: less than half of it is left, it
        is spent faster than the source refills it, and this rate would spend it before the
        reset. Then: the source's refill rate (this rate plus the trend's slope), or the
        rate that spends what is left by the reset (a fixed window refills only then),
        whichever is higher; at most half off at once, once a second.

        Pacing by the quota the source reports keeps the rate at its limit instead of
        running the quota down to 0 and paying for it with a pause.
        """
        if not limit or remaining is None or remaining >= QUOTA_PACE * limit:
            return None
        if not self.quota_trend.falling or time.monotonic() - self._paced_at < PACING_COOLDOWN:
            return None
        rate = self.limiter.rate
        lasting = remaining / reset if reset else 0.0  # spends the quota by the reset
        if reset and rate <= lasting:
            return None
        target = max(rate + self.quota_trend.slope, lasting, rate * PACING_FLOOR)
        return target if target < rate else None
