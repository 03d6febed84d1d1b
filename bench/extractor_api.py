"""The demo API in its own process, with a timeline of every data request it answered.

``python -m bench.extractor_api --size N --latency-ms 50 --rate-limit R`` serves the bundled
demo API (``demoapi.build_app``, unchanged: token bucket, 429 + Retry-After, RateLimit-*
headers) plus ``/bench/timeline.json``: for each request to a data path, the wall-clock time
it arrived and the status it got. The benchmark runs it as a separate process, as a real API
would be, so its work does not share the extractor's event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from demoapi import Dataset, Faults, build_app
from demoapi.app import DATA_PATHS, Handler

DEFAULT_DAYS = 30  # the demo API's, and the span of the demo spec's slicing
TIMELINE = web.AppKey("timeline", list[tuple[float, int]])
READY_SECONDS = 60.0


@web.middleware
async def record_arrivals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: when each data request arrived (before the rate limit sees it), its status."""
    if request.path not in DATA_PATHS:
        return await handler(request)
    arrived = time.time()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[TIMELINE].append((arrived, status))


async def timeline(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(request.app[TIMELINE]), content_type="application/json")


def build_timed_app(dataset: Dataset, faults: Faults) -> web.Application:
    app = build_app(dataset, faults)
    app.middlewares.insert(0, record_arrivals)  # before the demo API's own middlewares
    app[TIMELINE] = []
    app.router.add_get("/bench/timeline.json", timeline)
    return app


async def _serve(dataset: Dataset, faults: Faults) -> None:
    app = build_timed_app(dataset, faults)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(f"listening http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.extractor_api", description=__doc__)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-limit", type=float, default=0.0)
    args = parser.parse_args(argv)
    faults = Faults(latency_ms=args.latency_ms, rate_limit=args.rate_limit)
    asyncio.run(_serve(Dataset(args.size, days=args.days), faults))


@dataclass(frozen=True)
class DemoApi:
    """A running demo API process: its URL and its rate limit."""

    url: str
    rate_limit: float
    latency_ms: float
    size: int

    async def stats(self) -> dict[str, int]:
        """Responses so far by status (the demo API's ``/stats.json``)."""
        body = await self._get("/stats.json")
        return {status: int(count) for status, count in body["requests"].items()}

    async def timeline(self) -> list[tuple[float, int]]:
        """(arrival wall time, status) of every data request so far."""
        return [(float(t), int(s)) for t, s in await self._get("/bench/timeline.json")]

    async def _get(self, path: str) -> Any:
        async with aiohttp.ClientSession() as session, session.get(self.url + path) as response:
            response.raise_for_status()
            return await response.json()


@contextlib.asynccontextmanager
async def demo_api(
    size: int, *, latency_ms: float, rate_limit: float, days: int = DEFAULT_DAYS
) -> AsyncIterator[DemoApi]:
    """A fresh demo API process (a full token bucket, zero counts); stopped on exit.

    Its ``size`` replays are spread over the ``days`` before 2026-01-01, the demo spec's end.
    """
    command = [
        sys.executable,
        "-m",
        "bench.extractor_api",
        f"--size={size}",
        f"--days={days}",
        f"--latency-ms={latency_ms}",
        f"--rate-limit={rate_limit}",
    ]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), READY_SECONDS)
        if not line.startswith(b"listening "):
            raise RuntimeError(f"the demo API did not start: {line!r}")
        yield DemoApi(line.split()[1].decode(), rate_limit, latency_ms, size)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


if __name__ == "__main__":
    main()
