"""Helpers for dump-job tests: specs over a directory of files, queues, message counting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aio_pika
import yaml

from common.settings import AmqpSettings, DatasetSettings, ExtractorSettings
from common.spec import BUNDLED_DIR
from common.topology import Topology
from tests.extractor.support import LEASE_SECONDS

CONSUMERS = ("tableinator", "graphinator")


def discogs_spec(
    path: Path,
    name: str,
    base_path: Path,
    *,
    entities: tuple[str, ...] | None = None,
    **source: Any,
) -> Path:
    """The bundled Discogs spec renamed, over ``base_path``, with only ``entities`` if given."""
    raw = yaml.safe_load((BUNDLED_DIR / "discogs.yaml").read_text())
    raw["name"] = name
    raw["source"].update(base_path=str(base_path), **source)
    if entities is not None:
        raw["entities"] = {e: raw["entities"][e] for e in entities}
    path.write_text(yaml.safe_dump(raw))
    return path


def table_only(spec: Path) -> Path:
    """The spec without graph mappings: a job only tableinator takes."""
    raw = yaml.safe_load(spec.read_text())
    for entity in raw["entities"].values():
        entity.pop("graph", None)
    spec.write_text(yaml.safe_dump(raw))
    return spec


def dump_settings(spec: Path, namespace: str, **extra: Any) -> ExtractorSettings:
    """In-process extractor settings: this test's ledger schema; both consumers by default."""
    return ExtractorSettings(
        dataset=DatasetSettings(dataset_spec=str(spec)),
        extractor_ledger_schema=namespace,
        extractor_lease_seconds=LEASE_SECONDS,
        **extra,
    )


async def delete_dump_queues(namespace: str, entities: tuple[str, ...]) -> None:
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        names = [f"extractor.work.{namespace}"] + [
            f"{consumer}.{namespace}.{entity}{suffix}"
            for consumer in CONSUMERS
            for entity in entities
            for suffix in ("", ".dlq")
        ]
        for name in names:
            channel = await connection.channel()
            await channel.queue_delete(name)


@asynccontextmanager
async def page_ids(dataset: str, entity: str) -> AsyncIterator[list[str]]:
    """Every page message id published for ``dataset.entity`` while the block runs."""
    seen: list[str] = []
    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        exchange = await Topology().declare_exchanges(channel)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, routing_key=Topology.routing_key(dataset, entity))

        async def count(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if message.message_id and "/end/" not in message.message_id:
                seen.append(message.message_id)

        await queue.consume(count, no_ack=True)
        yield seen


async def wait_until(condition: Any, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.05)
