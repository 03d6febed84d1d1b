"""Jobs on the real services: kill -9 and resume, a 429 storm, malformed pages and
retry-failed, two workers with one killed, cancel and resume.

Each test has its own dataset name (queues), PostgreSQL schema (ledger and table) and work
queue; tableinator consumes in-process; the demo API runs in-process with fault knobs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from common.spec import load_spec
from demoapi import Dataset, serve_demo_api
from extractor.backfill import (
    JobOptions,
    cancel,
    job_report,
    plan,
    resume_backfill,
    retry_failed,
    run_backfill,
)
from tests.extractor.support import (
    delete_queue,
    demo_stats,
    extractor_env,
    extractor_process,
    extractor_settings,
    free_port,
    ledger_row,
    running_tableinator,
    set_rate_limit,
    table_counts,
    wait_exit,
    wait_for,
    without_quota_headers,
    work_queue,
)

PAGE_SIZE = 50  # the demo spec's page size


@pytest.fixture
async def work_queue_deleted(namespace: str) -> AsyncIterator[None]:
    yield
    await delete_queue(work_queue(namespace))


def page_requests(spec: Path, dataset: Dataset) -> int:
    """Page requests a whole job makes: a slice of c records asks c // 50 + 1 times (the last
    answer shows where the slice ends), but the oldest slice, with nothing older, can end on a
    full page."""
    slices = plan(load_spec(spec), JobOptions())
    total = 0
    for item in slices:
        count = dataset.count(item.window.end, item.window.start)
        oldest = item.window.start is not None and item.window.start <= dataset.oldest
        total += count // PAGE_SIZE + (0 if oldest and count and count % PAGE_SIZE == 0 else 1)
    return total


async def ledger_totals(
    pg: psycopg.AsyncConnection[Any], namespace: str, job_id: str
) -> tuple[Any, ...]:
    return await ledger_row(
        pg,
        namespace,
        "SELECT sum(records)::bigint, max(attempts), (SELECT status FROM {s}.jobs"
        " WHERE job_id = %s) FROM {s}.slices WHERE job_id = %s",
        job_id,
        job_id,
    )


async def test_kill_9_mid_job_then_resume_delivers_every_record_once(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    size, in_flight = 3_000, 4
    dataset = Dataset(size=size)
    job_id = f"{namespace}-kill"
    log = tmp_path / "extractor.log"
    async with (
        serve_demo_api(dataset, latency_ms=150) as url,
        running_tableinator(demo_spec_file, namespace),
    ):
        env = extractor_env(
            demo_spec_file,
            url,
            namespace,
            EXTRACTOR_CONCURRENCY="3",
            EXTRACTOR_MAX_IN_FLIGHT=str(in_flight),
        )
        with extractor_process(["run", "--job-id", job_id, "--no-wait"], env, log) as run:
            await wait_for(
                pg,
                namespace,
                "SELECT sum(pages) >= 15 FROM {s}.slices WHERE job_id = %s",
                job_id,
                seconds=30,
            )
            run.send_signal(signal.SIGKILL)
            run.wait(5)
        killed_at = await ledger_row(
            pg, namespace, "SELECT sum(pages)::bigint FROM {s}.slices WHERE job_id = %s", job_id
        )
        with extractor_process(["resume", job_id, "--wait-timeout", "30"], env, log) as resume:
            code = await wait_exit(resume, 60)
        served = await demo_stats(url)
    assert code == 0, log.read_text()[-4000:]
    assert 15 <= killed_at[0] < 60  # killed mid-job
    assert await table_counts(pg, namespace) == (size, size)
    assert await ledger_totals(pg, namespace, job_id) == (size, 2, "done")
    # Every page request was made once, but for at most the pages in flight at the kill:
    # resume continued each slice from its checkpoint, not from the start.
    # and one count request per slice, and the run's one request checking the source
    needed = page_requests(demo_spec_file, dataset) + 30 + 1
    assert needed <= served["200"] <= needed + in_flight, (served, needed)


@pytest.mark.parametrize(
    "quota_headers", [True, False], ids=["ratelimit-headers", "retry-after-only"]
)
async def test_429_storm_finishes_without_exceeding_the_limit(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    quota_headers: bool,
) -> None:
    size, limit = 3_000, 20
    set_rate_limit(demo_spec_file, initial=40, maximum=400)  # starts above the API's limit
    dataset = Dataset(size=size)
    async with (
        serve_demo_api(dataset, rate_limit=limit) as api,
        without_quota_headers(api) as proxy,
        running_tableinator(demo_spec_file, namespace),
    ):
        settings = extractor_settings(demo_spec_file, api if quota_headers else proxy, namespace)
        started = time.monotonic()
        report = await run_backfill(settings, JobOptions(wait_timeout=60))
        elapsed = time.monotonic() - started
        served = await demo_stats(api)
        ledger = await job_report(settings, report.job_id)
    assert report.ok, report.as_dict()
    assert await table_counts(pg, namespace) == (size, size)
    ok, refused = served["200"], served.get("429", 0)
    burst = limit  # the API's bucket holds one second's worth
    assert ok <= limit * 1.05 * elapsed + burst, (ok, elapsed)
    # The shared limiter adapted: a handful of refusals, not a storm of retries, and it
    # still used most of the allowed rate.
    assert refused <= 0.05 * ok, served
    assert ok >= 0.6 * limit * elapsed, (ok, elapsed)
    assert ledger["errors"].get("http_429", 0) <= refused  # the estimate's are not a slice's
    assert ledger["rate_limit"]["throttled"] >= 1


async def test_malformed_pages_fail_slices_then_retry_failed_completes(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    size, port = 2_000, free_port()
    dataset = Dataset(size=size)
    job_id = f"{namespace}-malformed"
    settings = extractor_settings(
        demo_spec_file, f"http://127.0.0.1:{port}", namespace, extractor_max_retries=0
    )
    async with running_tableinator(demo_spec_file, namespace):
        async with serve_demo_api(dataset, port=port, malformed_rate=0.1):
            first = await run_backfill(settings, JobOptions(job_id=job_id, wait_timeout=60))
        failed = await job_report(settings, job_id)
        async with serve_demo_api(dataset, port=port):  # the fault switched off
            second = await retry_failed(settings, job_id, JobOptions(wait_timeout=60))
    assert first.status == "failed" and first.complete
    assert first.failed_slices
    assert all(
        e.startswith("malformed: body is not valid JSON") for e in first.failed_slices.values()
    )
    assert failed["slices"]["failed"] == len(first.failed_slices)
    assert failed["errors"]["malformed"] == len(first.failed_slices)  # no retries: one each
    assert {f["error_kind"] for f in failed["failed_slices"]} == {"malformed"}
    assert second.ok, second.as_dict()
    assert second.records == size
    assert await table_counts(pg, namespace) == (size, size)
    assert (await ledger_totals(pg, namespace, job_id))[0::2] == (size, "done")


async def test_two_workers_share_a_job_and_one_is_killed(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    size = 3_000
    dataset = Dataset(size=size)
    job_id = f"{namespace}-shared"
    async with (
        serve_demo_api(dataset, latency_ms=200) as url,
        running_tableinator(demo_spec_file, namespace),
    ):
        env = extractor_env(demo_spec_file, url, namespace, EXTRACTOR_CONCURRENCY="3")
        settings = extractor_settings(demo_spec_file, url, namespace)
        options = JobOptions(job_id=job_id, local_workers=False, wait_timeout=60)
        with (
            extractor_process(["worker"], env, tmp_path / "a.log") as victim,
            extractor_process(["worker"], env, tmp_path / "b.log") as survivor,
        ):
            driver = asyncio.create_task(run_backfill(settings, options))
            await wait_for(
                pg,
                namespace,
                "SELECT count(*) > 0 FROM {s}.slices WHERE job_id = %s AND status = 'running'"
                " AND next_page >= 1 AND worker LIKE %s",
                job_id,
                f"%:{victim.pid}:%",
                seconds=30,
            )
            victim.send_signal(signal.SIGKILL)
            report = await asyncio.wait_for(driver, 90)
            survivor.send_signal(signal.SIGTERM)
            survivor_exit = await wait_exit(survivor, 20)
    assert report.ok, report.as_dict()
    assert survivor_exit == 0
    assert await table_counts(pg, namespace) == (size, size)
    records, attempts, status = await ledger_totals(pg, namespace, job_id)
    assert (records, status) == (size, "done")
    assert attempts >= 2  # a slice of the killed worker was taken over


async def test_cancel_checkpoints_in_flight_pages_and_resume_finishes(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    size = 3_000
    dataset = Dataset(size=size)
    job_id = f"{namespace}-cancel"
    async with (
        serve_demo_api(dataset, latency_ms=100) as url,
        running_tableinator(demo_spec_file, namespace),
    ):
        settings = extractor_settings(demo_spec_file, url, namespace, extractor_concurrency=3)
        run = asyncio.create_task(run_backfill(settings, JobOptions(job_id=job_id)))
        await wait_for(
            pg,
            namespace,
            "SELECT sum(pages) >= 10 FROM {s}.slices WHERE job_id = %s",
            job_id,
            seconds=30,
        )
        assert await cancel(settings, job_id) == "cancelling"
        stopped = await asyncio.wait_for(run, 30)
        cancelled = await job_report(settings, job_id)
        resumed = await resume_backfill(settings, job_id, JobOptions(wait_timeout=60))
    assert stopped.status == "cancelled" and not stopped.ok
    assert cancelled["slices"]["cancelled"] > 0 and cancelled["slices"]["running"] == 0
    assert 0 < cancelled["records"] < size
    assert resumed.ok, resumed.as_dict()
    assert await table_counts(pg, namespace) == (size, size)
    assert (await ledger_totals(pg, namespace, job_id))[0::2] == (size, "done")


def test_job_ids_are_unique_per_call() -> None:
    from extractor.backfill import new_job_id

    assert new_job_id("demo") != new_job_id("demo")
    assert new_job_id("demo").startswith(f"demo-{dt.datetime.now(dt.UTC):%Y%m%d}")
