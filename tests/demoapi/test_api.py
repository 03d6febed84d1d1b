"""The demo API over real HTTP on 127.0.0.1: pagination, counts, filters and fault knobs."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from multidict import CIMultiDictProxy

from demoapi import Dataset, serve_demo_api

SIZE = 2_000
SEED = 11


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(size=SIZE, seed=SEED)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def base_url(dataset: Dataset) -> AsyncIterator[str]:
    async with serve_demo_api(dataset) as url:
        yield url


async def get_json(session: aiohttp.ClientSession, url: str, **params: str | int) -> Any:
    async with session.get(url, params=params) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        return orjson.loads(await response.read())


async def fetch(
    session: aiohttp.ClientSession, url: str
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    """GET `url`; return its status, headers and body."""
    async with session.get(url) as response:
        return response.status, response.headers, await response.read()


async def walk(
    session: aiohttp.ClientSession, base_url: str, page_size: int = 50, **params: str
) -> tuple[list[dict[str, Any]], list[int]]:
    """Follow `before` pagination to the end; return the records and every page's length."""
    records: list[dict[str, Any]] = []
    lengths: list[int] = []
    query: dict[str, str | int] = {"page_size": page_size, **params}
    while True:
        page = await get_json(session, f"{base_url}/search.json", **query)
        lengths.append(len(page))
        records.extend(page[:page_size])
        if len(page) <= page_size:
            return records, lengths
        query["before"] = page[page_size - 1]["uploadtime"]


async def test_walk_sees_every_record_exactly_once(
    session: aiohttp.ClientSession, base_url: str, dataset: Dataset
) -> None:
    records, lengths = await walk(session, base_url)

    assert len(records) == SIZE
    assert len({record["id"] for record in records}) == SIZE
    times = [record["uploadtime"] for record in records]
    assert all(newer > older for newer, older in itertools.pairwise(times))
    assert all(length == 51 for length in lengths[:-1])
    assert lengths[-1] <= 50
    assert records == orjson.loads(orjson.dumps(dataset.records(range(SIZE))))


async def test_pages_are_byte_identical_across_dataset_instances(
    session: aiohttp.ClientSession, base_url: str
) -> None:
    async with serve_demo_api(Dataset(size=SIZE, seed=SEED)) as twin_url:
        for query in ("", "?before=1766000000", "?format=gen9ou&page_size=200"):
            async with session.get(f"{base_url}/search.json{query}") as first:
                first_body = await first.read()
            async with session.get(f"{twin_url}/search.json{query}") as second:
                assert await second.read() == first_body


async def test_count_matches_the_dataset(
    session: aiohttp.ClientSession, base_url: str, dataset: Dataset
) -> None:
    times = [dataset.uploadtime(index) for index in range(SIZE)]
    after, before = times[1500], times[100]

    window = await get_json(session, f"{base_url}/count.json", before=before, after=after)
    everything = await get_json(session, f"{base_url}/count.json")

    assert window == {"count": sum(after <= time < before for time in times)} == {"count": 1400}
    assert everything == {"count": SIZE}


async def test_format_filter_walks_only_that_format(
    session: aiohttp.ClientSession, base_url: str, dataset: Dataset
) -> None:
    records, _ = await walk(session, base_url, page_size=40, format="gen9ou")
    counted = await get_json(session, f"{base_url}/count.json", format="gen9ou")

    expected = [
        record["id"] for record in dataset.records(range(SIZE)) if record["format"] == "gen9ou"
    ]
    assert [record["id"] for record in records] == expected
    assert counted == {"count": len(expected)}
    assert await get_json(session, f"{base_url}/search.json", format="gen42nothing") == []


async def test_bad_parameters_get_400(session: aiohttp.ClientSession, base_url: str) -> None:
    for query in ("before=yesterday", "page_size=0", "page_size=501", "after=x"):
        path = "count.json" if query.startswith("after") else "search.json"
        async with session.get(f"{base_url}/{path}?{query}") as response:
            assert response.status == 400
            assert "error" in orjson.loads(await response.read())


async def test_health_and_stats(
    session: aiohttp.ClientSession, base_url: str, dataset: Dataset
) -> None:
    async with session.get(f"{base_url}/health") as response:
        assert (response.status, await response.text()) == (200, "ok")
    await get_json(session, f"{base_url}/search.json")

    stats = await get_json(session, f"{base_url}/stats.json")

    assert stats["size"] == SIZE
    assert (stats["newest"], stats["oldest"]) == (dataset.newest, dataset.oldest)
    assert "gen9ou" in stats["formats"]
    assert stats["requests"]["200"] == 2


async def test_rate_limit_answers_429_with_retry_after(
    session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    async with serve_demo_api(dataset, rate_limit=5) as url:
        responses = await asyncio.gather(*(fetch(session, f"{url}/search.json") for _ in range(12)))
        stats = await get_json(session, f"{url}/stats.json")

    served = sum(status == 200 for status, _, _ in responses)
    refused = [headers for status, headers, _ in responses if status == 429]
    # Five is the burst; a sixth may pass if the batch spans a fifth of a second.
    assert served in (5, 6)
    assert len(refused) == len(responses) - served
    assert all(int(headers["Retry-After"]) >= 1 for headers in refused)
    assert refused[0]["RateLimit-Limit"] == "5"
    assert refused[0]["RateLimit-Remaining"] == "0"
    # The stats request itself is counted after it answers.
    assert stats["requests"] == {"200": served, "429": len(refused)}


async def test_error_rate_answers_503(session: aiohttp.ClientSession, dataset: Dataset) -> None:
    async with serve_demo_api(dataset, error_rate=0.5) as url:
        statuses = []
        for _ in range(40):
            async with session.get(f"{url}/search.json") as response:
                statuses.append(response.status)
        stats = await get_json(session, f"{url}/stats.json")

    assert set(statuses) == {200, 503}
    assert stats["requests"]["503"] == statuses.count(503)


async def test_throttle_rate_answers_429_with_retry_after(
    session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    async with serve_demo_api(dataset, throttle_rate=0.5) as url:
        refused = []
        for _ in range(40):
            async with session.get(f"{url}/search.json") as response:
                if response.status == 429:
                    refused.append(response.headers)
                else:
                    assert response.status == 200
        stats = await get_json(session, f"{url}/stats.json")

    assert 0 < len(refused) < 40
    assert all(headers["Retry-After"] == "1" for headers in refused)
    assert stats["requests"]["429"] == len(refused)


async def test_malformed_pages_are_not_valid_json(
    session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    async with serve_demo_api(dataset, malformed_rate=1.0) as url:
        status, _, body = await fetch(session, f"{url}/search.json")

    assert status == 200

    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_latency_delays_pages_without_blocking_the_server(
    session: aiohttp.ClientSession, dataset: Dataset
) -> None:
    async with serve_demo_api(dataset, latency_ms=300) as url:
        started = time.perf_counter()
        responses = await asyncio.gather(*(fetch(session, f"{url}/search.json") for _ in range(20)))
        elapsed = time.perf_counter() - started

    assert all(status == 200 for status, _, _ in responses)
    assert 0.3 <= elapsed < 1.0
