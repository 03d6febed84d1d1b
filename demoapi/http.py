"""What the demo API's handlers share: the app's state keys, query parsing, JSON answers."""

from collections import Counter
from collections.abc import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from demoapi.dataset import Dataset
from demoapi.faults import FaultInjector

DATASET = web.AppKey("dataset", Dataset)
INJECTOR = web.AppKey("injector", FaultInjector)
STATUS_COUNTS = web.AppKey("status_counts", Counter[int])

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(payload: object, status: int = 200) -> web.Response:
    """Serialize `payload` with orjson into an application/json response."""
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def bad_request(reason: str) -> web.HTTPBadRequest:
    """Build a 400 whose JSON body says which parameter was wrong."""
    error = orjson.dumps({"error": reason}).decode()
    return web.HTTPBadRequest(text=error, content_type="application/json")


def int_param(query: Mapping[str, str], name: str) -> int | None:
    """Read the integer query parameter `name`; None when absent or empty."""
    raw = query.get(name, "")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, got {raw!r}") from None
