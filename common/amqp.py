"""RabbitMQ connections and confirmed publishing, owned by ``async with``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection

from common.envelope import CONTENT_TYPE
from common.outcomes import Outcome
from common.resilience import retry_transient

# The broker or the channel went away: the broker redelivers what was not acked.
BROKER_ERRORS = (
    aio_pika.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
)
# What aio-pika raises as a plain RuntimeError while a robust connection reconnects.
RECONNECTING = ("not opened", "not ready", "No active transport", "reconnecting", "closed")


def classify(exc: BaseException) -> Outcome:
    """What a broker error decides: the broker away (refused, reset, closed, reconnecting)
    is waited for; a refused login, or anything else, is a configuration or code error."""
    if isinstance(exc, aio_pika.exceptions.ProbableAuthenticationError):
        return Outcome.STOP
    if isinstance(exc, (*BROKER_ERRORS, OSError)):
        return Outcome.RETRY
    if isinstance(exc, RuntimeError) and any(text in str(exc) for text in RECONNECTING):
        return Outcome.RETRY
    return Outcome.STOP


def retryable(exc: BaseException) -> bool:
    """For ``retry_transient``: the broker is away; try again once it is back."""
    return classify(exc) is Outcome.RETRY


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
        retryable,
        what=f"connect to RabbitMQ ({name})",
    )
    try:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        yield connection, channel
    finally:
        await connection.close()


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
