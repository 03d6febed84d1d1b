"""What every benchmark's context holds (settings, the publishing channel, a work folder),
and the small async helpers the contexts use: retrying a cleanup, a background sampler."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from aio_pika.abc import AbstractChannel, AbstractExchange

from common.amqp import robust_channel
from common.settings import AmqpSettings
from common.topology import Topology

T = TypeVar("T")


@dataclass(kw_only=True)
class BrokerContext:
    """Settings and the publishing channel shared by every measurement of a run."""

    amqp: AmqpSettings
    channel: AbstractChannel
    exchange: AbstractExchange
    topology: Topology
    workdir: Path
    timeout: float
    rabbitmq_version: str = "?"

    def shared(self) -> dict[str, Any]:
        """The fields, to build a benchmark's own context from."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(BrokerContext)}


@contextlib.asynccontextmanager
async def broker_context(workdir: Path, seconds_allowed: float) -> AsyncIterator[BrokerContext]:
    """A channel with publisher confirms and the declared exchanges, closed at the end."""
    amqp = AmqpSettings()
    async with robust_channel(amqp.url, name="bench") as (connection, channel):
        transport = connection.transport
        server = transport.connection.server_properties if transport else {}
        topology = Topology(amqp.amqp_exchange)
        yield BrokerContext(
            amqp=amqp,
            channel=channel,
            exchange=await topology.declare_exchanges(channel),
            topology=topology,
            workdir=workdir,
            timeout=seconds_allowed,
            rabbitmq_version=str(server.get("version", "?")),
        )


async def retrying(
    action: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...], seconds: int
) -> T:
    """``action()``, again each second for up to ``seconds`` while it raises ``errors`` (a
    service beside the benchmark restarting); the last error is raised."""
    for _ in range(seconds - 1):
        try:
            return await action()
        except errors:
            await asyncio.sleep(1)
    return await action()


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None]) -> AsyncIterator[None]:
    """Run ``work`` in the background while the block runs; cancelled after it."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
