"""The same replays paged the other ways real APIs page: offset/limit, a cursor token in the
body, a next URL in the body, an RFC 8288 Link header, page numbers, and oldest first by an
inclusive ``after`` timestamp.

Every endpoint but ``/after.json`` is newest first and takes the window as ``after``
(inclusive) and ``before`` (exclusive) unix seconds; the server's fixed page size, when
set, overrides the client's.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from aiohttp import web

from demoapi.http import DATASET, INJECTOR, bad_request, int_param, json_response

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def limit_param(request: web.Request, name: str) -> int:
    """The page size asked for under ``name``, unless the server fixes it."""
    asked = int_param(request.query, name)
    if asked is not None and not 1 <= asked <= MAX_LIMIT:
        raise bad_request(f"{name} must be between 1 and {MAX_LIMIT}, got {asked}")
    return request.app[INJECTOR].page_size(asked or DEFAULT_LIMIT)


def window(request: web.Request) -> range:
    """Newest-first indexes of the replays in the request's after/before window."""
    query = request.query
    return request.app[DATASET].window(int_param(query, "after"), int_param(query, "before"))


def records(request: web.Request, indexes: range) -> list[object]:
    return list(request.app[DATASET].records(indexes))


def url_with(request: web.Request, changes: Mapping[str, object]) -> str:
    """This request's absolute URL with some query parameters changed."""
    query = {**request.query, **{k: str(v) for k, v in changes.items()}}
    return str(request.url.with_query(None)) + "?" + urlencode(query)


async def by_offset(request: web.Request) -> web.Response:
    """``offset``/``limit``: {"items": [...], "total": n}."""
    rows, offset = window(request), int_param(request.query, "offset") or 0
    page = rows[offset : offset + limit_param(request, "limit")]
    return json_response({"items": records(request, page), "total": len(rows)})


async def by_cursor(request: web.Request) -> web.Response:
    """``cursor`` (opaque token)/``limit``: {"items": [...], "next_cursor": token or null}."""
    token = request.query.get("cursor", "")
    if token and not (token.startswith("c") and token[1:].isdigit()):
        raise bad_request(f"unknown cursor {token!r}")
    rows, offset = window(request), int(token[1:] or 0)
    end = offset + limit_param(request, "limit")
    next_cursor = f"c{end}" if end < len(rows) else None
    return json_response({"items": records(request, rows[offset:end]), "next_cursor": next_cursor})


async def by_next_url(request: web.Request) -> web.Response:
    """``offset``/``limit``: {"items": [...], "next": absolute URL or null}."""
    rows, offset = window(request), int_param(request.query, "offset") or 0
    end = offset + limit_param(request, "limit")
    next_url = url_with(request, {"offset": end}) if end < len(rows) else None
    return json_response({"items": records(request, rows[offset:end]), "next": next_url})


async def by_link_header(request: web.Request) -> web.Response:
    """``page``/``per_page``: a bare list; ``Link: <..>; rel="next"`` while there is more."""
    rows, page = window(request), int_param(request.query, "page") or 1
    size = limit_param(request, "per_page")
    start = (page - 1) * size
    response = json_response(records(request, rows[start : start + size]))
    links = [f'<{url_with(request, {"page": 1})}>; rel="first"']
    if start + size < len(rows):
        links.append(f'<{url_with(request, {"page": page + 1})}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    return response


async def by_page_number(request: web.Request) -> web.Response:
    """``page``/``per_page``: a bare list."""
    rows, page = window(request), int_param(request.query, "page") or 1
    size = limit_param(request, "per_page")
    start = (page - 1) * size
    return json_response(records(request, rows[start : start + size]))


async def ascending_after(request: web.Request) -> web.Response:
    """Oldest first from ``after`` (inclusive), ``page_size`` rows: a short page is the last.
    {"items": [...]}."""
    dataset = request.app[DATASET]
    after = int_param(request.query, "after")
    rows = dataset.window(after, None)[::-1]  # oldest first
    return json_response({"items": records(request, rows[: limit_param(request, "page_size")])})


ROUTES = {
    "/offset.json": by_offset,
    "/cursor.json": by_cursor,
    "/next.json": by_next_url,
    "/link.json": by_link_header,
    "/pages.json": by_page_number,
    "/after.json": ascending_after,
}
