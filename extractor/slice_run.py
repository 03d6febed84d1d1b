"""Running one claimed slice: fetch pages in order, publish them, checkpoint after confirms.

Pages come from the slice's page source (an HTTP API, or a dump file read in a thread:
``extractor.page_sources``). They are fetched one after another (each page's cursor comes
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
from common.topology import Route
from extractor import metrics
from extractor.fetch import RetryableSourceError, SourceError
from extractor.leases import ClaimedSlice, Progress, SliceLeases
from extractor.page_sources import PageSource, Source
from extractor.paginators import Page
from extractor.queue_depth import NoConsumerError, QueueDepthGate

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
    """A fetched page on its way: its publish (None for an empty page) and its checkpoint."""

    publish: asyncio.Future[None] | None
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
            if gate is not None and not await gate.wait(self.claimed.entity, self.stopping):
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
            entity = self.job.spec.entities[self.claimed.entity]
            batch = PageBatch(
                self.job.job_id,
                self.job.spec.name,
                self.claimed.entity,
                self.claimed.slice_id,
                self._fetch_page,
                page.records,
                keys=record_keys(page.records, entity.key, entity.key_type),
            )
            self._fetch_page += 1
            route = self.job.routes[self.claimed.entity]
            publish = asyncio.ensure_future(
                publish_confirmed(
                    self.job.exchange,
                    route.routing_key,
                    encode(batch),
                    message_id=batch.message_id,
                    headers=route.headers or None,
                )
            )
            metrics.CONFIRMS_PENDING.inc()
            publish.add_done_callback(lambda _: metrics.CONFIRMS_PENDING.dec())
        last = page.next_position is None
        return _InFlight(publish, len(page.records), page.next_position, last, page.file_stats)

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
            except Exception as exc:  # the checkpointer must outlive a bug, or fetching stalls
                log.exception("checkpoint failed job=%s slice=%s", *self._ids())
                self._broken = True
                self._halt(SliceOutcome("failed", ("internal", f"{type(exc).__name__}: {exc}")))
            finally:
                self.in_flight.release()

    async def _confirm_and_checkpoint(self, item: _InFlight) -> None:
        if item.publish is not None:
            await item.publish
            self.next_page += 1
            self.pages += 1
            self.records += item.records
            labels = (self.job.spec.name, self.claimed.entity)
            metrics.PAGES.labels(*labels).inc()
            metrics.RECORDS.labels(*labels).inc(item.records)
        progress = Progress(
            cursor={"position": item.next_position},
            next_page=self.next_page,
            pages=self.pages,
            records=self.records,
            errors=dict(self.errors),
            done=item.last,
            file_stats=item.file_stats,
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


def _discard(item: _InFlight) -> None:
    """Forget a page that will not be checkpointed (its outcome no longer matters)."""
    if item.publish is None:
        return
    if not item.publish.done():
        item.publish.cancel()
    elif not item.publish.cancelled():
        item.publish.exception()  # retrieved, so asyncio does not warn about it


def _release_all(queue: asyncio.Queue[_InFlight | None], in_flight: PageSlots) -> None:
    """On cancellation: drop what was fetched but not checkpointed, and free its slots."""
    while not queue.empty():
        item = queue.get_nowait()
        if item is not None:
            _discard(item)
            in_flight.release()
