"""AckWindow's bookkeeping (pure logic: the messages are stand-ins that record what was sent).

Real acks against RabbitMQ are covered by every consumer test: a message acked too early
would be lost when a test kills the consumer, one never acked would stall its queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from aio_pika.abc import AbstractIncomingMessage

from common.acks import AckWindow


@dataclass
class Channel:
    sent: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Message:
    channel: Channel
    delivery_tag: int
    message_id: str = "m"

    async def ack(self, multiple: bool = False) -> None:
        assert multiple
        self.channel.sent.append(("ack", self.delivery_tag))

    async def nack(self, requeue: bool = True) -> None:
        assert requeue
        self.channel.sent.append(("requeue", self.delivery_tag))


def deliver(window: AckWindow, channel: Channel, *tags: int) -> dict[int, Any]:
    messages = {tag: cast(AbstractIncomingMessage, Message(channel, tag)) for tag in tags}
    for message in messages.values():
        window.received(message)
    return messages


async def test_a_run_is_acked_once_everything_before_it_is_finished() -> None:
    window, channel = AckWindow(), Channel()
    messages = deliver(window, channel, 1, 2, 3, 4, 5)
    await window.finished(messages[2])
    await window.finished(messages[3])
    assert channel.sent == []  # 1 is not finished: acking 3 with multiple would settle it
    await window.finished(messages[1])
    assert channel.sent == [("ack", 3)]
    await window.finished(messages[5])
    assert channel.sent == [("ack", 3)]
    await window.finished(messages[4])
    assert channel.sent == [("ack", 3), ("ack", 5)]


async def test_a_message_given_back_is_requeued_alone_and_never_acked() -> None:
    window, channel = AckWindow(), Channel()
    messages = deliver(window, channel, 1, 2, 3)
    await window.give_back(messages[1])
    await window.finished(messages[3])
    assert channel.sent == [("requeue", 1)]
    await window.finished(messages[2])
    assert channel.sent == [("requeue", 1), ("ack", 3)]
    more = deliver(window, channel, 4)
    await window.give_back(more[4])  # the last of a run: nothing left to ack
    assert channel.sent[-1] == ("requeue", 4)


async def test_deliveries_of_a_closed_channel_are_forgotten() -> None:
    window, old, new = AckWindow(), Channel(), Channel()
    before = deliver(window, old, 1, 2)
    after = deliver(window, new, 1)  # a reconnect: tags start again
    await window.finished(before[1])
    await window.finished(after[1])
    assert (old.sent, new.sent) == ([], [("ack", 1)])


async def test_messages_finished_together_are_acked_with_one_frame() -> None:
    window, channel = AckWindow(), Channel()
    messages = deliver(window, channel, 1, 2, 3)
    await window.finished(*messages.values())
    assert channel.sent == [("ack", 3)]
