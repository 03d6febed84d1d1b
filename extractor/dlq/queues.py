"""A dataset's dead-letter queues: look without taking, replay after a fix, purge.

Nothing else consumes a ``.dlq`` queue, so every operation takes its messages with
``basic.get`` unacked, at most as many as the queue held when it started (dead letters that
arrive meanwhile are left for the next run), and closes its channel at the end: the broker
puts back every message not acked, in its original place. Listing acks nothing. Replay
publishes each selected dead letter to the queue it came from with a publisher confirm and
acks the dead letter only after that confirm, so a crash between the two replays a message
twice at worst, which the consumers' upserts make harmless. A record-level dead letter
(the record wrapped with its entity and the id of its page) is replayed as a page batch of
one record, under its page's job, slice and page number.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage

from common.amqp import persistent_message
from common.envelope import PageBatch, encode
from common.errors import ConfigError
from common.spec import DatasetSpec
from common.topology import Topology, consumes

RECORD_FIELDS = frozenset({"entity", "message_id", "record"})


@dataclass(frozen=True)
class DeadLetterQueue:
    """One consumer's dead-letter queue of one entity, and the queue it came from."""

    consumer: str
    entity: str
    name: str
    source: str


@dataclass(frozen=True)
class DeadLetter:
    """A dead-lettered message as found in its queue."""

    queue: DeadLetterQueue
    message_id: str
    code: str
    reason: str
    at: str | None
    kind: str
    body: bytes
    headers: dict[str, Any]

    @property
    def job_id(self) -> str | None:
        """The job of the page it came in (ids are ``job/slice/page``)."""
        source = self.source_message_id
        return source.split("/", 1)[0] if "/" in source else None

    @property
    def source_message_id(self) -> str:
        """The id of the page (or message) the dead letter came from."""
        if self.kind == "record":
            wrapped = orjson.loads(self.body)
            return str(wrapped.get("message_id", "")).split("#", 1)[0]
        return self.message_id

    def record(self) -> Any:
        """A record dead letter's record."""
        if self.kind != "record":
            raise ConfigError(f"dead letter {self.message_id} is a whole message, not a record")
        return orjson.loads(self.body)["record"]


def dead_letter(queue: DeadLetterQueue, message: AbstractIncomingMessage) -> DeadLetter:
    headers = dict(message.headers or {})
    return DeadLetter(
        queue=queue,
        message_id=message.message_id or str(headers.get("x-original-message-id", "")),
        code=_text(headers.get("x-error-code", "unknown")),
        reason=_text(headers.get("x-reason", "")),
        at=_text(headers["x-dead-lettered-at"]) if "x-dead-lettered-at" in headers else None,
        kind=_text(headers.get("x-dead-letter-kind") or _kind_of(message.body)),
        body=message.body,
        headers=headers,
    )


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _kind_of(body: bytes) -> str:
    """Dead letters from before the kind header: a record is wrapped in exactly these fields."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "message"
    return "record" if isinstance(parsed, dict) and set(parsed) == RECORD_FIELDS else "message"


@dataclass(frozen=True)
class Selection:
    """Which dead letters an operation takes; every given criterion must match."""

    codes: tuple[str, ...] = ()
    entity: str | None = None
    consumer: str | None = None
    ids: tuple[str, ...] = ()
    job_id: str | None = None
    everything: bool = False

    @property
    def empty(self) -> bool:
        given = (self.codes, self.entity, self.consumer, self.ids, self.job_id)
        return not self.everything and not any(given)

    def __call__(self, letter: DeadLetter) -> bool:
        return (
            (not self.codes or letter.code in self.codes)
            and (self.entity is None or letter.queue.entity == self.entity)
            and (self.consumer is None or letter.queue.consumer == self.consumer)
            and (not self.ids or letter.message_id in self.ids)
            and (self.job_id is None or letter.job_id == self.job_id)
        )


def replay_message(letter: DeadLetter, dataset: str, replacement: bytes | None) -> bytes:
    """The body to put back on the source queue: the message, or the record as a page.

    ``replacement`` (an edited record, or an edited whole message) replaces what is replayed.
    """
    if letter.kind != "record":
        return replacement if replacement is not None else letter.body
    record = orjson.loads(replacement) if replacement is not None else letter.record()
    job_id, slice_id, page = _page_of(letter.source_message_id)
    return encode(PageBatch(job_id, dataset, letter.queue.entity, slice_id, page, [record]))


def _page_of(message_id: str) -> tuple[str, str, int]:
    """``job/slice/page`` (a slice id may hold slashes); unknown parts get stand-ins."""
    job_id, _, rest = message_id.partition("/")
    slice_id, _, page = rest.rpartition("/")
    if not (job_id and slice_id and page.isdigit()):
        return (job_id or "dlq-replay", message_id or "dlq", 0)
    return job_id, slice_id, int(page)


def group(letters: list[DeadLetter]) -> list[dict[str, Any]]:
    """Dead letters by (consumer, entity, code): count, first and last seen, an example."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for letter in letters:
        key = (letter.queue.consumer, letter.queue.entity, letter.code)
        found = groups.setdefault(
            key,
            {
                "consumer": key[0],
                "entity": key[1],
                "code": key[2],
                "count": 0,
                "first_seen": letter.at,
                "last_seen": letter.at,
                "reason": letter.reason,
                "example_id": letter.message_id,
                "reasons": set(),
            },
        )
        found["count"] += 1
        found["reasons"].add(letter.reason)
        if letter.at:
            found["first_seen"] = min(filter(None, (found["first_seen"], letter.at)))
            found["last_seen"] = max(filter(None, (found["last_seen"], letter.at)))
    return [{**g, "reasons": len(g["reasons"])} for _, g in sorted(groups.items())]


class DeadLetterQueues:
    """The dead-letter queues of one dataset, for every consumer that has them."""

    def __init__(
        self,
        connection: AbstractConnection,
        topology: Topology,
        spec: DatasetSpec,
        consumers: list[str],
    ) -> None:
        self.connection = connection
        self.topology = topology
        self.spec = spec
        self.queues = [
            DeadLetterQueue(
                consumer,
                entity,
                topology.dead_letter_queue_name(consumer, spec.name, entity),
                topology.queue_name(consumer, spec.name, entity),
            )
            for consumer in consumers
            for entity, entity_spec in spec.entities.items()
            if consumes(consumer, entity_spec)
        ]

    @asynccontextmanager
    async def _held(self) -> AsyncIterator[AbstractChannel]:
        """A channel whose unacked messages go back to their queues when it closes."""
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        try:
            yield channel
        finally:
            await channel.close()

    async def _taken(
        self, channel: AbstractChannel
    ) -> AsyncIterator[tuple[DeadLetter, AbstractIncomingMessage]]:
        """Every dead letter present now, taken unacked, queue by queue in order."""
        for queue in self.queues:
            # the source queue (and its bindings) must exist for a replay to land
            await self.topology.declare_queue(channel, queue.consumer, self.spec.name, queue.entity)
            dlq = await channel.declare_queue(queue.name, durable=True)
            for _ in range(dlq.declaration_result.message_count or 0):
                message = await dlq.get(no_ack=False, fail=False)
                if message is None:
                    break
                yield dead_letter(queue, message), message

    async def scan(self, selection: Selection | None = None) -> list[DeadLetter]:
        """The selected dead letters (all by default); each stays in its queue, in its place."""
        chosen = selection or Selection(everything=True)
        async with self._held() as channel:
            return [letter async for letter, _ in self._taken(channel) if chosen(letter)]

    async def replay(
        self,
        selection: Selection,
        replacement: bytes | None = None,
        on_replayed: Callable[[DeadLetter], None] | None = None,
    ) -> list[DeadLetter]:
        """Put the selected dead letters back on their source queues; those replayed."""
        done: list[DeadLetter] = []
        async with self._held() as channel:
            async for letter, message in self._taken(channel):
                if not selection(letter):
                    continue
                body = replay_message(letter, self.spec.name, replacement)
                headers = {"x-replayed-from": letter.queue.name, "x-replay-of": letter.message_id}
                await channel.default_exchange.publish(
                    persistent_message(body, message_id=letter.message_id, headers=headers),
                    routing_key=letter.queue.source,
                    mandatory=True,
                )  # returns after the broker's confirm: only then is the dead letter dropped
                await message.ack()
                done.append(letter)
                if on_replayed:
                    on_replayed(letter)
        return done

    async def purge(self, selection: Selection) -> int:
        """Drop the selected dead letters; how many."""
        if selection.everything:
            return await self._purge_all()
        dropped = 0
        async with self._held() as channel:
            async for letter, message in self._taken(channel):
                if selection(letter):
                    await message.ack()
                    dropped += 1
        return dropped

    async def _purge_all(self) -> int:
        dropped = 0
        async with self._held() as channel:
            for queue in self.queues:
                dlq = await channel.declare_queue(queue.name, durable=True)
                result = await dlq.purge()
                dropped += result.message_count or 0
        return dropped
