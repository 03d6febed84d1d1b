"""Prefect 3: run a backfill job from a flow, each slice in a fresh process.

    plan -> submit -> run_slice x N -> wait -> [retry_failed -> run_slice x F -> wait] -> report

- ``plan``: the dry run. The slices and the estimate of records, requests and duration
  under the source's rate budget; nothing is published or written.
- ``submit``: the job goes into the ledger (no work queue: the flow runs the slices).
- ``run_slice``: one task run per slice, each starting a new process (spawn) that claims
  the slice, fetches and publishes its pages with checkpoints, and exits. A long backfill's
  memory stays flat: nothing a slice allocated outlives its process, and the flow itself
  holds only ids. ``parallel_slices`` task runs go at once (threads that wait on their
  process); the source's rate limit is shared through the ledger whatever the count.
- ``wait``: polls the ledger and the consumers' events until every slice has ended and
  every consumer (tableinator, graphinator) has finalised the job.
- ``retry_failed``: when slices failed, puts them back (cursors kept, so each continues
  from its last confirmed page) and runs them again, up to ``retry_rounds`` times.
- ``report``: the ledger's report with what landed in each store; the flow fails if the
  job did not end ``done`` with every consumer finalised.

Install: ``pip install '.[prefect]'`` (scripts/setup-orchestration.sh builds
.local/venv/prefect). Run it with the pipeline's environment (AMQP_CONNECTION,
POSTGRES_*, DATASET_SPEC, EXTRACTOR_*; see the README), e.g.
``python -m orchestration.prefect.backfill_flow --source-url http://127.0.0.1:8899``,
or serve/deploy ``backfill_flow`` as any Prefect flow.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from extractor.backfill import job_report
from extractor.scheduling import run_slice_in_process, submit_backfill, submit_retry, wait_finished
from orchestration.jobs import dry_run, extractor_settings, job_options

WAIT_SECONDS = 3600.0  # for the consumers, once every slice has ended


@task
def plan(spec: str | None, source_url: str | None, start: str | None, end: str | None) -> Any:
    return asyncio.run(dry_run(extractor_settings(spec, source_url), job_options(start, end)))


@task
def submit(
    spec: str | None, source_url: str | None, start: str | None, end: str | None
) -> tuple[str, list[str]]:
    options = job_options(start, end)
    return asyncio.run(
        submit_backfill(extractor_settings(spec, source_url), options, queue_slices=False)
    )


@task(task_run_name="slice {slice_id}")
def run_slice(job_id: str, slice_id: str, spec: str | None, source_url: str | None) -> Any:
    ran = run_slice_in_process(extractor_settings(spec, source_url), job_id, slice_id)
    get_run_logger().info("slice %s %s (process %d)", slice_id, ran.status, ran.pid)
    return asdict(ran)


@task
def wait(job_id: str, spec: str | None, source_url: str | None) -> Any:
    settings = extractor_settings(spec, source_url)
    waiting = asyncio.wait_for(wait_finished(settings, job_id), WAIT_SECONDS)
    return asyncio.run(waiting).as_dict()


@task
def retry_failed(job_id: str, spec: str | None, source_url: str | None) -> list[str]:
    return asyncio.run(
        submit_retry(extractor_settings(spec, source_url), job_id, queue_slices=False)
    )


@task
def report(job_id: str, state: dict[str, Any], spec: str | None, source_url: str | None) -> Any:
    account = asyncio.run(job_report(extractor_settings(spec, source_url), job_id))
    account["landed"] = state["landed"]
    get_run_logger().info("job %s: %s", job_id, json.dumps(account, default=str)[:2000])
    return account


@flow(name="backfill", task_runner=ThreadPoolTaskRunner(max_workers=4))
def backfill_flow(
    spec: str | None = None,
    source_url: str | None = None,
    start: str | None = None,
    end: str | None = None,
    retry_rounds: int = 1,
) -> dict[str, Any]:
    """Plan, submit, run every slice in its own process, wait, retry failed, report.

    Parallel slices: the task runner's threads (``backfill_flow.with_options(task_runner=
    ThreadPoolTaskRunner(max_workers=N))``)."""
    source = {"spec": spec, "source_url": source_url}
    planned = plan(spec, source_url, start, end)
    get_run_logger().info("plan: %s", json.dumps(planned, default=str)[:2000])
    job_id, slices = submit(spec, source_url, start, end)
    ran = run_slice.map(unmapped(job_id), slices, **{k: unmapped(v) for k, v in source.items()})
    state = wait(job_id, spec, source_url, wait_for=ran)
    runs = list(ran)
    for _ in range(retry_rounds):
        if not state["failed_slices"]:
            break
        retried = retry_failed(job_id, spec, source_url)
        ran = run_slice.map(
            unmapped(job_id), retried, **{k: unmapped(v) for k, v in source.items()}
        )
        state = wait(job_id, spec, source_url, wait_for=ran)
        runs += list(ran)
    account: dict[str, Any] = report(job_id, state, spec, source_url)
    account["slice_runs"] = [future.result() for future in runs]
    if not state["ok"]:
        raise RuntimeError(f"job {job_id} did not finish ok: {state}")
    return account


def main() -> None:
    parser = argparse.ArgumentParser(description="Run a backfill job as a Prefect flow.")
    for name in ("spec", "source-url", "start", "end"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    print(json.dumps(backfill_flow(args.spec, args.source_url, args.start, args.end), indent=2))


if __name__ == "__main__":
    main()
