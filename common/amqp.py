"""RabbitMQ connections and confirmed publishing, owned by ``async with``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection

from common.envelope import CONTENT_TYPE
from common.resilience import retry_transient

# The broker or the channel went away: the broker redelivers what was not acked.
BROKER_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
)

log = logging.getLogger(__name__)


@asynccontextmanager
async def robust_channel(
    url: str, *, prefetch: int | None = None, name: str = "backfill"
) -> AsyncIterator[tuple[AbstractRobustConnection, AbstractRobustChannel]]:
    """A reconnecting connection and a channel with publisher confirms.

    aio-pika reconnects a connection it once had; the first connection is retried here, so
    a service started while RabbitMQ is down (or restarting) waits for it.
    """
    connection = await retry_transient(
        lambda: aio_pika.connect_robust(url, client_properties={"connection_name": name}),
        _unreachable,
        what=f"connect to RabbitMQ ({name})",
    )
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        yield connection, channel
    finally:
        await connection.close()


def _unreachable(exc: BaseException) -> bool:
    """Connection refused or reset, or the broker still booting; not a bad URL or login."""
    if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
        return False
    return isinstance(exc, aio_pika.exceptions.AMQPConnectionError | ConnectionError | OSError)


def persistent_message(
    body: bytes, *, message_id: str, headers: dict[str, Any] | None = None
) -> aio_pika.Message:
    """A persistent JSON message with a recognisable id."""
    return aio_pika.Message(
        body,
        content_type=CONTENT_TYPE,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message_id,
        headers=headers or {},
    )


async def publish_confirmed(
    exchange: AbstractExchange,
    routing_key: str,
    body: bytes,
    *,
    message_id: str,
    headers: dict[str, Any] | None = None,
    mandatory: bool = True,
) -> None:
    """Publish and wait for the broker's confirm; unroutable is an error if ``mandatory``."""
    message = persistent_message(body, message_id=message_id, headers=headers)
    await exchange.publish(message, routing_key=routing_key, mandatory=mandatory)
