"""A small client of Toxiproxy's HTTP API (127.0.0.1:8474), and the proxies the suite uses.

One proxy per server (RabbitMQ, PostgreSQL, Neo4j); the processes of a network scenario are
pointed at the proxies' ports instead of the servers'. Toxics are added and removed while a
job runs. API: https://github.com/Shopify/toxiproxy#http-api
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

import aiohttp

API = "http://127.0.0.1:8474"


@dataclass(frozen=True)
class Upstream:
    """A server a proxy stands in front of."""

    name: str  # rabbitmq, postgres, neo4j
    port: int


UPSTREAMS = (Upstream("rabbitmq", 5672), Upstream("postgres", 5432), Upstream("neo4j", 7687))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ToxiproxyError(RuntimeError):
    """The Toxiproxy server refused a request (or is not running: scripts/toxiproxy.sh)."""


class Toxiproxy:
    """Proxies named ``<prefix>-<upstream>``; ``async with`` deletes them at the end."""

    def __init__(self, prefix: str, api: str = API) -> None:
        self.prefix = prefix
        self.api = api
        self.ports: dict[str, int] = {}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Toxiproxy:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        for upstream in UPSTREAMS:
            port = free_port()
            await self._call(
                "POST",
                "/proxies",
                {
                    "name": self.proxy(upstream.name),
                    "listen": f"127.0.0.1:{port}",
                    "upstream": f"127.0.0.1:{upstream.port}",
                    "enabled": True,
                },
            )
            self.ports[upstream.name] = port
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            for name in self.ports:
                await self._call("DELETE", f"/proxies/{self.proxy(name)}")
        finally:
            assert self._session is not None
            await self._session.close()

    def proxy(self, upstream: str) -> str:
        return f"{self.prefix}-{upstream}"

    async def add_toxic(
        self, upstream: str, name: str, kind: str, attributes: dict[str, Any], stream: str
    ) -> None:
        """A toxic on one direction (``upstream``: client to server, ``downstream``: back)."""
        body = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0}
        body["attributes"] = attributes
        await self._call("POST", f"/proxies/{self.proxy(upstream)}/toxics", body)

    async def remove_toxic(self, upstream: str, name: str) -> None:
        await self._call("DELETE", f"/proxies/{self.proxy(upstream)}/toxics/{name}")

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        assert self._session is not None
        try:
            async with self._session.request(method, self.api + path, json=body) as response:
                if response.status >= 300:
                    text = await response.text()
                    raise ToxiproxyError(f"{method} {path}: {response.status} {text}")
        except aiohttp.ClientConnectionError as exc:
            raise ToxiproxyError(
                f"{self.api} does not answer ({exc}); scripts/toxiproxy.sh start"
            ) from exc
