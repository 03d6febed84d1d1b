"""A consumer bug never dead-letters good data: a sink whose write raises a programming
error stops the consumer, nothing dead-lettered, every message back in its queue."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aio_pika.exceptions
import psycopg
import pytest
from aio_pika.abc import AbstractChannel
from psycopg_pool import PoolClosed

from common import amqp
from common.consumer import consume
from common.envelope import EndOfJob
from common.outcomes import Outcome, StopConsumer
from common.postgres import classify
from common.records import PreparedRecord
from common.settings import AmqpSettings, ObservabilitySettings, consumer_settings
from common.sink import WriteResult
from common.spec import load_spec
from common.topology import Topology
from tests.support.broker import declare, depth, publish_pages

PAGES = 6


class BuggySink:
    """A sink with a bug in its write path (what a bad deploy of a consumer looks like)."""

    reads_docs = False

    def __init__(self) -> None:
        self.writes = 0

    async def begin_job(self, entity: str, job_id: str) -> None:
        return None

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        self.writes += 1
        raise TypeError("unsupported operand type(s) for +: 'int' and 'NoneType'")

    async def finalise(self, entity: str, end: EndOfJob) -> dict[str, Any]:
        return {}

    def classify(self, exc: BaseException) -> Outcome:
        return classify(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return classify(exc) is Outcome.RETRY


def test_the_broker_classifier_waits_for_the_broker_and_stops_on_a_refused_login() -> None:
    away = [
        ConnectionRefusedError(),
        ConnectionResetError(),
        aio_pika.exceptions.AMQPConnectionError("reset"),
        aio_pika.exceptions.ChannelInvalidStateError("closed"),
        RuntimeError("Connection was not opened"),  # aio-pika while it reconnects
    ]
    assert {amqp.classify(exc) for exc in away} == {Outcome.RETRY}
    assert amqp.classify(aio_pika.exceptions.ProbableAuthenticationError()) is Outcome.STOP
    assert amqp.classify(RuntimeError("dictionary changed size")) is Outcome.STOP  # a bug
    assert amqp.classify(TypeError("bad operand")) is Outcome.STOP


def test_the_classifier_tells_record_errors_from_bugs_and_outages() -> None:
    assert classify(psycopg.errors.InvalidTextRepresentation()) is Outcome.DEAD_LETTER
    assert classify(psycopg.errors.NotNullViolation()) is Outcome.DEAD_LETTER
    assert classify(psycopg.errors.ProgramLimitExceeded()) is Outcome.DEAD_LETTER
    assert classify(psycopg.OperationalError()) is Outcome.RETRY
    assert classify(psycopg.errors.DeadlockDetected()) is Outcome.RETRY
    assert classify(psycopg.errors.UndefinedTable()) is Outcome.STOP
    assert classify(TypeError("bug")) is Outcome.STOP
    assert classify(PoolClosed()) is Outcome.STOP  # shutting down, not an outage


async def test_a_sink_bug_stops_the_consumer_and_dead_letters_nothing(
    demo_spec_file: Path, namespace: str, amqp: AbstractChannel
) -> None:
    await declare(amqp, "tableinator", namespace)
    pages = [[{"id": f"p{p}-{i}", "format": "gen9ou"} for i in range(10)] for p in range(PAGES)]
    await publish_pages(amqp, namespace, pages, end=False)
    sink = BuggySink()
    batch = consumer_settings("POSTGRES").model_copy(update={"batch_flush_interval": 0.1})
    async with AsyncExitStack() as stack:
        with pytest.raises(StopConsumer, match="TypeError: unsupported operand"):
            await asyncio.wait_for(
                consume(
                    service="tableinator",
                    spec=load_spec(demo_spec_file),
                    sink=sink,
                    amqp=AmqpSettings(),
                    batch=batch,
                    observability=ObservabilitySettings(),
                    stop=asyncio.Event(),
                    stack=stack,
                ),
                30,
            )
    assert sink.writes == 1  # no split: one attempt, then the stop
    dlq = Topology.dead_letter_queue_name("tableinator", namespace, "replays")
    assert await depth(amqp, dlq) == 0
    queue = Topology.queue_name("tableinator", namespace, "replays")
    async with asyncio.timeout(10):  # the consumer's channel closed: all are ready again
        while await depth(amqp, queue) < PAGES:
            await asyncio.sleep(0.1)
    assert await depth(amqp, queue) == PAGES
