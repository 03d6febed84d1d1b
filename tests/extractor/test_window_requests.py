"""Sliced ``page_number`` and ``offset`` jobs send each slice's window to the API: a real job
against the demo API (which filters by the ``after``/``before`` it is sent) through a proxy
that logs every request, into the real services. Every paging request carries its slice's
own window, each slice's first request is the one ``extractor plan`` shows, and the rows
that land are exactly those of the windows (no slice got every record)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web

from common.spec import load_spec
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, run_backfill
from extractor.ledger.slices import Window
from extractor.sources.page_sources import first_request
from tests.extractor.support import (
    delete_queue,
    extractor_env,
    extractor_settings,
    ledger_row,
    running_tableinator,
    serving,
    table_counts,
    work_queue,
)

SIZE, DAYS = 900, 3
START = dt.datetime(2025, 12, 29, tzinfo=dt.UTC)  # the demo data's last DAYS days
END = START + dt.timedelta(days=DAYS)
SHAPES: dict[str, dict[str, Any]] = {
    "page_number": {
        "path": "/pages.json",
        "paginator": {"kind": "page_number", "page_size": 40},
    },
    "offset": {
        "path": "/offset.json",
        "records_path": "items",
        "paginator": {"kind": "offset", "page_size": 40, "total_path": "total"},
    },
}
PAGING = {"page_number": "page", "offset": "offset"}


@pytest.fixture
async def work_queue_deleted(namespace: str) -> AsyncIterator[None]:
    yield
    await delete_queue(work_queue(namespace))


@asynccontextmanager
async def logging_proxy(upstream: str, log: list[tuple[str, dict[str, str]]]) -> AsyncIterator[str]:
    """``upstream`` behind a proxy that appends (path, query) of every request to ``log``."""

    async def forward(request: web.Request) -> web.Response:
        log.append((request.path, dict(request.query)))
        async with session.get(upstream + request.path_qs) as response:
            body = await response.read()
            return web.Response(body=body, status=response.status, content_type="application/json")

    async with aiohttp.ClientSession() as session, serving(forward) as url:
        yield url


def shaped(spec: Path, kind: str) -> Path:
    raw = yaml.safe_load(spec.read_text())
    raw["source"]["slicing"] = {"kind": "daily"}
    raw["entities"]["replays"].update(SHAPES[kind], params={"after": "{start}", "before": "{end}"})
    spec.write_text(yaml.safe_dump(raw))
    return spec


async def rows_in(pg: psycopg.AsyncConnection[Any], namespace: str, window: Window) -> int:
    cur = await pg.execute(
        f'SELECT count(*) FROM "{namespace}".replays WHERE uploadtime >= %s AND uploadtime < %s',
        (window.start, window.end),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("kind", list(SHAPES))
async def test_each_slice_sends_its_own_window_and_lands_only_its_records(
    kind: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    spec = shaped(demo_spec_file, kind)
    dataset = Dataset(size=SIZE, days=DAYS)
    sent: list[tuple[str, dict[str, str]]] = []
    async with (
        serve_demo_api(dataset) as upstream,
        logging_proxy(upstream, sent) as url,
        running_tableinator(spec, namespace),
    ):
        settings = extractor_settings(spec, url, namespace)
        options = JobOptions(start=START, end=END, estimate=False, wait_timeout=60)
        report = await run_backfill(settings, options)
    assert report.ok, report.as_dict()
    days = [Window(int(t.timestamp()), int(t.timestamp()) + 86_400) for t in _days()]
    path = SHAPES[kind]["path"]
    paging = [query for where, query in sent if where == path and PAGING[kind] in query]
    windows = Counter((int(q["after"]), int(q["before"])) for q in paging)
    assert set(windows) == {(w.start, w.end) for w in days}  # every request had one of them
    entity = load_spec(str(spec)).entities["replays"]
    for window in days:
        expected = dataset.count(window.end, window.start)
        assert 0 < expected < SIZE
        assert windows[(window.start, window.end)] >= -(-expected // 40)  # its pages
        assert await rows_in(pg, namespace, window) == expected
        published = await ledger_row(
            pg,
            namespace,
            "SELECT records FROM {s}.slices WHERE job_id = %s AND window_start = to_timestamp(%s)",
            report.job_id,
            window.start,
        )
        assert published == (expected,)  # the slice published its window's records alone
        _, shown = first_request(entity, window)  # what `extractor plan` prints
        first = {name: str(value) for name, value in shown.items()}
        assert first in paging
    assert await table_counts(pg, namespace) == (SIZE, SIZE)


def _days() -> list[dt.datetime]:
    return [START + dt.timedelta(days=n) for n in range(DAYS)]


def test_plan_prints_each_slices_paginator_and_window_params(
    demo_spec_file: Path, namespace: str, tmp_path: Path
) -> None:
    spec = shaped(demo_spec_file, "offset")
    env = extractor_env(spec, "http://127.0.0.1:9", namespace)  # --no-estimate: never asked
    args = ["plan", "--start", START.date().isoformat(), "--end", END.date().isoformat()]
    done = subprocess.run(
        [sys.executable, "-m", "extractor", *args, "--no-estimate"],
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = [line.strip() for line in done.stdout.splitlines()]
    for day in _days():
        start, end = int(day.timestamp()), int(day.timestamp()) + 86_400
        params = f'{{"after": {start}, "before": {end}, "offset": 0, "limit": 40}}'
        window = f"{day:%Y-%m-%d} 00:00 .. {day + dt.timedelta(days=1):%Y-%m-%d} 00:00"
        assert f"{window}  offset  /offset.json  params: {params}" in lines, done.stdout
