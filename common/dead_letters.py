"""Dead letters: bad messages and bad records, each with the reason in its headers.

Consumers publish dead letters themselves (instead of rejecting into the DLX) so that the
reason travels with them; a whole message keeps its body, a record is wrapped with the
entity and the id of the message it came in.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

import orjson
from aio_pika.abc import AbstractExchange

from common import amqp, metrics
from common.amqp import publish_confirmed
from common.errors import BadMessageError
from common.resilience import retry_transient

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
        await self._publish(queue_name, body, message_id, error, kind="message")

    async def record(
        self,
        queue_name: str,
        entity: str,
        message_id: str,
        record: Any,
        error: BadMessageError,
        where: int | str,
    ) -> None:
        """One record the store can never hold; the rest of its page is written. ``where``:
        its index in the page, or ``key=...``; the dead letter's id is ``message_id#where``."""
        metrics.RECORDS_DEAD_LETTERED.labels(self.service, self.dataset, entity, error.code).inc()
        log.warning(
            "dead-lettering record entity=%s message_id=%s at=%s reason=%s",
            entity,
            message_id,
            where,
            error.reason,
        )
        body = wrap_record(entity, message_id, record)
        await self._publish(queue_name, body, f"{message_id}#{where}", error, kind="record")

    async def _publish(
        self, queue_name: str, body: bytes, message_id: str, error: BadMessageError, *, kind: str
    ) -> None:
        # kind and time are for `extractor dlq`: replay a record wrapped in a page, list by age
        headers = {
            "x-dead-letter-kind": kind,
            "x-dead-lettered-at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "x-reason": error.reason[:1000],
            "x-error-code": error.code,
            "x-original-message-id": message_id,
            "x-consumer": self.service,
        }
        # A broker away while a dead letter is set aside: wait for it (the robust channel
        # reconnects); the records' messages stay unacked meanwhile.
        await retry_transient(
            lambda: publish_confirmed(
                self.exchange, queue_name, body, message_id=message_id, headers=headers
            ),
            amqp.retryable,
            what=f"{self.service} dead letter {message_id}",
        )


def wrap_record(entity: str, message_id: str, record: Any) -> bytes:
    """The body of a record's dead letter: the record with the entity and message it came in.

    orjson reads JSON nested 1024 deep but writes only 254 levels: a record nested deeper
    (dead-lettered for exactly that) is written by the standard library instead, or, past
    the interpreter's recursion limit, replaced by a note saying so.
    """
    wrapper = {"entity": entity, "message_id": message_id, "record": record}
    try:
        return orjson.dumps(wrapper, default=str)
    except orjson.JSONEncodeError:
        return _wrap_deep(wrapper)


def _wrap_deep(wrapper: dict[str, Any]) -> bytes:
    try:
        return json.dumps(wrapper, default=str, ensure_ascii=False).encode()
    except RecursionError:
        wrapper["record"] = "(nested too deep to serialise; see the original message)"
        return orjson.dumps(wrapper)
