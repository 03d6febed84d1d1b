"""Broker topology: names and declarations, the same for every service.

A durable topic exchange takes page batches; each consumer has its own durable queue per
dataset/entity, dead-lettering into a DLX with a ``.dlq`` queue beside it. A queue is bound
by two keys: ``dataset.entity`` reaches every consumer's queue of the entity, and the queue's
own name reaches that queue alone. The extractor publishes by the second, to the stores a
job chose (one key, the others in RabbitMQ's ``CC`` header), so a store left out of a job
gets nothing of it, even if its queue exists. Consumers report finalised jobs on an events
exchange.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from common.spec import DatasetSpec, EntitySpec

# Which entities each consumer takes: tableinator those with a table, graphinator those
# with a graph mapping; any other consumer name takes every entity.
CONSUMER_MAPPING = {"tableinator": "table", "graphinator": "graph"}
EVENTS_SUFFIX = ".events"


def consumes(consumer: str, entity: EntitySpec) -> bool:
    """Whether ``consumer`` gets a queue for ``entity``."""
    mapping = CONSUMER_MAPPING.get(consumer)
    return mapping is None or getattr(entity, mapping) is not None


DLX_SUFFIX = ".dlx"


@dataclass(frozen=True)
class Route:
    """Where one entity's pages go: a routing key and the ``CC`` header for the others."""

    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def to_queues(cls, queues: list[str]) -> Route:
        """To exactly these queues (each is bound by its own name); at least one."""
        first, *others = queues
        return cls(first, {"CC": others} if others else {})


@dataclass(frozen=True)
class Topology:
    """Names derived from the exchange name (one AMQP_EXCHANGE per installation)."""

    exchange: str = "backfill"

    @property
    def dead_letter_exchange(self) -> str:
        return self.exchange + DLX_SUFFIX

    @property
    def events_exchange(self) -> str:
        return self.exchange + EVENTS_SUFFIX

    @staticmethod
    def routing_key(dataset: str, entity: str) -> str:
        return f"{dataset}.{entity}"

    @staticmethod
    def queue_name(consumer: str, dataset: str, entity: str) -> str:
        return f"{consumer}.{dataset}.{entity}"

    @staticmethod
    def dead_letter_queue_name(consumer: str, dataset: str, entity: str) -> str:
        return f"{consumer}.{dataset}.{entity}.dlq"

    async def declare_exchanges(self, channel: AbstractChannel) -> AbstractExchange:
        """Declare the three exchanges; returns the page exchange."""
        await channel.declare_exchange(
            self.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True
        )
        await channel.declare_exchange(
            self.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        return await channel.declare_exchange(
            self.exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )

    async def declare_queue(
        self, channel: AbstractChannel, consumer: str, dataset: str, entity: str
    ) -> AbstractQueue:
        """Declare and bind a consumer's queue and its dead-letter queue (idempotent)."""
        await self.declare_exchanges(channel)
        name = self.queue_name(consumer, dataset, entity)
        dlq = await channel.declare_queue(
            self.dead_letter_queue_name(consumer, dataset, entity), durable=True
        )
        await dlq.bind(self.dead_letter_exchange, routing_key=name)
        queue = await channel.declare_queue(
            name,
            durable=True,
            arguments={
                "x-dead-letter-exchange": self.dead_letter_exchange,
                "x-dead-letter-routing-key": name,
            },
        )
        await queue.bind(self.exchange, routing_key=self.routing_key(dataset, entity))
        await queue.bind(self.exchange, routing_key=name)
        return queue

    async def declare_dataset(
        self, channel: AbstractChannel, consumers: list[str], spec: DatasetSpec
    ) -> list[tuple[str, str]]:
        """Declare every consumer's queues of a dataset, so nothing published is lost.

        Returns the (consumer, entity) pairs that will report the job finalised.
        """
        pairs = self.pairs(consumers, spec)
        for consumer, name in pairs:
            await self.declare_queue(channel, consumer, spec.name, name)
        return pairs

    @staticmethod
    def pairs(consumers: list[str], spec: DatasetSpec) -> list[tuple[str, str]]:
        """The (consumer, entity) pairs that have a queue."""
        return [
            (consumer, name)
            for consumer in consumers
            for name, entity in spec.entities.items()
            if consumes(consumer, entity)
        ]

    @classmethod
    def routes(cls, dataset: str, pairs: list[tuple[str, str]]) -> dict[str, Route]:
        """Per entity, the route to the queues of these (consumer, entity) pairs only."""
        queues: dict[str, list[str]] = {}
        for consumer, entity in pairs:
            queues.setdefault(entity, []).append(cls.queue_name(consumer, dataset, entity))
        return {entity: Route.to_queues(names) for entity, names in queues.items()}
