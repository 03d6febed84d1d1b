"""Driving a job: slices fetched concurrently, pages published with confirms."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractExchange

from common.amqp import publish_confirmed
from common.envelope import EndOfJob, PageBatch, encode
from common.errors import BackfillError
from common.records import get_path
from common.spec import DatasetSpec
from common.topology import Topology
from extractor.fetch import JsonFetcher
from extractor.paginators import paginator_for
from extractor.planner import Slice

log = logging.getLogger(__name__)


@dataclass
class EntityStats:
    pages: int = 0
    records: int = 0
    slices_done: int = 0
    slices_failed: int = 0


@dataclass
class JobStats:
    """What a job did, for the progress display and the report."""

    job_id: str
    dataset: str
    slices: int
    started: float = field(default_factory=time.monotonic)
    fetched_at: float | None = None
    entities: dict[str, EntityStats] = field(default_factory=lambda: defaultdict(EntityStats))
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def records(self) -> int:
        return sum(e.records for e in self.entities.values())

    @property
    def pages(self) -> int:
        return sum(e.pages for e in self.entities.values())


class JobRunner:
    """Fetches every slice of a job and publishes its pages; one instance per job."""

    def __init__(
        self,
        *,
        spec: DatasetSpec,
        job_id: str,
        fetcher: JsonFetcher,
        exchange: AbstractExchange,
        concurrency: int,
        on_progress: Callable[[JobStats], None] = lambda _stats: None,
    ) -> None:
        self.spec = spec
        self.fetcher = fetcher
        self.exchange = exchange
        self.concurrency = concurrency
        self.on_progress = on_progress
        self.job_id = job_id
        self.stats: JobStats | None = None

    async def run(self, slices: list[Slice]) -> JobStats:
        """Fetch and publish all slices, then an end-of-job message per entity."""
        self.stats = stats = JobStats(self.job_id, self.spec.name, len(slices))
        queue: asyncio.Queue[Slice] = asyncio.Queue()
        for item in slices:
            queue.put_nowait(item)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]
        await asyncio.gather(*workers)
        stats.fetched_at = time.monotonic()
        for entity in sorted({s.entity for s in slices}):
            await self._publish_end(entity, stats.entities[entity])
        return stats

    async def _worker(self, queue: asyncio.Queue[Slice]) -> None:
        assert self.stats is not None
        while not queue.empty():
            item = queue.get_nowait()
            entity_stats = self.stats.entities[item.entity]
            try:
                await self._run_slice(item, entity_stats)
                entity_stats.slices_done += 1
            except (BackfillError, ValueError) as exc:
                entity_stats.slices_failed += 1
                self.stats.errors[item.slice_id] = f"{type(exc).__name__}: {exc}"
                log.error("slice failed job=%s slice=%s error=%s", self.job_id, item.slice_id, exc)
            self.on_progress(self.stats)

    async def _run_slice(self, item: Slice, stats: EntityStats) -> None:
        entity = self.spec.entities[item.entity]
        assert entity.paginator is not None
        paginator = paginator_for(entity.paginator)
        position = paginator.first_position(item.window)
        page_number = 0
        while True:
            body = await self.fetcher.get(
                entity.path, {**entity.params, **paginator.params(position)}
            )
            items = get_path(body, entity.records_path) if entity.records_path else body
            if not isinstance(items, list):
                raise ValueError(f"page at {position!r} holds no list of records")
            page = paginator.parse(items, position, item.window)
            if page.records:
                await self._publish_page(item, page_number, page.records)
                page_number += 1
                stats.pages += 1
                stats.records += len(page.records)
                assert self.stats is not None
                self.on_progress(self.stats)
            if page.next_position is None:
                return
            position = page.next_position

    async def _publish_page(self, item: Slice, number: int, records: list[Any]) -> None:
        batch = PageBatch(self.job_id, self.spec.name, item.entity, item.slice_id, number, records)
        await publish_confirmed(
            self.exchange,
            Topology.routing_key(self.spec.name, item.entity),
            encode(batch),
            message_id=batch.message_id,
        )

    async def _publish_end(self, entity: str, stats: EntityStats) -> None:
        end = EndOfJob(self.job_id, self.spec.name, entity, stats.pages, stats.records)
        await publish_confirmed(
            self.exchange,
            Topology.routing_key(self.spec.name, entity),
            encode(end),
            message_id=end.message_id,
        )
