"""The demo API's HTTP face: Showdown-style replay search over a generated dataset."""

import asyncio
import base64
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from demoapi.dataset import Dataset
from demoapi.details import DETAIL_PREFIX, DETAIL_REQUESTS, DETAIL_ROUTE, detail, detail_stats
from demoapi.faults import FaultInjector, Faults, truncate_json
from demoapi.http import (
    DATASET,
    INJECTOR,
    STATUS_COUNTS,
    bad_request,
    int_param,
    json_response,
)
from demoapi.http import (
    Handler as Handler,  # re-exported: bench wraps the app with it
)
from demoapi.oauth import TOKEN_ENDPOINT, TOKENS, TokenIssuer, token_endpoint
from demoapi.shapes import ROUTES

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# Endpoints that a real API would rate limit and fail; health and stats stay honest.
DATA_PATHS = frozenset({"/search.json", "/count.json", *ROUTES})
SHUTDOWN_TIMEOUT_S = 5.0
PAGE_PATHS = DATA_PATHS - {"/count.json"}
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    b"<body><h1>502 Bad Gateway</h1><p>upstream timed out</p></body></html>"
)


def page_size_param(query: Mapping[str, str]) -> int:
    """Read the requested page size, checked against the server's limits."""
    page_size = int_param(query, "page_size")
    if page_size is None:
        return DEFAULT_PAGE_SIZE
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise bad_request(f"page_size must be between 1 and {MAX_PAGE_SIZE}, got {page_size}")
    return page_size


@web.middleware
async def count_statuses(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tally every response by status for /stats.json."""
    counts = request.app[STATUS_COUNTS]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        counts[exc.status] += 1
        raise
    except Exception:
        counts[500] += 1
        raise
    counts[response.status] += 1
    return response


def authorised(request: web.Request, token: str) -> bool:
    """Whether a request carries the token: Bearer, X-API-Key, ?api_key= or basic auth."""
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        try:
            header = "Basic " + base64.b64decode(header[6:]).decode().partition(":")[2]
        except ValueError:
            return False
    offered = {header, request.headers.get("X-API-Key", ""), request.query.get("api_key", "")}
    return bool({f"Bearer {token}", f"Basic {token}", token} & offered)


@web.middleware
async def inject_request_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse data requests over the rate limit or by the throttle dice (429), or by the
    error dice (503); answer pages 200 with an error body or HTML by their dice."""
    if request.path not in DATA_PATHS and not request.path.startswith(DETAIL_PREFIX):
        return await handler(request)
    injector = request.app[INJECTOR]
    if not authorised(request, injector.faults.auth_token):
        return json_response({"error": "unauthorised"}, status=401)
    tokens = request.app[TOKENS]
    if tokens.enabled and not tokens.accepts(request.headers.get("Authorization", "")):
        return json_response({"error": "invalid_token"}, status=401)
    decision = injector.admit()
    if decision is not None and not decision.allowed:
        refusal = json_response({"error": "rate limit exceeded"}, status=429)
        refusal.headers.update(decision.headers())
        return refusal
    if injector.throttles():
        refusal = json_response({"error": "secondary rate limit"}, status=429)
        refusal.headers["Retry-After"] = "1"
        return refusal
    if injector.fails():
        return json_response({"error": "service unavailable"}, status=503)
    if request.path in PAGE_PATHS and injector.error_body():
        return json_response({"error": {"code": 9, "message": "search backend overloaded"}})
    if request.path in PAGE_PATHS and injector.html():
        return web.Response(body=HTML_PAGE, content_type="text/html")
    response = await handler(request)
    if decision is not None:
        response.headers.update(decision.headers())
    return response


async def search(request: web.Request) -> web.Response:
    """Up to page_size + 1 replays uploaded strictly before `before`, newest first."""
    dataset = request.app[DATASET]
    before = int_param(request.query, "before")
    page_size = request.app[INJECTOR].page_size(page_size_param(request.query))
    indexes = dataset.page_indexes(before, request.query.get("format") or None, page_size + 1)
    body = orjson.dumps(dataset.records(indexes))
    fault = request.app[INJECTOR].page_fault()
    if fault.delay_s > 0:
        await asyncio.sleep(fault.delay_s)
    if fault.malformed:
        body = truncate_json(body)
    return web.Response(body=body, content_type="application/json")


async def count(request: web.Request) -> web.Response:
    """How many replays have after <= uploadtime < before, optionally in one format."""
    before = int_param(request.query, "before")
    after = int_param(request.query, "after")
    fmt = request.query.get("format") or None
    return json_response({"count": request.app[DATASET].count(before, after, fmt)})


async def stats(request: web.Request) -> web.Response:
    """Describe the dataset's extent and formats, and the requests served by status."""
    dataset = request.app[DATASET]
    counts = request.app[STATUS_COUNTS]
    return json_response(
        {
            "size": dataset.size,
            "oldest": dataset.oldest,
            "newest": dataset.newest,
            "formats": dataset.formats,
            "requests": {str(status): counts[status] for status in sorted(counts)},
            "token_requests": request.app[TOKENS].requests,
        }
    )


async def health(_: web.Request) -> web.Response:
    """Liveness probe."""
    return web.Response(text="ok")


def build_app(dataset: Dataset, faults: Faults | None = None) -> web.Application:
    """Wire the routes, the fault middleware and the per-app state."""
    app = web.Application(middlewares=[count_statuses, inject_request_faults])
    app[DATASET] = dataset
    app[INJECTOR] = FaultInjector(faults or Faults())
    app[STATUS_COUNTS] = Counter()
    app[DETAIL_REQUESTS] = Counter()
    app[TOKENS] = TokenIssuer(faults or Faults())
    app.router.add_get("/search.json", search)
    app.router.add_get("/count.json", count)
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    app.router.add_get(DETAIL_ROUTE, detail)
    app.router.add_get("/detail-stats.json", detail_stats)
    app.router.add_get("/stats.json", stats)
    app.router.add_post(TOKEN_ENDPOINT, token_endpoint)
    app.router.add_get("/health", health)
    return app


def base_url(runner: web.AppRunner, host: str) -> str:
    """Return the http:// URL the runner's first socket answers on."""
    port = runner.addresses[0][1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_demo_api(
    dataset: Dataset, host: str = "127.0.0.1", port: int = 0, **faults: float
) -> tuple[web.AppRunner, str]:
    """Serve `dataset` on host:port (0 = a free port); the caller must cleanup() the runner."""
    app = build_app(dataset, Faults.model_validate(faults))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, base_url(runner, host)


@asynccontextmanager
async def serve_demo_api(
    dataset: Dataset, host: str = "127.0.0.1", port: int = 0, **faults: float
) -> AsyncIterator[str]:
    """Serve `dataset` for the duration of the block, yielding its base URL."""
    runner, url = await start_demo_api(dataset, host, port, **faults)
    try:
        yield url
    finally:
        await runner.cleanup()
