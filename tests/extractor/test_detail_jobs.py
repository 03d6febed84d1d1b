"""Detail entities end to end: replays listed by the demo API's search, each one's log
fetched by id (``/replays/{id}.json``) within the replays' slices, into the real services.

Every parent and every detail lands exactly once, in PostgreSQL and in Neo4j; the details
the demo API answers 404 for are counted ``detail_missing`` (in the ledger, the report and
``extractor status``), not failures; a kill -9 mid-slice and a resume land the same set,
and re-request at most the details of the pages that were not checkpointed.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
import yaml
from aiohttp import web
from neo4j import AsyncDriver

from common.spec import BUNDLED_DIR, DatasetSpec, load_spec
from demoapi import Dataset, serve_demo_api
from demoapi.details import detail_missing
from extractor.backfill import JobOptions, estimate, plan, run_backfill
from extractor.sources.estimate import JobEstimate
from tests.extractor import support
from tests.extractor.support import (
    delete_queue,
    extractor_env,
    extractor_process,
    ledger_row,
    running_tableinator,
    serving,
    wait_exit,
    wait_for,
)
from tests.support.pipeline import extractor_settings, running_consumers

SIZE, DAYS, MISSING_EVERY, PAGE_SIZE = 600, 3, 7, 50
CHILD = "replay_logs"


@pytest.fixture
def details_spec(tmp_path: Path, namespace: str) -> Path:
    """The bundled demo_details spec, renamed to this test's namespace, over DAYS days."""
    raw = yaml.safe_load((BUNDLED_DIR / "demo_details.yaml").read_text())
    raw["name"] = namespace
    raw["source"]["slicing"] = {"kind": "daily", "start": "2025-12-29", "end": "2026-01-01"}
    path = tmp_path / "demo_details.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
async def detail_queues(namespace: str) -> AsyncIterator[None]:
    """The detail entity's queues (conftest deletes the replays' ones) go afterwards."""
    yield
    for consumer in ("tableinator", "graphinator"):
        for suffix in ("", ".dlq"):
            await delete_queue(f"{consumer}.{namespace}.{CHILD}{suffix}")


def expected_details(dataset: Dataset) -> tuple[set[str], set[str]]:
    """The replay ids, and the ids of the details the demo API has (the others 404)."""
    ids = {dataset.record(index)["id"] for index in range(dataset.size)}
    return ids, {i for i in ids if not detail_missing(i, MISSING_EVERY)}


async def keys(pg: psycopg.AsyncConnection[Any], namespace: str, table: str) -> list[str]:
    cur = await pg.execute(f'SELECT key FROM "{namespace}".{table}')
    return [row[0] for row in await cur.fetchall()]


async def detail_stats(url: str) -> dict[str, int]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/detail-stats.json") as response,
    ):
        body: dict[str, int] = await response.json()
    return body


async def graph_count(driver: AsyncDriver, query: str) -> int:
    async with driver.session() as session:
        record = await (await session.run(query)).single(strict=True)
        return int(record["c"])


def status_text(spec: Path, url: str, namespace: str, job_id: str) -> str:
    env = extractor_env(spec, url, namespace, COLUMNS="200")  # rich wraps at the width
    done = subprocess.run(
        [sys.executable, "-m", "extractor", "status", job_id],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


async def test_details_land_once_in_both_stores_and_404s_are_counted_missing(
    details_spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: Any,
    detail_queues: None,
) -> None:
    dataset = Dataset(size=SIZE, days=DAYS)
    parents, found = expected_details(dataset)
    async with (
        serve_demo_api(dataset, detail_missing_every=MISSING_EVERY) as url,
        running_consumers(details_spec, namespace),
    ):
        report = await run_backfill(
            extractor_settings(details_spec, url), JobOptions(wait_timeout=120)
        )
        served = await detail_stats(url)
        status = status_text(details_spec, url, namespace, report.job_id)

    assert report.ok, report.as_dict()
    assert 0 < len(found) < len(parents) == SIZE
    assert report.detail_missing == SIZE - len(found)
    assert report.entities[CHILD]["records"] == len(found)
    assert report.landed["tableinator"][CHILD]["rows"] == len(found)
    assert report.landed["graphinator"][CHILD]["nodes"] == len(found)
    assert "http_404" not in report.errors
    # Each detail asked for once, and PostgreSQL holds each parent and detail once.
    assert served == {"requests": SIZE, "distinct": SIZE, "repeated": 0}
    assert sorted(await keys(pg, namespace, "replays")) == sorted(parents)
    assert sorted(await keys(pg, namespace, CHILD)) == sorted(found)
    assert await graph_count(neo4j_driver, "MATCH (n:ReplayLog) RETURN count(n) AS c") == len(found)
    linked = "MATCH (:ReplayLog)-[e:LOG_OF]->(:Replay) RETURN count(e) AS c"
    assert await graph_count(neo4j_driver, linked) == len(found)
    assert f"detail_missing {SIZE - len(found)} (404)" in status
    assert f"details {CHILD} (of replays): {len(found)} records" in status


async def test_kill_9_mid_slice_then_resume_lands_the_same_details_without_refetching(
    details_spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    detail_queues: None,
    tmp_path: Path,
) -> None:
    size, in_flight = 1_500, 3
    dataset = Dataset(size=size, days=DAYS)
    parents, found = expected_details(dataset)
    job_id, log = f"{namespace}-kill", tmp_path / "extractor.log"
    async with (
        serve_demo_api(dataset, latency_ms=120, detail_missing_every=MISSING_EVERY) as url,
        running_tableinator(details_spec, namespace),
    ):
        env = extractor_env(
            details_spec,
            url,
            namespace,
            EXTRACTOR_CONCURRENCY="3",
            EXTRACTOR_MAX_IN_FLIGHT=str(in_flight),
        )
        with extractor_process(["run", "--job-id", job_id, "--no-wait"], env, log) as run:
            await wait_for(
                pg,
                namespace,
                "SELECT sum(pages) >= 8 FROM {s}.slices WHERE job_id = %s",
                job_id,
                seconds=30,
            )
            run.kill()
            run.wait(5)
        killed_at = await ledger_row(
            pg, namespace, "SELECT sum(pages)::bigint FROM {s}.slices WHERE job_id = %s", job_id
        )
        with extractor_process(["resume", job_id, "--wait-timeout", "60"], env, log) as resume:
            code = await wait_exit(resume, 90)
        served = await detail_stats(url)
        status = status_text(details_spec, url, namespace, job_id)

    assert code == 0, log.read_text()[-4000:]
    assert 8 <= killed_at[0] < size // PAGE_SIZE - DAYS  # killed mid-job, mid-slice
    assert sorted(await keys(pg, namespace, "replays")) == sorted(parents)
    assert sorted(await keys(pg, namespace, CHILD)) == sorted(found)
    totals = await ledger_row(
        pg,
        namespace,
        "SELECT sum(detail_records)::bigint, sum(detail_missing)::bigint, max(attempts)"
        " FROM {s}.slices WHERE job_id = %s",
        job_id,
    )
    assert totals == (len(found), size - len(found), 2)
    # Every detail was asked for; again only those of the pages in flight at the kill
    # (fetched, not yet checkpointed): confirmed details were not fetched again.
    assert served["distinct"] == size
    assert served["repeated"] <= in_flight * PAGE_SIZE, served
    assert f"detail_missing {size - len(found)} (404)" in status


async def test_a_detail_failing_after_its_retries_fails_the_slice_with_the_reason(
    details_spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    detail_queues: None,
) -> None:
    dataset = Dataset(size=150, days=DAYS)
    async with serve_demo_api(dataset) as upstream, aiohttp.ClientSession() as session:

        async def details_down(request: web.Request) -> web.Response:
            if request.path.startswith("/replays/"):
                return web.Response(status=500)
            async with session.get(upstream + request.path_qs) as response:
                body = await response.read()
                return web.Response(body=body, content_type="application/json")

        async with serving(details_down) as url, running_tableinator(details_spec, namespace):
            settings = support.extractor_settings(
                details_spec, url, namespace, extractor_max_retries=1
            )
            report = await run_backfill(settings, JobOptions(wait_timeout=60))
    assert report.status == "failed"
    assert len(report.failed_slices) == DAYS
    for error in report.failed_slices.values():
        assert error.startswith("http_5xx: HTTP 500 from "), error
        assert "/replays/" in error
    assert report.entities[CHILD]["records"] == 0


async def test_the_dry_run_counts_a_request_per_detail(details_spec: Path, namespace: str) -> None:
    spec = load_spec(details_spec)
    without = DatasetSpec.model_validate(
        {**spec.model_dump(), "entities": {"replays": spec.entities["replays"].model_dump()}}
    )
    async with serve_demo_api(Dataset(size=SIZE, days=DAYS)) as url:
        settings = support.extractor_settings(details_spec, url, namespace)
        sized = [await estimate(settings, s, plan(s, JobOptions())) for s in (spec, without)]
    assert all(isinstance(e, JobEstimate) and e.requests for e in sized)
    with_details, pages_only = (e.requests for e in sized if isinstance(e, JobEstimate))
    assert with_details == pages_only + SIZE
    assert sized[0].records == sized[1].records == SIZE
