"""Running the real services in-process for a test: consumers as tasks, the demo API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import yaml

from common.settings import (
    AmqpSettings,
    DatasetSettings,
    ExtractorSettings,
    GraphinatorSettings,
    PostgresSettings,
    TableinatorSettings,
    consumer_settings,
)
from common.topology import Topology
from graphinator import service as graphinator_service
from tableinator import service as tableinator_service


def tableinator_settings(
    spec: Path, schema: str, *, bulk_load: bool = False, **batch: Any
) -> TableinatorSettings:
    batch = consumer_settings("POSTGRES").model_copy(update={"batch_flush_interval": 0.2, **batch})
    return TableinatorSettings(
        postgres=PostgresSettings(postgres_schema=schema, postgres_bulk_load=bulk_load),
        dataset=DatasetSettings(dataset_spec=str(spec)),
        batch=batch,
    )


def graphinator_settings(spec: Path) -> GraphinatorSettings:
    batch = consumer_settings("NEO4J").model_copy(update={"batch_flush_interval": 0.2})
    return GraphinatorSettings(dataset=DatasetSettings(dataset_spec=str(spec)), batch=batch)


def extractor_settings(spec: Path, source_url: str) -> ExtractorSettings:
    """The extractor with its ledger in the test's own schema (the spec's dataset name)."""
    dataset = yaml.safe_load(spec.read_text())["name"]
    return ExtractorSettings(
        dataset=DatasetSettings(dataset_spec=str(spec)),
        extractor_source_url=source_url,
        extractor_ledger_schema=dataset,
    )


@asynccontextmanager
async def running_consumers(spec: Path, schema: str) -> AsyncIterator[None]:
    """tableinator and graphinator consuming until the block ends, then drained."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(tableinator_service.run(tableinator_settings(spec, schema), stop)),
        asyncio.create_task(graphinator_service.run(graphinator_settings(spec), stop)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@asynccontextmanager
async def finalised_events(dataset: str) -> AsyncIterator[Callable[[], Awaitable[dict[str, Any]]]]:
    """Listen for consumers' finalised events of ``dataset``; bound before anything runs."""
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        await Topology().declare_exchanges(channel)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(Topology().events_exchange, routing_key="#")

        async def next_event(seconds: float = 30.0) -> dict[str, Any]:
            async with asyncio.timeout(seconds):
                while True:
                    message = await queue.get(no_ack=True, fail=False)
                    if message is None:
                        await asyncio.sleep(0.05)
                        continue
                    event: dict[str, Any] = orjson.loads(message.body)
                    if event["dataset"] == dataset:
                        return event

        yield next_event
