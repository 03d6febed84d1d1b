"""The backfill DAG's waits: a deferrable sensor (its trigger polls the job asynchronously,
so no worker slot is held while the job runs) and the in-Airflow slice worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator, Context
from airflow.triggers.base import BaseTrigger, TriggerEvent

from common.settings import ExtractorSettings
from extractor.backfill import run_worker
from extractor.scheduling import job_state, wait_finished
from orchestration.jobs import extractor_settings


class BackfillJobTrigger(BaseTrigger):
    """Fires when the job has finished: every slice ended, every consumer finalised it."""

    def __init__(
        self,
        job_id: str,
        poll_seconds: float = 5.0,
        spec: str | None = None,
        source_url: str | None = None,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.poll_seconds = poll_seconds
        self.spec = spec
        self.source_url = source_url

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "poll_seconds": self.poll_seconds,
                "spec": self.spec,
                "source_url": self.source_url,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        settings = extractor_settings(self.spec, self.source_url)
        state = await wait_finished(settings, self.job_id, poll_seconds=self.poll_seconds)
        yield TriggerEvent(state.as_dict())


class BackfillJobSensor(BaseSensorOperator):
    """Waits, deferred, until a backfill job has finished; its state is the task's XCom."""

    template_fields = ("job_id",)

    def __init__(self, *, job_id: str, poll_seconds: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> None:
        params = context["params"]
        self.defer(
            trigger=BackfillJobTrigger(
                self.job_id, self.poll_seconds, params.get("spec"), params.get("source_url")
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return event


async def work_until_ended(
    settings: ExtractorSettings, job_id: str, poll_seconds: float = 1.0
) -> None:
    """Run an extractor worker here until every slice of the job has ended.

    For installations without ``extractor worker`` processes; with them, this only adds
    one more worker. A worker that stops on its own (an error) ends the wait with it.
    """
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        while not (await job_state(settings, job_id)).ended:
            done, _ = await asyncio.wait({worker}, timeout=poll_seconds)
            if done:
                worker.result()  # raises what stopped it
                raise RuntimeError(f"the worker stopped before job {job_id} ended")
    finally:
        stop.set()
        await worker
