"""Ending a job: once every slice is terminal, one caller makes the job terminal and
publishes the end-of-job messages with the ledger's totals.

Whoever ends the last slice tries (a worker, or the driver while it waits); the guarded
UPDATE in ``Ledger.complete_job`` lets exactly one succeed. A cancelled job publishes no
end-of-job: it is paused, and a resume will finish it.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractExchange

from common.amqp import publish_confirmed
from common.envelope import EndOfJob, encode
from common.spec import DatasetSpec
from common.topology import Topology
from extractor.ledger import Ledger
from extractor.stores import job_routes

log = logging.getLogger(__name__)


async def finish_job(ledger: Ledger, exchange: AbstractExchange, job_id: str) -> str | None:
    """End the job if every slice is terminal; its new status if this call ended it."""
    status = await ledger.complete_job(job_id)
    if status is None:
        return None
    log.info("job finished job=%s status=%s", job_id, status)
    if status != "cancelled":
        await publish_end(ledger, exchange, job_id)
    return status


async def publish_end(ledger: Ledger, exchange: AbstractExchange, job_id: str) -> None:
    """One end-of-job message per entity with what the ledger says was published."""
    job = await ledger.require_job(job_id)
    spec = DatasetSpec.model_validate(job.spec_body)
    stores = job.options.get("stores") or []
    routes = job_routes(spec, job.options, Topology.pairs(stores, spec))
    totals = await ledger.rows(
        "SELECT entity, sum(pages)::bigint AS pages, sum(records)::bigint AS records"
        " FROM {s}.slices WHERE job_id = %s GROUP BY entity ORDER BY entity",
        (job_id,),
    )
    for row in totals:
        end = EndOfJob(job_id, job.dataset, row["entity"], row["pages"], row["records"])
        route = routes[row["entity"]]
        await publish_confirmed(
            exchange,
            route.routing_key,
            encode(end),
            message_id=end.message_id,
            headers=route.headers or None,
        )
    await ledger.mark_end_published(job_id)
    log.info("end of job published job=%s entities=%d", job_id, len(totals))
