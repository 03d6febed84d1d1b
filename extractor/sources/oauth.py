"""OAuth 2.0 client credentials: one bearer token per job and process, fetched when needed.

The token is cached and fetched again shortly before ``expires_in`` runs out, or when the
API refuses it (401) before then: a revoked token. A lock makes concurrent requests that
find no fresh token wait for one token request instead of each sending their own. The
client secret goes to the token URL only, on the job's own HTTP session, never redirected.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from common.errors import ConfigError
from extractor.sources.source_errors import RetryableSourceError, SourceError

EARLY_SECONDS = 30.0  # refresh this long before expiry ...
EARLY_SHARE = 0.1  # ... or this share of the lifetime earlier, whichever is less
DEFAULT_LIFETIME = 3600.0  # a token endpoint that does not say expires_in
ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # RFC 6749 5.2: a short ASCII code
REFUSED = frozenset({400, 401, 403, 404, 405})


class TokenRefused(SourceError, ConfigError):
    """The token endpoint refuses the client (invalid_client, a wrong URL): a person must
    fix the configuration; retrying will not (a job's slice fails, a preflight exits 2)."""

    def __init__(self, token_url: str, status: int, code: str) -> None:
        super().__init__(
            f"{token_url}: token request refused: HTTP {status} {code}", f"oauth_{code}"
        )


class TokenUnavailable(RetryableSourceError):
    """The token endpoint failed in a way a retry may fix (5xx, 429, timeout, no JSON):
    retried with the fetcher's backoff, like a page."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message, kind, source_down=True)


@dataclass(frozen=True)
class ClientCredentials:
    """Where to ask for a token and with what; ``secret`` never leaves for another URL."""

    token_url: str
    client_id: str
    secret: str
    scope: str | None = None
    basic: bool = True  # client_secret_basic; else client_secret_post

    @property
    def basic_pair(self) -> str:
        """The Basic credentials (RFC 6749 2.3.1: each part form-encoded first)."""
        pair = f"{quote(self.client_id, safe='')}:{quote(self.secret, safe='')}"
        return base64.b64encode(pair.encode()).decode()

    def request(self) -> tuple[dict[str, str], dict[str, str]]:
        """The form and the headers of a token request."""
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        headers = {"Accept": "application/json"}
        if self.basic:
            headers["Authorization"] = f"Basic {self.basic_pair}"
        else:
            form.update(client_id=self.client_id, client_secret=self.secret)
        return form, headers


@dataclass(frozen=True)
class Token:
    value: str
    refresh_at: float  # monotonic seconds

    def fresh(self) -> bool:
        return time.monotonic() < self.refresh_at


def refresh_time(expires_in: float, now: float) -> float:
    """When to fetch the next token: 30 s or a tenth of its lifetime before it expires."""
    return now + expires_in - min(EARLY_SECONDS, EARLY_SHARE * expires_in)


class TokenProvider:
    """The current access token of one client, fetched at most once at a time."""

    def __init__(self, client: ClientCredentials) -> None:
        self.client = client
        self.requests = 0  # token requests sent, for tests and the log
        self.issued: list[str] = []  # every token seen, so redaction can take them out
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self._attempts = 0  # token requests ended (well or not)
        self._failure: TokenRefused | TokenUnavailable | None = None  # the last one's error

    async def authorization(self, session: aiohttp.ClientSession) -> str:
        """``Bearer <token>``, fetching a token first if there is no fresh one."""
        token = self._token
        if token is None or not token.fresh():
            token = await self._renew(session, stale=token)
        return f"Bearer {token.value}"

    async def refused(self, session: aiohttp.ClientSession, authorization: str) -> None:
        """The API answered 401 to ``authorization``: fetch a new token, unless a
        concurrent request already did."""
        token = self._token
        if token is not None and f"Bearer {token.value}" == authorization:
            await self._renew(session, stale=token)

    async def _renew(self, session: aiohttp.ClientSession, stale: Token | None) -> Token:
        attempts = self._attempts
        async with self._lock:
            current = self._token
            if current is not None and current is not stale and current.fresh():
                return current  # fetched while this request waited for the lock
            if self._attempts != attempts and self._failure is not None:
                # The token request this one waited for failed: so does this one (each
                # caller retries with its own backoff), rather than a request per waiter.
                raise self._failure
            self._failure = None
            try:
                self._token = await self._fetch(session)
            except (TokenRefused, TokenUnavailable) as exc:
                self._failure = exc
                raise
            finally:
                self._attempts += 1
            return self._token

    async def _fetch(self, session: aiohttp.ClientSession) -> Token:
        form, headers = self.client.request()
        url = self.client.token_url
        self.requests += 1
        try:
            async with session.post(
                url, data=form, headers=headers, allow_redirects=False
            ) as response:
                status, body = response.status, await response.read()
        except TimeoutError as exc:
            raise TokenUnavailable(f"{url}: token request timed out", "oauth_timeout") from exc
        except aiohttp.ClientError as exc:
            message = f"{url}: token request failed: {type(exc).__name__}"
            raise TokenUnavailable(message, "oauth_connection") from exc
        return self._token_from(status, body, time.monotonic())

    def _token_from(self, status: int, body: bytes, now: float) -> Token:
        url = self.client.token_url
        payload = _json_object(body)
        if status in REFUSED or 300 <= status < 400:
            raise TokenRefused(url, status, _error_code(payload, status))
        if status != 200:
            raise TokenUnavailable(f"{url}: token request: HTTP {status}", "oauth_unavailable")
        value = payload.get("access_token") if payload is not None else None
        if not isinstance(value, str) or not value:
            raise TokenUnavailable(f"{url}: token response has no access_token", "oauth_malformed")
        self.issued.append(value)
        lifetime = payload.get("expires_in") if payload is not None else None
        seconds = float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME
        return Token(value, refresh_time(max(seconds, 0.0), now))


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _error_code(payload: dict[str, Any] | None, status: int) -> str:
    """The OAuth ``error`` code of a refusal (only a well-formed one: it reaches logs)."""
    code = payload.get("error") if payload is not None else None
    if isinstance(code, str) and ERROR_CODE.match(code):
        return code
    return f"http_{status}"
