"""Source authentication: the spec names environment variables, never a secret.

A secret is read from ``NAME`` or from the file ``NAME_FILE`` names (Docker/Kubernetes
secrets), once, when a job's fetcher is built. ``redact`` takes every secret out of a text
(an error message carrying a URL) before it reaches a log line, the ledger or a report;
with OAuth client credentials, also every access token issued so far.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from common.settings import named_secret
from common.spec_source import ApiKeyAuth, AuthSpec, BasicAuth, BearerAuth, OAuth2ClientCredentials
from extractor.sources.oauth import ClientCredentials, TokenProvider

REDACTED = "***"


@dataclass(frozen=True)
class Credentials:
    """What authentication adds to every request, and the secrets to keep out of text."""

    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    tokens: TokenProvider | None = None  # OAuth: the Authorization header comes from here

    def redact(self, text: str) -> str:
        issued = self.tokens.issued if self.tokens is not None else ()
        for secret in (*self.secrets, *issued):
            text = text.replace(secret, REDACTED)
        return text

    def without_auth_params(self, url: str) -> str:
        """A URL without the query parameters auth adds (a next-page URL echoing an API key
        would put it in the ledger's checkpoint; every request adds it again)."""
        if not self.params:
            return url
        parts = urlsplit(url)
        query = [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if k not in self.params
        ]
        return urlunsplit(parts._replace(query=urlencode(query)))

    def apply(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**params, **self.params} if self.params else params


def credentials(
    auth: AuthSpec | None, environ: Mapping[str, str] | None = None, *, base_url: str = ""
) -> Credentials:
    """The credentials of a source's ``auth`` (None: none); ``base_url`` is the source's
    (an OAuth ``token_url`` may be a path on it)."""
    match auth:
        case None:
            return Credentials()
        case BearerAuth():
            token = named_secret(auth.token_env, environ)
            return Credentials({"Authorization": f"Bearer {token}"}, secrets=(token,))
        case ApiKeyAuth():
            key = named_secret(auth.key_env, environ)
            if auth.location == "query":
                return Credentials(params={auth.name: key}, secrets=(key,))
            return Credentials({auth.name: key}, secrets=(key,))
        case BasicAuth():
            user, password = (
                named_secret(auth.username_env, environ),
                named_secret(auth.password_env, environ),
            )
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            return Credentials({"Authorization": f"Basic {pair}"}, secrets=(password, pair))
        case OAuth2ClientCredentials():
            return oauth_credentials(auth, environ, base_url)
    raise AssertionError(f"no credentials for {auth!r}")


def oauth_credentials(
    auth: OAuth2ClientCredentials, env: Mapping[str, str] | None, base_url: str
) -> Credentials:
    """A token provider for the client; its secret (alone and in Basic form) is redacted."""
    url = auth.token_url
    if url.startswith("/"):
        url = base_url.rstrip("/") + url
    client = ClientCredentials(
        token_url=url,
        client_id=named_secret(auth.client_id_env, env),
        secret=named_secret(auth.client_secret_env, env),
        scope=auth.scope,
        basic=auth.auth_method == "client_secret_basic",
    )
    return Credentials(secrets=(client.secret, client.basic_pair), tokens=TokenProvider(client))
