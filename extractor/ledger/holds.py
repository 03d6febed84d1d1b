"""Queues holding a job's fetching back, kept in the ledger for progress and ``status``.

Each worker writes the hold it sees (one row per worker and entity), refreshes it every
couple of seconds while it lasts and deletes it when fetching goes on. A row not refreshed
for ``STALE_SECONDS`` is over: its worker stopped or died.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from extractor.ledger.store import Ledger

STALE_SECONDS = 10


@dataclass(frozen=True)
class QueueHold:
    """A queue over the limit that holds fetching back, as last read."""

    consumer: str
    queue: str
    ready: int
    limit: int
    consumers: int
    since: dt.datetime  # when the hold began (wall clock, for the ledger)
    seconds: float = 0.0  # how long it has lasted

    def describe(self) -> str:
        text = (
            f"fetching held back by queue {self.queue}: {self.ready:,} ready, limit"
            f" {self.limit:,}, {self.consumers} consumer(s), for {self.seconds:.0f} s"
        )
        if self.consumers == 0:
            text += f"; no consumer on {self.queue}: is {self.consumer} running?"
        return text


async def record_hold(
    ledger: Ledger, job_id: str, worker: str, entity: str, hold: QueueHold | None
) -> None:
    """Write (or with None delete) this worker's hold of the entity."""
    key = {"j": job_id, "w": worker, "e": entity}
    if hold is None:
        await ledger.rows(
            "DELETE FROM {s}.holds WHERE job_id = %(j)s AND worker = %(w)s AND entity = %(e)s",
            key,
        )
        return
    await ledger.rows(
        "INSERT INTO {s}.holds AS h (job_id, worker, entity, consumer, queue, ready,"
        " queue_limit, consumers, since) VALUES (%(j)s, %(w)s, %(e)s, %(c)s, %(q)s, %(r)s,"
        " %(l)s, %(n)s, %(since)s) ON CONFLICT (job_id, worker, entity) DO UPDATE SET"
        " consumer = EXCLUDED.consumer, queue = EXCLUDED.queue, ready = EXCLUDED.ready,"
        " queue_limit = EXCLUDED.queue_limit, consumers = EXCLUDED.consumers,"
        " since = EXCLUDED.since, seen_at = clock_timestamp()",
        {
            **key,
            "c": hold.consumer,
            "q": hold.queue,
            "r": hold.ready,
            "l": hold.limit,
            "n": hold.consumers,
            "since": hold.since,
        },
    )


async def read_holds(ledger: Ledger, job_id: str) -> list[QueueHold]:
    """The job's current holds, one per queue (the longest-lasting first)."""
    rows = await ledger.rows(
        "SELECT DISTINCT ON (queue) consumer, queue, ready, queue_limit, consumers, since,"
        " extract(epoch FROM clock_timestamp() - since)::float8 AS seconds FROM {s}.holds"
        " WHERE job_id = %s AND seen_at > clock_timestamp() - make_interval(secs => %s)"
        " ORDER BY queue, since",
        (job_id, STALE_SECONDS),
    )
    holds = [
        QueueHold(
            row["consumer"],
            row["queue"],
            row["ready"],
            row["queue_limit"],
            row["consumers"],
            row["since"],
            row["seconds"],
        )
        for row in rows
    ]
    return sorted(holds, key=lambda hold: -hold.seconds)
