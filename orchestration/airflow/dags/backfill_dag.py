"""Airflow 3: run a backfill job from a DAG, with the project's Python API.

    plan -> submit -> work -> wait (deferred) -> report -> slices_failed? -> retry_failed

- ``plan``: the dry run. The slices and the estimate of records, requests and duration
  under the source's rate budget (XCom); nothing is published or written.
- ``submit``: the job goes into the ledger and its slices onto the work queue; the job id
  is the XCom every later task reads.
- ``work``: an extractor worker inside Airflow until every slice has ended. Where
  ``extractor worker`` processes already run (docker compose, a deployment), set the param
  ``work_in_airflow`` to false and they do the work while the DAG only waits.
- ``wait``: a deferrable sensor. Its trigger polls the ledger and the consumers' events in
  the triggerer, holding no worker slot, until every slice has ended and tableinator and
  graphinator have both finalised the job (flushed, indexes rebuilt, counted).
- ``report``: the ledger's report and what landed in each store (XCom, and the task log).
- ``slices_failed`` lets ``retry_failed`` run only when slices failed: it puts them back
  (cursors kept, so each continues from its last confirmed page), runs them and waits for
  the consumers again; the task fails if any slice still fails.

Install: ``pip install '.[airflow]'`` (scripts/setup-orchestration.sh builds
.local/venv/airflow), point the ``dags_folder`` at this directory (or copy this file), and
give the Airflow workers and triggerer the pipeline's environment (AMQP_CONNECTION,
POSTGRES_*, DATASET_SPEC, EXTRACTOR_*; see the README). Trigger it with params, e.g.
``{"start": "2025-12-02", "end": "2025-12-09", "source_url": "http://127.0.0.1:8899"}``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from common.settings import ExtractorSettings
from extractor.backfill import job_report, retry_failed
from extractor.scheduling import submit_backfill
from orchestration.airflow.operators import BackfillJobSensor, work_until_ended
from orchestration.jobs import dry_run, extractor_settings, job_options

log = logging.getLogger(__name__)
OPTIONAL_TEXT = {"type": ["null", "string"]}


def _run_params() -> dict[str, Any]:
    params: dict[str, Any] = dict(get_current_context()["params"])
    return params


def _settings(params: dict[str, Any]) -> ExtractorSettings:
    return extractor_settings(params.get("spec"), params.get("source_url"))


@task
def plan() -> dict[str, Any]:
    params = _run_params()
    options = job_options(params.get("start"), params.get("end"))
    return asyncio.run(dry_run(_settings(params), options))


@task
def submit(planned: dict[str, Any]) -> str:
    params = _run_params()
    options = job_options(params.get("start"), params.get("end"), params.get("job_id"))
    job_id, slices = asyncio.run(submit_backfill(_settings(params), options))
    log.info("submitted job %s: %d slices (plan: %d)", job_id, len(slices), planned["slices"])
    return job_id


@task
def work(job_id: str) -> None:
    params = _run_params()
    if params.get("work_in_airflow", True):
        asyncio.run(work_until_ended(_settings(params), job_id))


@task
def report(job_id: str, finished: dict[str, Any]) -> dict[str, Any]:
    settings = _settings(_run_params())
    account = asyncio.run(job_report(settings, job_id))
    account["landed"] = finished["landed"]
    log.info(
        "job %s %s: %s records; landed %s",
        job_id,
        account["status"],
        account["records"],
        account["landed"],
    )
    for failed in account.get("failed_slices", []):
        log.warning("failed slice %s", failed)
    return account


@task.short_circuit
def slices_failed(account: dict[str, Any]) -> bool:
    return bool(account["slices"].get("failed"))


@task
def retry_failed_slices(job_id: str) -> dict[str, Any]:
    params = _run_params()
    outcome = asyncio.run(retry_failed(_settings(params), job_id, job_options(wait_timeout=3600)))
    if not outcome.ok:
        raise RuntimeError(f"job {job_id} after retry-failed: {outcome.as_dict()}")
    return outcome.as_dict()


@dag(
    dag_id="backfill",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["backfill"],
    params={
        "spec": Param(None, **OPTIONAL_TEXT, description="spec path or bundled name"),
        "start": Param(None, **OPTIONAL_TEXT, description="first day (ISO); the spec's"),
        "end": Param(None, **OPTIONAL_TEXT, description="end, exclusive (ISO); the spec's"),
        "source_url": Param(None, **OPTIONAL_TEXT, description="source base URL override"),
        "job_id": Param(None, **OPTIONAL_TEXT, description="job id (default: generated)"),
        "work_in_airflow": Param(True, type="boolean", description="run a worker in Airflow"),
    },
)
def backfill() -> None:
    job_id = submit(plan())
    wait = BackfillJobSensor(task_id="wait", job_id=job_id, poll_seconds=2.0, timeout=86_400)
    work(job_id) >> wait
    account = report(job_id, wait.output)
    slices_failed(account) >> retry_failed_slices(job_id)


backfill()
