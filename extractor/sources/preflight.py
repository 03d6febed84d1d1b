"""Before a job is planned (``run``) or sized (``plan``): one request to the source.

A dry run exists to check a configuration, and a job should not be planned into the ledger
against a source that cannot answer. So the first entity's path is asked once, with no
retry: a refused connection, a name that does not resolve, a TLS failure or no answer in
time is SourceUnreachable (exit 3); 401, 403 and 404 are configuration errors (exit 2).
Anything else (2xx, a 400 for want of a window's parameters, 429, 5xx) passes: retries
and the breaker deal with those while the job runs. With OAuth client credentials a token
is asked for first: a refusal (invalid_client, a wrong token URL) is a configuration error
naming the token URL and the OAuth error code; a token endpoint that does not answer is
SourceUnreachable; one that fails (5xx) leaves the rest to the job's retries.
"""

from __future__ import annotations

import ssl

import aiohttp

from common.errors import ConfigError, Unreachable
from common.settings import ExtractorSettings
from common.spec import DatasetSpec
from common.spec_details import sliced_entities
from common.spec_source import HttpSourceSpec
from extractor.sources.auth import Credentials, credentials
from extractor.sources.oauth import TokenUnavailable

CONFIG_STATUSES = {
    401: "the source refuses the request's credentials (source.headers or source.auth)",
    403: "the source forbids this request (credentials or permissions)",
    404: "no such path on the source: check source.base_url and entities.{entity}.path",
}


class SourceUnreachable(Unreachable):
    """The source did not answer at all: connection refused, DNS, TLS, no answer in time."""


def _static_params(params: dict[str, object]) -> dict[str, str]:
    """The entity's parameters that need no slice window (``{start}`` etc. are left out)."""
    return {k: str(v) for k, v in params.items() if "{" not in str(v)}


async def check_source(settings: ExtractorSettings, spec: DatasetSpec) -> None:
    """Raise SourceUnreachable or ConfigError if the source cannot serve this spec at all."""
    if not isinstance(spec.source, HttpSourceSpec):
        return
    base_url = (settings.extractor_source_url or spec.source.base_url).rstrip("/")
    name = sliced_entities(spec)[0]  # a detail entity's path needs a parent record's id
    entity = spec.entities[name]
    url = base_url + entity.path
    creds = credentials(spec.source.auth, base_url=base_url)
    timeout = aiohttp.ClientTimeout(
        total=settings.extractor_connect_timeout + settings.extractor_read_timeout,
        sock_connect=settings.extractor_connect_timeout,
        sock_read=settings.extractor_read_timeout,
    )
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            headers = await _auth_headers(session, creds)
            if headers is None:
                return  # the token endpoint failed for now: the job's retries deal with it
            async with session.get(
                url,
                params=creds.apply(_static_params(dict(entity.params))),
                headers={**spec.source.headers, **headers},
            ) as response:
                status = response.status
    except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError, ssl.SSLError) as exc:
        raise SourceUnreachable(f"{url}: TLS failed: {exc}") from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise SourceUnreachable(f"{url}: the host name does not resolve: {exc.os_error}") from None
    except aiohttp.ClientConnectorError as exc:
        raise SourceUnreachable(f"{url}: cannot connect: {exc.os_error}") from None
    except TimeoutError:
        raise SourceUnreachable(f"{url}: no answer within {timeout.total:.0f} s") from None
    except aiohttp.ClientError as exc:
        raise SourceUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None
    if status in CONFIG_STATUSES:
        reason = CONFIG_STATUSES[status].format(entity=name)
        raise ConfigError(f"{url}: HTTP {status}: {reason}")


async def _auth_headers(
    session: aiohttp.ClientSession, creds: Credentials
) -> dict[str, str] | None:
    """The request's auth headers, asking for an OAuth token first (None: the token endpoint
    failed in a way the job would retry). A refusal raises TokenRefused, a ConfigError."""
    if creds.tokens is None:
        return creds.headers
    try:
        return {"Authorization": await creds.tokens.authorization(session)}
    except TokenUnavailable as exc:
        if exc.kind in {"oauth_timeout", "oauth_connection"}:
            raise SourceUnreachable(str(exc)) from None
        return None
