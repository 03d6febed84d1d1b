"""The scheduler API (extractor.scheduling) on the real services: submit without waiting,
run slices one by one, see the job end and tableinator finalise it, retry failed slices."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import psycopg

from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions
from extractor.ledger.completion import CompletionWaiter
from extractor.scheduling import (
    job_state,
    run_slice,
    submit_backfill,
    submit_retry,
    wait_finished,
)
from tests.extractor.support import (
    delete_queue,
    extractor_settings,
    free_port,
    running_tableinator,
    table_counts,
)

SIZE = 1_500


async def test_submit_run_slices_retry_failed_and_see_it_finalised(
    demo_spec_file: Path, namespace: str, pg: psycopg.AsyncConnection[Any], amqp: Any
) -> None:
    port = free_port()
    settings = extractor_settings(
        demo_spec_file, f"http://127.0.0.1:{port}", namespace, extractor_max_retries=0
    )
    job_id = f"{namespace}-sched"
    dataset = Dataset(size=SIZE)
    try:
        async with running_tableinator(demo_spec_file, namespace):
            async with serve_demo_api(dataset, port=port, malformed_rate=0.3):
                _, slices = await submit_backfill(
                    settings, JobOptions(job_id=job_id, estimate=False), queue_slices=False
                )
                submitted = await job_state(settings, job_id)
                ended = {s: await run_slice(settings, job_id, s) for s in slices}
                first = await asyncio.wait_for(
                    wait_finished(settings, job_id, poll_seconds=0.2), 30
                )
            async with serve_demo_api(dataset, port=port):  # the fault switched off
                retried = await submit_retry(settings, job_id, queue_slices=False)
                again = {s: await run_slice(settings, job_id, s) for s in retried}
                second = await asyncio.wait_for(
                    wait_finished(settings, job_id, poll_seconds=0.2), 30
                )
                looked_again = await job_state(settings, job_id)
    finally:
        await delete_queue(CompletionWaiter.queue_name(job_id))
    assert submitted.status == "running" and not submitted.ended and not submitted.finished
    assert submitted.waiting_for == ["tableinator/replays"]
    assert submitted.slices["pending"] == 30
    assert sorted(s for s, status in ended.items() if status == "failed") == sorted(
        first.failed_slices
    )
    assert first.status == "failed" and first.finished and not first.ok
    assert first.failed_slices and sorted(retried) == sorted(first.failed_slices)
    assert set(again.values()) == {"done"}
    assert second.ok, second.as_dict()
    assert second.records == SIZE
    assert second.landed["tableinator"]["replays"]["rows"] == SIZE
    assert looked_again == second  # reading the consumers' events did not take them
    assert await table_counts(pg, namespace) == (SIZE, SIZE)
