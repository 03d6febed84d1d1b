"""Every pagination kind end to end: a real extractor job against the demo API's endpoint of
that shape, into the real services (RabbitMQ, PostgreSQL through tableinator), with heavy
timestamp ties at page boundaries and a page size the server fixes. Every record lands
exactly once, also when a job is cancelled mid-slice and resumed from its checkpoints;
200s with an error body or HTML are retried, and fail the slice with the message when they
persist; a tie group larger than a page fails with its timestamp."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from common.spec import BUNDLED_DIR
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, cancel, job_report, resume_backfill, run_backfill
from tests.extractor.support import (
    delete_queue,
    demo_stats,
    extractor_settings,
    ledger_row,
    running_tableinator,
    table_counts,
    wait_for,
    work_queue,
)

SIZE, DAYS, TIES = 1_500, 3, 600  # ~3.5 replays per 10-minute timestamp

# The bundled spec with one entity per kind (common/datasets/demo_shapes.yaml): each test
# below pages the demo spec's one entity the way one of them does.
BUNDLED_SHAPES = yaml.safe_load((BUNDLED_DIR / "demo_shapes.yaml").read_text())
SHAPES: dict[str, dict[str, Any]] = {
    entity["paginator"]["kind"]: {k: v for k, v in entity.items() if k not in ("key", "table")}
    for entity in BUNDLED_SHAPES["entities"].values()
}


@pytest.fixture
async def work_queue_deleted(namespace: str) -> AsyncIterator[None]:
    yield
    await delete_queue(work_queue(namespace))


def shaped_slicing() -> dict[str, str]:
    """The last DAYS days of the demo data, a slice a day."""
    return {"kind": "daily", "start": "2025-12-29", "end": "2026-01-01"}


def shaped(spec: Path, shape: dict[str, Any]) -> Path:
    """The demo spec over the last DAYS days, its entity paged the given way."""
    raw = yaml.safe_load(spec.read_text())
    raw["source"]["slicing"] = shaped_slicing()
    entity = raw["entities"]["replays"]
    entity.update(shape)
    spec.write_text(yaml.safe_dump(raw))
    return spec


async def run_job(
    spec: Path, namespace: str, dataset: Dataset, **knobs: Any
) -> tuple[Any, dict[str, Any], dict[str, int]]:
    retries = knobs.pop("max_retries", 5)
    async with (
        serve_demo_api(dataset, **knobs) as url,
        running_tableinator(spec, namespace),
    ):
        settings = extractor_settings(spec, url, namespace, extractor_max_retries=retries)
        report = await run_backfill(settings, JobOptions(wait_timeout=60))
        ledger = await job_report(settings, report.job_id)
        served = await demo_stats(url)
    return report, ledger, served


@pytest.mark.parametrize("kind", list(SHAPES))
async def test_every_record_lands_once_with_ties_and_a_fixed_server_page_size(
    kind: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    spec = shaped(demo_spec_file, SHAPES[kind])
    dataset = Dataset(size=SIZE, days=DAYS, tie_seconds=TIES)
    # The server answers 20 rows whatever is asked: offset/cursor/next/link ask for 100.
    report, ledger, _ = await run_job(spec, namespace, dataset, fixed_page_size=20)
    assert report.ok, report.as_dict()
    assert report.records == SIZE
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
    assert ledger["slices"]["failed"] == 0


async def test_the_bundled_spec_pages_every_kind_in_one_job(
    tmp_path: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    raw = dict(BUNDLED_SHAPES, name=namespace)
    raw["source"] = dict(raw["source"], slicing=shaped_slicing())
    spec = tmp_path / "demo_shapes.yaml"
    spec.write_text(yaml.safe_dump(raw))
    dataset = Dataset(size=SIZE, days=DAYS, tie_seconds=TIES)
    report, ledger, _ = await run_job(spec, namespace, dataset, fixed_page_size=20)
    assert report.ok, report.as_dict()
    assert ledger["slices"]["failed"] == 0
    assert report.records == SIZE * len(SHAPES)
    for entity in raw["entities"].values():
        table = entity["table"]["name"]
        cur = await pg.execute(f'SELECT count(*), count(DISTINCT key) FROM "{namespace}".{table}')
        assert await cur.fetchone() == (SIZE, SIZE), table


async def test_error_bodies_and_html_are_retried_and_every_record_lands(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["error_path"] = "error"
    demo_spec_file.write_text(yaml.safe_dump(raw))
    spec = shaped(demo_spec_file, SHAPES["before_timestamp"])
    dataset = Dataset(size=SIZE, days=DAYS, tie_seconds=TIES)
    report, ledger, _ = await run_job(
        spec, namespace, dataset, error_body_rate=0.15, html_rate=0.15, max_retries=8
    )
    assert report.ok, report.as_dict()
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
    assert ledger["errors"].get("error_body", 0) > 0
    assert ledger["errors"].get("not_json", 0) > 0


@pytest.mark.parametrize(
    ("knob", "reason"),
    [
        ("error_body_rate", "error_body: error in body (error): "),
        ("html_rate", "not_json: body is not JSON (text/html"),
    ],
)
async def test_a_persistent_error_body_fails_the_slice_with_the_message(
    knob: str,
    reason: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["error_path"] = "error"
    demo_spec_file.write_text(yaml.safe_dump(raw))
    spec = shaped(demo_spec_file, SHAPES["offset"])
    dataset = Dataset(size=300, days=DAYS)
    report, _, _ = await run_job(spec, namespace, dataset, max_retries=1, **{knob: 1.0})
    assert report.status == "failed"
    assert len(report.failed_slices) == DAYS
    assert all(e.startswith(reason) for e in report.failed_slices.values()), report.failed_slices
    message = "search backend overloaded" if knob == "error_body_rate" else "502 Bad Gateway"
    assert all(message in e for e in report.failed_slices.values())


async def test_a_tie_group_larger_than_a_page_fails_with_its_timestamp_and_count(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    spec = shaped(demo_spec_file, SHAPES["before_timestamp"])
    dataset = Dataset(size=300, days=DAYS, tie_seconds=86_400)  # one timestamp a day
    report, _, _ = await run_job(spec, namespace, dataset, fixed_page_size=20)
    assert report.status == "failed"
    assert len(report.failed_slices) == DAYS
    for error in report.failed_slices.values():
        assert error.startswith("bad_page: 20 or more records share uploadtime="), error
        assert "a whole page of 20" in error


@pytest.mark.parametrize("kind", ["before_timestamp", "after_timestamp", "cursor", "link_header"])
async def test_cancel_mid_slice_then_resume_from_the_checkpoints_publishes_each_record_once(
    kind: str,
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
) -> None:
    spec = shaped(demo_spec_file, SHAPES[kind])
    dataset = Dataset(size=SIZE, days=DAYS, tie_seconds=TIES)
    job_id = f"{namespace}-resume"
    async with (
        serve_demo_api(dataset, latency_ms=40, fixed_page_size=20) as url,
        running_tableinator(spec, namespace),
    ):
        settings = extractor_settings(spec, url, namespace, extractor_concurrency=3)
        run = asyncio.create_task(run_backfill(settings, JobOptions(job_id=job_id)))
        await wait_for(
            pg,
            namespace,
            "SELECT sum(pages) >= 6 FROM {s}.slices WHERE job_id = %s",
            job_id,
            seconds=30,
        )
        assert await cancel(settings, job_id) == "cancelling"
        stopped = await asyncio.wait_for(run, 30)
        resumed = await resume_backfill(settings, job_id, JobOptions(wait_timeout=60))
    assert stopped.status == "cancelled"
    assert resumed.ok, resumed.as_dict()
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
    # The ledger counts what each slice published: resumed slices took up at their
    # checkpointed positions, so no record was published twice.
    published = await ledger_row(
        pg, namespace, "SELECT sum(records)::bigint FROM {s}.slices WHERE job_id = %s", job_id
    )
    assert published == (SIZE,)
