"""Acking a channel's deliveries in runs: one ``basic.ack(multiple)`` for many messages.

A consumer finishes its messages out of order (a page may wait for the next flush while a
later one is already committed), and an ack per message costs a frame, a write and a drain:
a tenth of the consumer's time when nothing needs writing. ``AckWindow`` remembers the
deliveries of its channel in tag order; when a message is finished and every message
delivered before it is finished too, one ack with ``multiple`` settles the whole run.
Nothing is acked before it is finished, so ack-after-commit holds exactly as before.

A message given back (its handling failed because the broker went away) is requeued on its
own first, so a later multiple ack can never settle it. After a reconnect the channel is a
new one: deliveries of the old one are forgotten (the broker redelivers them).
"""

from __future__ import annotations

import asyncio
import heapq
import logging

import aio_pika.exceptions
from aio_pika.abc import AbstractIncomingMessage

from common.amqp import BROKER_ERRORS

log = logging.getLogger(__name__)


class AckWindow:
    """The deliveries of one consuming channel that are not acked yet."""

    def __init__(self) -> None:
        self._channel: object | None = None
        self._outstanding: list[int] = []  # heap of delivery tags received, not yet settled
        self._done: dict[int, AbstractIncomingMessage | None] = {}  # finished (None: requeued)
        self._sending = asyncio.Lock()  # acks leave in tag order: a multiple ack never overtakes

    def received(self, message: AbstractIncomingMessage) -> None:
        """Note a delivery; call before anything else is done with it, in delivery order."""
        channel = _channel_of(message)
        if channel is None or message.delivery_tag is None:
            return
        if channel is not self._channel:  # a new channel: the old one's deliveries come again
            self._channel = channel
            self._outstanding.clear()
            self._done.clear()
        heapq.heappush(self._outstanding, message.delivery_tag)

    @property
    def outstanding(self) -> int:
        """Deliveries not acked yet: what the broker counts against the prefetch."""
        return len(self._outstanding)

    async def finished(self, *messages: AbstractIncomingMessage) -> None:
        """The messages are done with (committed, or dead-lettered): ack the finished runs."""
        for message in messages:
            if self._tracks(message):
                assert message.delivery_tag is not None
                self._done[message.delivery_tag] = message
        await self._settle()

    async def give_back(self, message: AbstractIncomingMessage) -> None:
        """Requeue a message its handler could not finish; later acks then skip over it."""
        if not self._tracks(message):
            return
        try:
            await message.nack(requeue=True)
        except BROKER_ERRORS as exc:  # the channel is gone: the broker redelivers it anyway
            log.info("requeue failed message_id=%s error=%r", message.message_id, exc)
        assert message.delivery_tag is not None
        self._done[message.delivery_tag] = None
        await self._settle()

    def _tracks(self, message: AbstractIncomingMessage) -> bool:
        return (
            self._channel is not None
            and _channel_of(message) is self._channel
            and message.delivery_tag is not None
        )

    async def _settle(self) -> None:
        async with self._sending:
            last: AbstractIncomingMessage | None = None
            while self._outstanding and self._outstanding[0] in self._done:
                tag = heapq.heappop(self._outstanding)
                last = self._done.pop(tag) or last  # a requeued message is no ack target
            if last is None:
                return
            try:
                await last.ack(multiple=True)
            except BROKER_ERRORS as exc:
                # After a reconnect the old channel is gone and the broker redelivers the
                # run; each page is upserted again with the same result: nothing is lost.
                log.info(
                    "ack failed; the broker will redeliver up to message_id=%s error=%s",
                    last.message_id,
                    exc,
                )


def _channel_of(message: AbstractIncomingMessage) -> object | None:
    try:
        return message.channel
    except aio_pika.exceptions.ChannelInvalidStateError:
        return None
