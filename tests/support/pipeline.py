"""Running the real services in-process for a test: consumers as tasks, the demo API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from common.settings import (
    DatasetSettings,
    ExtractorSettings,
    GraphinatorSettings,
    PostgresSettings,
    TableinatorSettings,
    consumer_settings,
)
from graphinator import service as graphinator_service
from tableinator import service as tableinator_service


def tableinator_settings(spec: Path, schema: str) -> TableinatorSettings:
    batch = consumer_settings("POSTGRES").model_copy(update={"batch_flush_interval": 0.2})
    return TableinatorSettings(
        postgres=PostgresSettings(postgres_schema=schema),
        dataset=DatasetSettings(dataset_spec=str(spec)),
        batch=batch,
    )


def graphinator_settings(spec: Path) -> GraphinatorSettings:
    batch = consumer_settings("NEO4J").model_copy(update={"batch_flush_interval": 0.2})
    return GraphinatorSettings(dataset=DatasetSettings(dataset_spec=str(spec)), batch=batch)


def extractor_settings(spec: Path, source_url: str) -> ExtractorSettings:
    return ExtractorSettings(
        dataset=DatasetSettings(dataset_spec=str(spec)), extractor_source_url=source_url
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
