"""Running one claimed slice: fetch pages in order, publish them, checkpoint after confirms.

Pages come from the slice's page source (an HTTP API, or a dump file read in a thread:
``extractor.sources.page_sources``). They are fetched one after another (each page's cursor comes
from the one before), but fetching does not wait for the broker: page N is published and
its confirm awaited by the checkpointer while page N+1 is fetched. The checkpointer takes pages in
order and writes each one's cursor (the position of the NEXT page) only after the broker
confirmed it, so a resume never skips a page and fetches at most the in-flight pages again.
A process-wide semaphore bounds pages fetched but not yet confirmed: when the broker slows
(flow control), fetching slows with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractExchange

from common.amqp import BROKER_ERRORS, publish_confirmed
from common.envelope import PageBatch, encode
from common.outcomes import FailSlice
from common.records import record_keys
from common.resilience import Stopped, unless_stopped
from common.spec import DatasetSpec
from common.spec_details import detail_of
from common.topology import Route
from extractor import metrics
from extractor.ledger.leases import ClaimedSlice, Progress, SliceLeases
from extractor.pacing.queue_depth import NoConsumerError, QueueDepthGate
from extractor.sources.details import DetailPage, DetailRequests
from extractor.sources.fetch import RetryableSourceError, SourceError
from extractor.sources.page_sources import HttpSource, PageSource, Source
from extractor.sources.paginators import Page

log = logging.getLogger(__name__)


class PageSlots:
    """EXTRACTOR_MAX_IN_FLIGHT: pages this process fetched that the broker has not confirmed."""

    def __init__(self, limit: int) -> None:
        self._free = asyncio.Semaphore(limit)
        self.used = 0

    async def acquire(self) -> None:
        await self._free.acquire()
        self.used += 1
        metrics.IN_FLIGHT.set(self.used)

    def release(self) -> None:
        self._free.release()
        self.used -= 1
        metrics.IN_FLIGHT.set(self.used)


@dataclass(frozen=True)
class JobContext:
    """What a worker needs to run any slice of one job."""

    job_id: str
    spec: DatasetSpec
    source: Source
    exchange: AbstractExchange
    routes: dict[str, Route]  # entity -> the queues of the stores the job publishes to
    depth_gate: QueueDepthGate | None = None  # EXTRACTOR_MAX_QUEUE_DEPTH
    stop_grace: float = 5.0  # seconds a stopping slice waits for confirms to checkpoint


@dataclass(frozen=True)
class SliceOutcome:
    """How a run ended: done, failed, cancelled (terminal); released or lost (not)."""

    status: str
    error: tuple[str, str] | None = None

    @property
    def terminal(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


@dataclass
class _InFlight:
    """A fetched page on its way: its publish (None for an empty page; with its details,
    if the entity has a detail entity) and its checkpoint."""

    publish: asyncio.Future[DetailPage | None] | None
    records: int
    next_position: Any
    last: bool
    file_stats: dict[str, Any] | None = None


class SliceRun:
    def __init__(
        self,
        job: JobContext,
        claimed: ClaimedSlice,
        leases: SliceLeases,
        in_flight: PageSlots,
        stopping: asyncio.Event,
    ) -> None:
        self.job = job
        self.claimed = claimed
        self.leases = leases
        self.in_flight = in_flight
        self.stopping = stopping
        self.source: PageSource = job.source.pages(job.spec, claimed)
        self.errors: Counter[str] = Counter(claimed.errors)
        self.pages, self.records = claimed.pages, claimed.records
        self.details = claimed.details
        self.detail_requests = _detail_requests(job, claimed.entity)
        self._published_entities = [claimed.entity]  # whose queues a page fills
        if self.detail_requests is not None:
            self._published_entities.append(self.detail_requests.name)
        self.next_page = claimed.next_page
        self._fetch_page = claimed.next_page
        self._stop: SliceOutcome | None = None
        self._broken = False  # a publish failed or the lease was lost: checkpoint no more
        self._done = False

    async def run(self) -> SliceOutcome:
        """Run until the slice is done, fails, is cancelled, or the worker stops."""
        queue: asyncio.Queue[_InFlight | None] = asyncio.Queue()
        checkpointer = asyncio.create_task(self._checkpoint_in_order(queue))
        try:
            async with self.source:
                await self._fetch_pages(queue)
            queue.put_nowait(None)
            await self._checkpoints_done(checkpointer)
            _release_all(queue, self.in_flight)  # what a stop left unconfirmed
        except BaseException:
            checkpointer.cancel()
            _release_all(queue, self.in_flight)
            raise
        return await self._conclude()

    async def _checkpoints_done(self, checkpointer: asyncio.Task[None]) -> None:
        """Wait for the pages in flight to be confirmed and checkpointed; once the worker
        stops, ``stop_grace`` at most (a broker that blocks publishers could hold confirms
        for ever): the pages left are fetched again on resume."""
        with contextlib.suppress(Stopped):
            await unless_stopped(asyncio.shield(checkpointer), self.stopping)
        if not checkpointer.done():
            await asyncio.wait((checkpointer,), timeout=self.job.stop_grace)
        if not checkpointer.done():
            log.warning("stopped before every page was confirmed job=%s slice=%s", *self._ids())
            self._broken = True
            self._halt(SliceOutcome("released"))
            checkpointer.cancel()
            await asyncio.wait((checkpointer,))
        if not checkpointer.cancelled():
            checkpointer.result()

    def _halt(self, outcome: SliceOutcome) -> None:
        if self._stop is None:
            self._stop = outcome

    def _should_stop(self) -> bool:
        if self.stopping.is_set():
            self._halt(SliceOutcome("released"))
        return self._stop is not None

    async def _fetch_pages(self, queue: asyncio.Queue[_InFlight | None]) -> None:
        cursor = self.claimed.cursor
        position = cursor["position"] if cursor else self.source.first_position()
        while not self._should_stop():
            if not await self._may_fetch():
                return
            try:
                page = await self._fetch_or_stop(position)
            except BaseException:
                self.in_flight.release()
                raise
            if page is None:
                self.in_flight.release()
                return
            queue.put_nowait(self._send(page))
            if page.next_position is None:
                return
            position = page.next_position

    async def _may_fetch(self) -> bool:
        """Wait for room: the consumer queues under their limit, a page slot free. False
        when the slice stops instead (the worker stops, or a queue has no consumer)."""
        try:
            gate = self.job.depth_gate
            for entity in self._published_entities:
                if gate is not None and not await gate.wait(entity, self.stopping):
                    raise Stopped
            await unless_stopped(self.in_flight.acquire(), self.stopping)
        except Stopped:
            self._halt(SliceOutcome("released"))
            return False
        except NoConsumerError as exc:
            self._halt(SliceOutcome("failed", (exc.kind, str(exc))))
            return False
        return True

    async def _fetch_or_stop(self, position: Any) -> Page | None:
        """The page, or None when the slice stops: its fetch failed, or the worker stops.

        A fetch has no side effects, so a stopping worker abandons it (a retry backoff or an
        open breaker can last a while) and the slice resumes from the same cursor.
        """
        fetch = asyncio.ensure_future(self.source.page(position, self.errors))
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait((fetch, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            abandoned = not fetch.done()
            if abandoned:
                fetch.cancel()
                await asyncio.wait((fetch,))
        if abandoned:
            self._halt(SliceOutcome("released"))
            return None
        try:
            return fetch.result()
        except (SourceError, RetryableSourceError) as exc:
            self._halt(SliceOutcome("failed", (exc.kind, str(exc))))
        except FailSlice as exc:  # a programming error is not a bad page: it crashes the run
            self.errors[exc.kind] += 1
            self._halt(SliceOutcome("failed", (exc.kind, str(exc))))
        return None

    def _send(self, page: Page) -> _InFlight:
        publish = None
        if page.records:
            batch = self._batch(self.claimed.entity, self._fetch_page, page.records)
            self._fetch_page += 1
            publish = asyncio.ensure_future(self._publish_page(batch))
            metrics.CONFIRMS_PENDING.inc()
            publish.add_done_callback(lambda _: metrics.CONFIRMS_PENDING.dec())
        last = page.next_position is None
        return _InFlight(publish, len(page.records), page.next_position, last, page.file_stats)

    def _batch(self, entity_name: str, page: int, records: list[Any]) -> PageBatch:
        """Page ``page`` of the slice as a batch of ``entity_name`` (a detail page takes its
        parent page's number)."""
        entity = self.job.spec.entities[entity_name]
        return PageBatch(
            self.job.job_id,
            self.job.spec.name,
            entity_name,
            self.claimed.slice_id,
            page,
            records,
            keys=record_keys(records, entity.key, entity.key_type),
        )

    async def _publish_page(self, batch: PageBatch) -> DetailPage | None:
        """Publish a page and, with a detail entity, its details; done once all confirm."""
        confirmed = asyncio.ensure_future(self._publish(batch))
        if self.detail_requests is None:
            await confirmed
            return None
        try:
            details = await self.detail_requests.fetch(batch.records, self.errors)
            if details.records:
                child = self.detail_requests.name
                await self._publish(self._batch(child, batch.page, details.records))
        except BaseException:
            _cancel_quietly(confirmed)
            await asyncio.wait((confirmed,))
            raise
        await confirmed
        return details

    async def _publish(self, batch: PageBatch) -> None:
        """Publish a batch to its entity's stores, confirmed (no route: no store takes it)."""
        route = self.job.routes.get(batch.entity)
        if route is None:
            return
        await publish_confirmed(
            self.job.exchange,
            route.routing_key,
            encode(batch),
            message_id=batch.message_id,
            headers=route.headers or None,
        )

    async def _checkpoint_in_order(self, queue: asyncio.Queue[_InFlight | None]) -> None:
        while (item := await queue.get()) is not None:
            try:
                if self._broken:
                    _discard(item)
                    continue
                await self._confirm_and_checkpoint(item)
            except BROKER_ERRORS as exc:
                log.warning("publish failed job=%s slice=%s error=%s", *self._ids(), exc)
                self._broken = True
                self._halt(SliceOutcome("released", ("publish", str(exc))))
            except (SourceError, RetryableSourceError, FailSlice) as exc:  # of a detail
                self._broken = True
                self._halt(SliceOutcome("failed", (exc.kind, str(exc))))
            except Exception as exc:  # the checkpointer must outlive a bug, or fetching stalls
                log.exception("checkpoint failed job=%s slice=%s", *self._ids())
                self._broken = True
                self._halt(SliceOutcome("failed", ("internal", f"{type(exc).__name__}: {exc}")))
            finally:
                self.in_flight.release()

    async def _confirm_and_checkpoint(self, item: _InFlight) -> None:
        if item.publish is not None:
            details = await item.publish
            self.next_page += 1
            self.pages += 1
            self.records += item.records
            labels = (self.job.spec.name, self.claimed.entity)
            metrics.PAGES.labels(*labels).inc()
            metrics.RECORDS.labels(*labels).inc(item.records)
            if details is not None:
                self._count_details(details)
        progress = Progress(
            cursor={"position": item.next_position},
            next_page=self.next_page,
            pages=self.pages,
            records=self.records,
            errors=dict(self.errors),
            done=item.last,
            file_stats=item.file_stats,
            details=self.details,
        )
        job_status = await self.leases.checkpoint(*self._ids(), progress)
        if job_status is None:
            log.warning("lease lost job=%s slice=%s", *self._ids())
            self._broken = True
            self._halt(SliceOutcome("lost"))
        elif item.last:
            self._done = True
        elif job_status == "cancelling":
            self._halt(SliceOutcome("cancelled"))

    def _count_details(self, details: DetailPage) -> None:
        assert self.detail_requests is not None
        self.details = self.details.plus(len(details.records), details.missing)
        labels = (self.job.spec.name, self.detail_requests.name)
        if details.records:
            metrics.PAGES.labels(*labels).inc()
            metrics.RECORDS.labels(*labels).inc(len(details.records))
        metrics.DETAILS_MISSING.labels(*labels).inc(details.missing)

    async def _conclude(self) -> SliceOutcome:
        if self._done:
            return SliceOutcome("done")
        outcome = self._stop or SliceOutcome("released")
        if outcome.status == "lost":
            return outcome
        status = "pending" if outcome.status == "released" else outcome.status
        held = await self.leases.finish(*self._ids(), status, dict(self.errors), outcome.error)
        return outcome if held else SliceOutcome("lost")

    def _ids(self) -> tuple[str, str]:
        return self.claimed.job_id, self.claimed.slice_id


def _detail_requests(job: JobContext, entity: str) -> DetailRequests | None:
    """The detail requests of a slice of ``entity``, if it has a detail entity."""
    child = detail_of(job.spec, entity)
    if child is None or not isinstance(job.source, HttpSource):
        return None
    return DetailRequests(job.source.fetcher, child, job.spec.entities[child])


def _discard(item: _InFlight) -> None:
    """Forget a page that will not be checkpointed (its outcome no longer matters)."""
    if item.publish is not None:
        _cancel_quietly(item.publish)


def _cancel_quietly(future: asyncio.Future[Any]) -> None:
    """Cancel a future whose outcome no longer matters; if it is over, retrieve its error,
    so asyncio does not warn about it."""
    if not future.done():
        future.cancel()
        future.add_done_callback(_retrieve)
    else:
        _retrieve(future)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _release_all(queue: asyncio.Queue[_InFlight | None], in_flight: PageSlots) -> None:
    """On cancellation: drop what was fetched but not checkpointed, and free its slots."""
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            _discard(item)
            in_flight.release()
