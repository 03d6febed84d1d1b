"""Fetching JSON pages: shared rate limit, retries with backoff and jitter, Retry-After."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from typing import Any

import aiohttp
import orjson

from common.errors import BackfillError, TransientError
from common.resilience import Backoff
from extractor.ratelimit import AdaptiveRateLimiter

log = logging.getLogger(__name__)
THROTTLED = {429, 503}
DEFAULT_BACKOFF = Backoff(base=0.25, cap=30.0)


class SourceError(BackfillError):
    """The source answered in a way retrying will not fix (4xx other than 429)."""


class RetryableSourceError(TransientError):
    """Timeout, connection error, 429, 5xx or a truncated body."""


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


class JsonFetcher:
    """GET JSON from one source under its rate limit, retrying what is transient."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        limiter: AdaptiveRateLimiter,
        *,
        max_retries: int,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.limiter = limiter
        self.max_retries = max_retries
        self.backoff = backoff
        self.requests = 0
        self.retries = 0

    async def get(self, path: str, params: dict[str, Any]) -> Any:
        """The decoded body; raises SourceError, or RetryableSourceError once retries run out."""
        attempt = 0
        while True:
            try:
                return await self._get_once(path, params)
            except RetryableSourceError as exc:
                attempt += 1
                if attempt > self.max_retries:
                    raise
                self.retries += 1
                delay = self.backoff.delay(attempt)
                log.info(
                    "retrying GET %s attempt=%d delay=%.2fs error=%s", path, attempt, delay, exc
                )
                await asyncio.sleep(delay)

    async def _get_once(self, path: str, params: dict[str, Any]) -> Any:
        await self.limiter.acquire()
        self.requests += 1
        try:
            async with self.session.get(self.base_url + path, params=params) as response:
                body = await response.read()
                self._check_status(response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableSourceError(f"{type(exc).__name__}: {exc}") from exc
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RetryableSourceError(
                f"body is not valid JSON ({len(body)} bytes): {exc}"
            ) from exc
        self.limiter.on_success()
        return data

    def _check_status(self, response: aiohttp.ClientResponse) -> None:
        status = response.status
        if status < 400:
            return
        if status in THROTTLED:
            self.limiter.on_throttled(retry_after_seconds(response.headers.get("Retry-After")))
        if status in THROTTLED or status >= 500 or status == 408:
            raise RetryableSourceError(f"HTTP {status} from {response.url}")
        raise SourceError(f"HTTP {status} from {response.url}")
