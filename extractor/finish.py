"""Ending a job: once every slice is terminal, one caller makes the job terminal and
publishes the end-of-job messages with the ledger's totals.

Whoever ends the last slice tries (a worker, or the driver while it waits); the guarded
UPDATE in ``Ledger.complete_job`` lets exactly one succeed. A cancelled job publishes no
end-of-job: it is paused, and a resume will finish it.
"""

from __future__ import annotations

import logging
from typing import Any

from aio_pika.abc import AbstractExchange

from common.amqp import publish_confirmed
from common.envelope import EndOfJob, encode
from common.spec import DatasetSpec
from common.spec_details import detail_of
from common.topology import Topology
from extractor.ledger.store import Ledger
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
    ends = job_ends(spec, job_id, await _totals(ledger, job_id))
    for end in ends:
        route = routes.get(end.entity)
        if route is None:  # fetched only for its detail entity: no store takes it
            continue
        await publish_confirmed(
            exchange,
            route.routing_key,
            encode(end),
            message_id=end.message_id,
            headers=route.headers or None,
        )
    await ledger.mark_end_published(job_id)
    log.info("end of job published job=%s entities=%d", job_id, len(ends))


async def _totals(ledger: Ledger, job_id: str) -> list[dict[str, Any]]:
    return await ledger.rows(
        "SELECT entity, sum(pages)::bigint AS pages, sum(records)::bigint AS records,"
        " sum(detail_pages)::bigint AS detail_pages,"
        " sum(detail_records)::bigint AS detail_records,"
        " sum(detail_missing)::bigint AS detail_missing"
        " FROM {s}.slices WHERE job_id = %s GROUP BY entity ORDER BY entity",
        (job_id,),
    )


def job_ends(spec: DatasetSpec, job_id: str, totals: list[dict[str, Any]]) -> list[EndOfJob]:
    """The end-of-job messages: one per sliced entity, one per detail entity (its counts
    summed over its parent's slices, with the details that were missing)."""
    ends = []
    for row in totals:
        entity = row["entity"]
        ends.append(EndOfJob(job_id, spec.name, entity, row["pages"], row["records"]))
        child = detail_of(spec, entity)
        if child is not None:
            extra = {"detail_missing": row["detail_missing"]}
            pages, records = row["detail_pages"], row["detail_records"]
            ends.append(EndOfJob(job_id, spec.name, child, pages, records, extra))
    return ends
