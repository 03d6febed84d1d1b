"""What the extractor is compared with: the script our users run today.

One page at a time, newest first by the ``before`` cursor, as the demo spec pages; a fixed
timeout per request (connect 5 s, total 30 s); ``asyncio.sleep(0.5)`` between pages to stay
polite; each page's records published as one persistent message to the same sink queue as
the extractor's pages, and its publisher confirm awaited before the next page. A 429 is
waited out for its Retry-After (it never comes at 2 requests/s). aiohttp and aio-pika as
the user would use them (``response.json()``, the stdlib decoder); no retries, no ledger.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pika
import aiohttp
import orjson

from bench.extractor_api import DemoApi
from bench.extractor_context import ExtractorBenchContext, Namespace
from bench.extractor_rates import RequestWindow, observed

SLEEP_BETWEEN_PAGES = 0.5
PAGE_SIZE = 50  # the demo spec's page size; the API returns one more when there is more
TIMEOUT = aiohttp.ClientTimeout(total=30.0, connect=5.0)


async def _page(session: aiohttp.ClientSession, url: str, before: int | None) -> list[Any]:
    params = {"before": str(before)} if before is not None else {}
    while True:
        async with session.get(url, params=params) as response:
            if response.status == 429:
                await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                continue
            response.raise_for_status()
            items: list[Any] = await response.json()
            return items


async def sequential_baseline(
    ctx: ExtractorBenchContext, ns: Namespace, api: DemoApi, pages: int
) -> RequestWindow:
    """Fetch and publish ``pages`` pages one at a time with a sleep between them."""
    await ctx.declare_sink(ns)
    url = api.url + "/search.json"
    fetched = records = 0
    before: int | None = None
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        started = time.time()
        while fetched < pages:
            if fetched:
                await asyncio.sleep(SLEEP_BETWEEN_PAGES)
            items = await _page(session, url, before)
            page = items[:PAGE_SIZE]
            message = aio_pika.Message(
                orjson.dumps(page),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=f"{ns.name}/{fetched}",
            )
            await ctx.exchange.publish(message, routing_key=ns.routing_key)  # confirmed
            fetched += 1
            records += len(page)
            if len(items) <= PAGE_SIZE:
                break
            before = int(page[-1]["uploadtime"])
        ended = time.time()
    details = {"sleep_between_pages": SLEEP_BETWEEN_PAGES, "confirm_each_page": True}
    return await observed(api, "baseline", (started, ended), fetched, records, details=details)
