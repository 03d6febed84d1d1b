"""The job ledger in PostgreSQL: jobs, their slices, and the transitions a person asks for.

The ledger, not memory, holds a job's state: every slice's status, the cursor of the next
page to fetch (written only after the broker confirmed the page before it), counts, attempts
and errors. Slice leases (which worker runs what) are in ``extractor.ledger.leases``; the shared
rate limit in ``extractor.pacing.shared_limit``.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from common.errors import ConfigError, Unreachable
from common.postgres import retryable
from common.resilience import Backoff, retry_transient
from common.settings import ExtractorSettings
from extractor.ledger.schema import TERMINAL, create_ledger
from extractor.ledger.slices import Slice

log = logging.getLogger(__name__)
LEDGER_BACKOFF = Backoff(base=0.1, cap=5.0)


class RatePolicy(Protocol):
    """What the ledger stores of a job's rate policy (``extractor.pacing.ratelimit``)."""

    @property
    def start(self) -> float: ...
    @property
    def minimum(self) -> float: ...
    @property
    def maximum(self) -> float: ...
    @property
    def burst_seconds(self) -> float: ...
    @property
    def increase_every(self) -> int: ...
    @property
    def increase_factor(self) -> float: ...
    @property
    def increase_step(self) -> float: ...
    def burst(self, rate: float) -> float: ...


Row = dict[str, Any]
RECORD_APPLIED = (
    "INSERT INTO {s}.applied_writes (token) VALUES (%s) ON CONFLICT DO NOTHING RETURNING 1"
)
PRUNE_APPLIED = "DELETE FROM {s}.applied_writes WHERE at < clock_timestamp() - interval '1 hour'"
PRUNE_APPLIED_EVERY = 1000  # statements between prunes of old tokens (per process)


@dataclass(frozen=True)
class NewJob:
    """What a job is planned from."""

    job_id: str
    dataset: str
    spec: str
    spec_body: dict[str, Any]
    options: dict[str, Any]
    estimate: dict[str, Any] | None
    expected_records: dict[str, int | None] = field(default_factory=dict)  # per slice
    quota_left: int | None = None  # RateLimit-Remaining when the estimate ended


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    dataset: str
    spec: str
    spec_body: dict[str, Any]
    options: dict[str, Any]
    estimate: dict[str, Any] | None
    status: str
    created_at: dt.datetime
    finished_at: dt.datetime | None
    end_published_at: dt.datetime | None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


INSERT_JOB = (
    "INSERT INTO {s}.jobs (job_id, dataset, spec, spec_body, options, estimate)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
INSERT_SLICE = (
    "INSERT INTO {s}.slices (job_id, slice_id, seq, entity, window_start, window_end, file,"
    " file_stats, expected_records)"
    " VALUES (%s, %s, %s, %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s)"
)
INSERT_RATE_LIMIT = (
    "INSERT INTO {s}.rate_limits (job_id, rate, minimum, maximum, burst_seconds,"
    " increase_every, increase_factor, increase_step, tokens)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def _job_row(job: NewJob) -> tuple[Any, ...]:
    estimate = Jsonb(job.estimate) if job.estimate is not None else None
    return (job.job_id, job.dataset, job.spec, Jsonb(job.spec_body), Jsonb(job.options), estimate)


def _slice_row(job: NewJob, seq: int, item: Slice) -> tuple[Any, ...]:
    window, expected = item.window, job.expected_records.get(item.slice_id)
    stats = None if item.file is None else Jsonb(initial_file_stats(item))
    return (
        job.job_id,
        item.slice_id,
        seq,
        item.entity,
        window.start,
        window.end,
        item.file,
        stats,
        expected,
    )


def initial_file_stats(item: Slice) -> dict[str, Any]:
    """A dump slice's reader stats before it runs: nothing read of the file's size."""
    return {"bytes_read": 0, "bytes_total": item.file_size or 0, "records": 0, "skipped": 0}


def _rate_limit_row(job: NewJob, policy: RatePolicy) -> tuple[Any, ...]:
    return (
        job.job_id,
        policy.start,
        policy.minimum,
        policy.maximum,
        policy.burst_seconds,
        policy.increase_every,
        policy.increase_factor,
        policy.increase_step,
        start_tokens(policy, job.quota_left),
    )


def start_tokens(policy: RatePolicy, quota_left: int | None) -> float:
    """The bucket's tokens at the start: what the source said is left of its quota (the
    estimate's count requests spent the rest), at most a burst; else one.

    A source's quota starts full, so a bucket that starts with one token leaves a whole
    burst of the allowed requests unused.
    """
    if not quota_left:
        return 1.0
    return max(1.0, min(policy.burst(policy.start), float(quota_left)))


class Ledger:
    """Queries over one ledger schema; every statement is composed with psycopg.sql."""

    def __init__(self, pool: AsyncConnectionPool[Any], schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self._statements: dict[str, sql.Composed] = {}
        self._writes = 0

    def statement(self, template: str) -> sql.Composed:
        """``template`` with ``{s}`` replaced by the quoted schema (cached)."""
        if template not in self._statements:
            self._statements[template] = sql.SQL(template).format(s=sql.Identifier(self.schema))
        return self._statements[template]

    async def rows(self, template: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        async def run() -> list[Row]:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(self.statement(template), params)
                return await cur.fetchall() if cur.description else []

        return await retry_transient(run, retryable, backoff=LEDGER_BACKOFF, what="ledger")

    async def rows_once(
        self, template: str, params: dict[str, Any], *, token: uuid.UUID | None = None
    ) -> list[Row] | None:
        """Like ``rows``, for a statement that must not apply twice (an increment): its
        transaction first records a token, so a retry after a lost answer (the first attempt
        committed, the reply did not arrive) applies nothing and returns None. The token's
        unique index also makes a retry wait for a first attempt still in flight."""
        token = token or uuid.uuid4()
        self._writes += 1
        prune = self._writes % PRUNE_APPLIED_EVERY == 0

        async def run() -> list[Row] | None:
            async with (
                self.pool.connection() as conn,
                conn.transaction(),
                conn.cursor(row_factory=dict_row) as cur,
            ):
                await cur.execute(self.statement(RECORD_APPLIED), (token,))
                if await cur.fetchone() is None:
                    return None
                await cur.execute(self.statement(template), params)
                found = await cur.fetchall() if cur.description else []
                if prune:
                    await cur.execute(self.statement(PRUNE_APPLIED))
                return found

        return await retry_transient(run, retryable, backoff=LEDGER_BACKOFF, what="ledger")

    async def row(self, template: str, params: Sequence[Any] | dict[str, Any] = ()) -> Row | None:
        found = await self.rows(template, params)
        return found[0] if found else None

    async def create_job(self, job: NewJob, slices: list[Slice], policy: RatePolicy | None) -> None:
        """The job, its slices (pending) and its rate limit (HTTP only), in one transaction."""
        async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(self.statement(INSERT_JOB), _job_row(job))
            await cur.executemany(
                self.statement(INSERT_SLICE),
                [_slice_row(job, seq, item) for seq, item in enumerate(slices)],
            )
            if policy is not None:
                await cur.execute(self.statement(INSERT_RATE_LIMIT), _rate_limit_row(job, policy))

    async def job(self, job_id: str) -> JobRecord | None:
        found = await self.row(
            "SELECT job_id, dataset, spec, spec_body, options, estimate, status, created_at,"
            " finished_at, end_published_at FROM {s}.jobs WHERE job_id = %s",
            (job_id,),
        )
        return JobRecord(**found) if found else None

    async def require_job(self, job_id: str) -> JobRecord:
        job = await self.job(job_id)
        if job is None:
            raise ConfigError(f"no job {job_id!r} in ledger schema {self.schema}")
        return job

    async def recent_jobs(self, limit: int = 20) -> list[Row]:
        return await self.rows(
            "SELECT job_id, dataset, status, created_at, finished_at FROM {s}.jobs"
            " ORDER BY created_at DESC LIMIT %s",
            (limit,),
        )

    async def coverage(self, dataset: str) -> list[Row]:
        """Per windowed job of the dataset (``extractor run --since-last``): its status and
        stores, the [start, end) its slices span (unix seconds), its entities, the
        (consumer, entity) pairs that reported it finalised, and its slices not done."""
        return await self.rows(
            "SELECT j.job_id, j.status, j.options->'stores' AS stores, w.span_start, w.span_end,"
            " w.entities, w.open_slices,"
            " (SELECT coalesce(jsonb_agg(jsonb_build_array(e.service, e.entity)), '[]')"
            "  FROM {s}.job_events e WHERE e.job_id = j.job_id) AS finalised"
            " FROM {s}.jobs j CROSS JOIN LATERAL (SELECT"
            "  extract(epoch FROM min(sl.window_start))::bigint AS span_start,"
            "  extract(epoch FROM max(sl.window_end))::bigint AS span_end,"
            "  array_agg(DISTINCT sl.entity) AS entities,"
            "  coalesce(jsonb_agg(jsonb_build_object('slice_id', sl.slice_id,"
            "   'entity', sl.entity, 'status', sl.status,"
            "   'start', extract(epoch FROM sl.window_start)::bigint,"
            "   'end', extract(epoch FROM sl.window_end)::bigint))"
            "   FILTER (WHERE sl.status <> 'done'), '[]') AS open_slices"
            "  FROM {s}.slices sl WHERE sl.job_id = j.job_id) w"
            " WHERE j.dataset = %s AND w.span_start IS NOT NULL AND w.span_end IS NOT NULL"
            " ORDER BY w.span_end",
            (dataset,),
        )

    async def reopen(self, job_id: str, *, retry_failed: bool) -> list[str]:
        """Cancelled (and, when asked, failed) slices back to pending; the slices to enqueue.

        Cursors, counts and attempts are kept, so each slice continues where its last
        confirmed page left it. The job is running again if anything is left to do.
        """
        reset = ["cancelled", "failed"] if retry_failed else ["cancelled"]
        await self.rows(
            "UPDATE {s}.slices SET status = 'pending', worker = NULL, lease_expires = NULL,"
            " updated_at = now() WHERE job_id = %s AND status = ANY(%s)",
            (job_id, reset),
        )
        todo = await self.rows(
            "SELECT slice_id FROM {s}.slices WHERE job_id = %s"
            " AND status IN ('pending', 'running') ORDER BY seq",
            (job_id,),
        )
        if todo:
            await self.rows(
                "UPDATE {s}.jobs SET status = 'running', finished_at = NULL,"
                " end_published_at = NULL, updated_at = now() WHERE job_id = %s",
                (job_id,),
            )
        return [row["slice_id"] for row in todo]

    async def request_cancel(self, job_id: str) -> str:
        """Ask workers to stop the job between pages; pending and orphaned slices stop now."""
        await self.rows(
            "UPDATE {s}.jobs SET status = 'cancelling', updated_at = now()"
            " WHERE job_id = %s AND status = 'running'",
            (job_id,),
        )
        await self.rows(
            "UPDATE {s}.slices SET status = 'cancelled', worker = NULL, lease_expires = NULL,"
            " updated_at = now() WHERE job_id = %s AND (status = 'pending'"
            " OR (status = 'running' AND lease_expires < clock_timestamp()))",
            (job_id,),
        )
        return (await self.require_job(job_id)).status

    async def complete_job(self, job_id: str) -> str | None:
        """Make the job terminal if every slice is; the new status, or None (not this call)."""
        found = await self.row(
            "UPDATE {s}.jobs SET status = CASE"
            "  WHEN status = 'cancelling' THEN 'cancelled'"
            "  WHEN EXISTS (SELECT 1 FROM {s}.slices WHERE job_id = %(j)s AND status = 'failed')"
            "   THEN 'failed'"
            "  WHEN EXISTS (SELECT 1 FROM {s}.slices WHERE job_id = %(j)s"
            "   AND status = 'cancelled') THEN 'cancelled'"
            "  ELSE 'done' END, finished_at = now(), updated_at = now()"
            " WHERE job_id = %(j)s AND status IN ('running', 'cancelling') AND NOT EXISTS"
            " (SELECT 1 FROM {s}.slices WHERE job_id = %(j)s"
            "  AND status NOT IN ('done', 'failed', 'cancelled'))"
            " RETURNING status",
            {"j": job_id},
        )
        return found["status"] if found else None

    async def mark_end_published(self, job_id: str) -> None:
        await self.rows("UPDATE {s}.jobs SET end_published_at = now() WHERE job_id = %s", (job_id,))

    async def save_options(self, job_id: str, options: dict[str, Any]) -> None:
        await self.rows(
            "UPDATE {s}.jobs SET options = %s WHERE job_id = %s", (Jsonb(options), job_id)
        )

    async def save_estimate(self, job_id: str, estimate: dict[str, Any]) -> None:
        await self.rows(
            "UPDATE {s}.jobs SET estimate = %s WHERE job_id = %s", (Jsonb(estimate), job_id)
        )


async def _connect_error(conninfo: str) -> str | None:
    """Why a connection fails, in one line (the pool only says it timed out)."""
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, connect_timeout=5)
    except psycopg.OperationalError as exc:
        return str(exc).strip().splitlines()[0]
    await conn.close()
    return None


@asynccontextmanager
async def open_ledger(settings: ExtractorSettings) -> AsyncIterator[Ledger]:
    """A pool on the ledger database, with the schema created; closed on exit."""
    pg = settings.postgres
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        pg.conninfo,
        min_size=1,
        max_size=max(pg.postgres_pool_max, 2),
        kwargs={"autocommit": True},
        open=False,
        name="extractor-ledger",
    )
    try:
        await pool.open(wait=True, timeout=15.0)
    except PoolTimeout as exc:
        cause = await _connect_error(pg.conninfo) or str(exc)
        raise Unreachable(f"cannot reach the ledger database {pg.redacted()}: {cause}") from exc
    try:
        ledger = Ledger(pool, settings.extractor_ledger_schema)

        async def prepare() -> None:
            async with pool.connection() as conn:
                await create_ledger(conn, ledger.schema)

        # PostgreSQL restarting now (e.g. as a job ends, before its report) is waited for.
        await retry_transient(
            prepare,
            retryable,
            backoff=LEDGER_BACKOFF,
            what="ledger schema",
        )
        yield ledger
    finally:
        await pool.close()
