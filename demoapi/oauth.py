"""The demo API's OAuth 2.0 token endpoint (client credentials grant) and its tokens.

``POST /oauth/token`` takes the client's id and secret by HTTP Basic
(``client_secret_basic``) or in the form (``client_secret_post``) and issues a random
bearer token valid for ``token_ttl`` seconds. Data requests then need a live issued token:
an expired or revoked one is answered 401, as a real API does. ``token_revoke_after`` revokes
every token issued so far once, after that many authorised data requests (a token revoked
before its expiry, which the client must notice by the 401).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from urllib.parse import unquote

from aiohttp import web

from demoapi.faults import Clock, Faults
from demoapi.http import json_response

TOKEN_ENDPOINT = "/oauth/token"  # noqa: S105 - a URL path, not a password


class TokenIssuer:
    """The tokens issued to the one client the demo API knows, and their expiry."""

    def __init__(self, faults: Faults, clock: Clock = time.monotonic) -> None:
        self.client_id = faults.oauth_client_id
        self.client_secret = faults.oauth_client_secret
        self.ttl = faults.token_ttl
        self.revoke_after = faults.token_revoke_after
        self.requests = 0  # token requests, refused ones included
        self.uses = 0  # authorised data requests
        self._expiry: dict[str, float] = {}
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.client_secret)

    def issue(self) -> dict[str, object]:
        token = secrets.token_urlsafe(24)
        self._expiry[token] = self._clock() + self.ttl
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl}

    def accepts(self, authorization: str) -> bool:
        """Whether ``Bearer <token>`` names a live token; counts the use, and revokes every
        token once when the uses reach ``revoke_after``."""
        scheme, _, token = authorization.partition(" ")
        expiry = self._expiry.get(token) if scheme.lower() == "bearer" else None
        if expiry is None or self._clock() >= expiry:
            return False
        self.uses += 1
        if self.uses == self.revoke_after:
            self._expiry.clear()
        return True

    def client(self, authorization: str, form: dict[str, str]) -> tuple[str, str]:
        """The client id and secret a token request offers, by Basic auth or in the form."""
        if authorization.startswith("Basic "):
            try:
                pair = base64.b64decode(authorization[6:], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return "", ""
            client_id, _, secret = pair.partition(":")
            return unquote(client_id), unquote(secret)
        return form.get("client_id", ""), form.get("client_secret", "")


TOKENS = web.AppKey("tokens", TokenIssuer)


async def token_endpoint(request: web.Request) -> web.Response:
    """RFC 6749 4.4: a token for valid client credentials; 401 invalid_client otherwise."""
    issuer = request.app[TOKENS]
    issuer.requests += 1
    form = {key: str(value) for key, value in (await request.post()).items()}
    if not issuer.enabled:
        return json_response({"error": "invalid_request"}, status=400)
    if form.get("grant_type") != "client_credentials":
        return json_response({"error": "unsupported_grant_type"}, status=400)
    client_id, secret = issuer.client(request.headers.get("Authorization", ""), form)
    known = secrets.compare_digest(client_id, issuer.client_id) and secrets.compare_digest(
        secret, issuer.client_secret
    )
    if not known:
        return json_response({"error": "invalid_client"}, status=401)
    return json_response(issuer.issue())
