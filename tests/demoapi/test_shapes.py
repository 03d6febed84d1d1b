"""The demo API's pagination shapes and their knobs: a fixed server page size, timestamp
ties, 200s with an error body or HTML."""

from __future__ import annotations

from typing import Any

import aiohttp

from demoapi import Dataset, serve_demo_api

DATASET = Dataset(size=200, days=1, tie_seconds=600)


async def get(url: str, **params: Any) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, body, dict(response.headers)


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["id"] for row in rows]


async def test_each_shape_serves_the_window_newest_first() -> None:
    window = {"after": DATASET.uploadtime(150), "before": DATASET.uploadtime(20)}
    expected = ids(DATASET.records(DATASET.window(window["after"], window["before"])))
    async with serve_demo_api(DATASET) as url:
        _, offset, _ = await get(f"{url}/offset.json", offset=0, limit=500, **window)
        _, cursor, _ = await get(f"{url}/cursor.json", limit=500, **window)
        _, pages, _ = await get(f"{url}/pages.json", page=1, per_page=500, **window)
    assert ids(offset["items"]) == ids(cursor["items"]) == ids(pages) == expected
    assert offset["total"] == len(expected) and cursor["next_cursor"] is None


async def test_next_url_link_header_and_a_fixed_page_size() -> None:
    async with serve_demo_api(DATASET, fixed_page_size=7) as url:
        _, first, _ = await get(f"{url}/next.json", limit=100)
        _, second, _ = await get(first["next"])
        _, linked, headers = await get(f"{url}/link.json", per_page=100)
        _, after, _ = await get(f"{url}/after.json", after=DATASET.oldest, page_size=100)
    assert len(first["items"]) == len(linked) == len(after["items"]) == 7
    assert ids(first["items"] + second["items"]) == ids(DATASET.records(range(14)))
    assert 'rel="next"' in headers["Link"] and "page=2" in headers["Link"]
    stamps = [row["uploadtime"] for row in after["items"]]
    assert stamps == sorted(stamps) and stamps[0] == DATASET.oldest


def test_tie_seconds_make_records_share_timestamps() -> None:
    stamps = [DATASET.uploadtime(i) for i in range(DATASET.size)]
    assert all(stamp % 600 == 0 for stamp in stamps)
    assert len(set(stamps)) < DATASET.size * 3 // 4


async def test_error_bodies_and_html_come_with_status_200() -> None:
    async with serve_demo_api(DATASET, error_body_rate=1.0) as url:
        status, body, _ = await get(f"{url}/offset.json")
    assert status == 200 and "error" in body
    async with serve_demo_api(DATASET, html_rate=1.0) as url:
        status, body, headers = await get(f"{url}/search.json")
        counted, _, _ = await get(f"{url}/count.json")  # counts stay honest
    assert status == 200 and body is None and headers["Content-Type"].startswith("text/html")
    assert counted == 200
