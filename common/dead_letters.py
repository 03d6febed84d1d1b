"""Dead letters: bad messages and bad records, each with the reason in its headers.

Consumers publish dead letters themselves (instead of rejecting into the DLX) so that the
reason travels with them; a whole message keeps its body, a record is wrapped with the
entity and the id of the message it came in.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aio_pika.abc import AbstractExchange

from common import metrics
from common.amqp import publish_confirmed
from common.errors import BadMessageError

log = logging.getLogger(__name__)


class DeadLetters:
    """Publishes one consumer's dead letters to the dead-letter exchange, confirmed."""

    def __init__(self, exchange: AbstractExchange, service: str, dataset: str) -> None:
        self.exchange = exchange
        self.service = service
        self.dataset = dataset

    async def message(
        self, queue_name: str, body: bytes, message_id: str, error: BadMessageError
    ) -> None:
        """A whole message that cannot be decoded or validated."""
        metrics.MESSAGES_DEAD_LETTERED.labels(self.service, error.code).inc()
        log.warning(
            "dead-lettering message queue=%s message_id=%s reason=%s",
            queue_name,
            message_id,
            error.reason,
        )
        await self._publish(queue_name, body, message_id, error)

    async def record(
        self,
        queue_name: str,
        entity: str,
        message_id: str,
        record: Any,
        error: BadMessageError,
        index: int | None,
    ) -> None:
        """One record the store can never hold; the rest of its page is written."""
        metrics.RECORDS_DEAD_LETTERED.labels(self.service, self.dataset, entity, error.code).inc()
        log.warning(
            "dead-lettering record entity=%s message_id=%s index=%s reason=%s",
            entity,
            message_id,
            index,
            error.reason,
        )
        body = orjson.dumps(
            {"entity": entity, "message_id": message_id, "record": record}, default=str
        )
        await self._publish(queue_name, body, f"{message_id}#{index}", error)

    async def _publish(
        self, queue_name: str, body: bytes, message_id: str, error: BadMessageError
    ) -> None:
        headers = {
            "x-reason": error.reason[:1000],
            "x-error-code": error.code,
            "x-original-message-id": message_id,
            "x-consumer": self.service,
        }
        await publish_confirmed(
            self.exchange, queue_name, body, message_id=message_id, headers=headers
        )
