"""Prometheus metrics and the /metrics + /health endpoint every service serves."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from common.settings import ObservabilitySettings

_LABELS = ("service", "dataset", "entity")

RECORDS_CONSUMED = Counter(
    "backfill_records_consumed_total", "Records received from the broker.", _LABELS
)
RECORDS_WRITTEN = Counter(
    "backfill_records_written_total", "Records committed to the store (new or changed).", _LABELS
)
RECORDS_UNCHANGED = Counter(
    "backfill_records_unchanged_total", "Records skipped because their hash was unchanged.", _LABELS
)
RECORDS_DEAD_LETTERED = Counter(
    "backfill_records_dead_lettered_total",
    "Records sent to the dead-letter queue.",
    (*_LABELS, "reason"),
)
MESSAGES_DEAD_LETTERED = Counter(
    "backfill_messages_dead_lettered_total",
    "Whole messages sent to the dead-letter queue.",
    ("service", "reason"),
)
BATCHES = Counter("backfill_batches_total", "Batches flushed to the store.", _LABELS)
BATCH_SIZE = Histogram(
    "backfill_batch_size_records",
    "Records per flushed batch.",
    _LABELS,
    buckets=(10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000),
)
FLUSH_SECONDS = Histogram(
    "backfill_flush_duration_seconds",
    "Time to write and commit one batch.",
    _LABELS,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PENDING_RECORDS = Gauge(
    "backfill_pending_records", "Records received and not yet committed.", ("service",)
)
MESSAGES_IN_FLIGHT = Gauge(
    "backfill_messages_in_flight",
    "Messages delivered and not yet acked (their records are being batched or written).",
    ("service",),
)
GRAPH_NODES = Counter(
    "backfill_graph_nodes_total",
    "Nodes by outcome: created, updated (hash changed), skipped (unchanged).",
    (*_LABELS, "outcome"),
)
GRAPH_RELATIONSHIPS = Counter(
    "backfill_graph_relationships_total",
    "Relationships by outcome: created, deleted (stale edges of changed records).",
    (*_LABELS, "outcome"),
)
POOL_CONNECTIONS = Gauge(
    "backfill_pool_connections",
    "Store connections by state (max: the pool's size limit, open, in_use, waiting).",
    ("service", "state"),
)
STORE_ERRORS = Counter(
    "backfill_store_errors_total",
    "Store errors by kind (the exception's class); transient ones are retried.",
    (*_LABELS, "kind"),
)
STORE_REJECTIONS = Counter(
    "backfill_store_rejections_total",
    "Batches the store refused with a non-transient error (split to find the bad records).",
    _LABELS,
)


FINAL_SCRAPE_MAX_SECONDS = 15.0


class _Scrapes:
    """When Prometheus scrapes: a process that ends waits for one last scrape, so the final
    figures of a short job (or of a consumer's last batches) reach Prometheus."""

    def __init__(self) -> None:
        self.last_two: list[float] = []
        self.scraped = asyncio.Event()

    def seen(self) -> None:
        self.last_two = [*self.last_two[-1:], time.monotonic()]
        self.scraped.set()

    async def one_more(self) -> None:
        """Wait for the next scrape, up to 1.5 scrape intervals (nothing if never scraped)."""
        if len(self.last_two) < 2:
            return
        interval = self.last_two[1] - self.last_two[0]
        self.scraped.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(FINAL_SCRAPE_MAX_SECONDS, 1.5 * interval + 0.5)):
                await self.scraped.wait()


@asynccontextmanager
async def serve_metrics(
    settings: ObservabilitySettings, healthy: Callable[[], bool]
) -> AsyncIterator[int | None]:
    """Serve /metrics and /health while the block runs; yields the bound port (None if off).

    On the way out it waits for Prometheus's next scrape (see ``_Scrapes``)."""
    if settings.metrics_port is None:
        yield None
        return
    scrapes = _Scrapes()
    app = web.Application()
    app.router.add_get("/metrics", lambda _request: _metrics(scrapes))
    app.router.add_get("/health", lambda _request: _health(healthy))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.metrics_host, settings.metrics_port)
    await site.start()
    try:
        sockets = getattr(site._server, "sockets", None) or []
        yield sockets[0].getsockname()[1] if sockets else settings.metrics_port
    finally:
        try:
            await scrapes.one_more()
        finally:
            await runner.cleanup()


async def _metrics(scrapes: _Scrapes) -> web.Response:
    scrapes.seen()
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _health(healthy: Callable[[], bool]) -> web.Response:
    ok = healthy()
    return web.json_response({"status": "ok" if ok else "unhealthy"}, status=200 if ok else 503)
