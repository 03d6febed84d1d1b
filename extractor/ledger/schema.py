"""The ledger's tables: jobs, their slices, each job's shared rate limit, its throughput
per second and the consumers' end-of-job events.

Idempotent DDL, run under the services' one DDL lock so that processes starting at once
do not race on ``CREATE TABLE IF NOT EXISTS``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from common.postgres import lock_ddl

TERMINAL = ("done", "failed", "cancelled")

STATEMENTS = (
    "CREATE SCHEMA IF NOT EXISTS {s}",
    """
    CREATE TABLE IF NOT EXISTS {s}.jobs (
        job_id text PRIMARY KEY,
        dataset text NOT NULL,
        spec text NOT NULL,
        spec_body jsonb NOT NULL,
        options jsonb NOT NULL DEFAULT '{{}}',
        estimate jsonb,
        status text NOT NULL DEFAULT 'running'
            CHECK (status IN ('running', 'cancelling', 'done', 'failed', 'cancelled')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        end_published_at timestamptz
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS {s}.slices (
        job_id text NOT NULL REFERENCES {s}.jobs ON DELETE CASCADE,
        slice_id text NOT NULL,
        seq integer NOT NULL,
        entity text NOT NULL,
        window_start timestamptz,
        window_end timestamptz,
        file text,
        file_stats jsonb,
        status text NOT NULL DEFAULT 'pending'
            CHECK (status IN ('pending', 'running', 'done', 'failed', 'cancelled')),
        cursor jsonb,
        next_page integer NOT NULL DEFAULT 0,
        pages bigint NOT NULL DEFAULT 0,
        records bigint NOT NULL DEFAULT 0,
        attempts integer NOT NULL DEFAULT 0,
        errors jsonb NOT NULL DEFAULT '{{}}',
        last_error text,
        error_kind text,
        worker text,
        lease_expires timestamptz,
        started_at timestamptz,
        finished_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job_id, slice_id)
    )
    """,
    # Ledgers made before dump jobs: a dump slice's file and its reader's stats.
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS file text",
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS file_stats jsonb",
    # Ledgers made before slices were served by size: the estimate's records of each slice.
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS expected_records bigint",
    # Ledgers made before detail entities: the details a slice's checkpointed pages carried
    # (published pages and records of its entity's detail entity, details that answered 404).
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS detail_pages bigint NOT NULL DEFAULT 0",
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS detail_records bigint NOT NULL DEFAULT 0",
    "ALTER TABLE {s}.slices ADD COLUMN IF NOT EXISTS detail_missing bigint NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS slices_worker ON {s}.slices (worker) WHERE worker IS NOT NULL",
    """
    CREATE TABLE IF NOT EXISTS {s}.rate_limits (
        job_id text PRIMARY KEY REFERENCES {s}.jobs ON DELETE CASCADE,
        rate double precision NOT NULL,
        minimum double precision NOT NULL,
        maximum double precision NOT NULL,
        burst_seconds double precision NOT NULL,
        increase_every integer NOT NULL,
        increase_factor double precision NOT NULL,
        increase_step double precision NOT NULL,
        tokens double precision NOT NULL DEFAULT 1,
        refilled_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        paused_until timestamptz NOT NULL DEFAULT '-infinity',
        epoch bigint NOT NULL DEFAULT 0,
        healthy integer NOT NULL DEFAULT 0,
        throttled bigint NOT NULL DEFAULT 0
    )
    """,
    # Ledgers made before the report's chart: pages and records confirmed per slice and
    # second, counted by a trigger on the checkpoint's UPDATE (no extra round trip).
    """
    CREATE TABLE IF NOT EXISTS {s}.throughput (
        job_id text NOT NULL REFERENCES {s}.jobs ON DELETE CASCADE,
        slice_id text NOT NULL,
        second timestamptz NOT NULL,
        pages integer NOT NULL DEFAULT 0,
        records bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (job_id, slice_id, second)
    )
    """,
    """
    CREATE OR REPLACE FUNCTION {s}.count_throughput() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.throughput AS t (job_id, slice_id, second, pages, records)
        VALUES (NEW.job_id, NEW.slice_id, date_trunc('second', clock_timestamp()),
                NEW.pages - OLD.pages, NEW.records - OLD.records)
        ON CONFLICT (job_id, slice_id, second) DO UPDATE
            SET pages = t.pages + EXCLUDED.pages, records = t.records + EXCLUDED.records;
        RETURN NULL;
    END $$
    """,
    # Created only if missing: CREATE OR REPLACE TRIGGER would lock the slices table
    # against the workers' checkpoints every time a CLI command opens the ledger.
    """
    DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'slices_throughput'
                       AND tgrelid = '{s}.slices'::regclass) THEN
            CREATE TRIGGER slices_throughput AFTER UPDATE OF pages ON {s}.slices
                FOR EACH ROW WHEN (NEW.pages > OLD.pages)
                EXECUTE FUNCTION {s}.count_throughput();
        END IF;
    END $$
    """,
    # Consumer queues over EXTRACTOR_MAX_QUEUE_DEPTH that hold a job's fetching back, as the
    # workers last saw them (a row not refreshed for a while is over: its worker is gone).
    """
    CREATE TABLE IF NOT EXISTS {s}.holds (
        job_id text NOT NULL REFERENCES {s}.jobs ON DELETE CASCADE,
        worker text NOT NULL,
        entity text NOT NULL,
        consumer text NOT NULL,
        queue text NOT NULL,
        ready bigint NOT NULL,
        queue_limit bigint NOT NULL,
        consumers integer NOT NULL,
        since timestamptz NOT NULL,
        seen_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (job_id, worker, entity)
    )
    """,
    # Tokens of the statements that must not apply twice (increments: the shared rate
    # limit's lease and throttle), so that a retry after a lost answer finds its first
    # attempt committed (Ledger.rows_once); old tokens are deleted as new ones come.
    """
    CREATE TABLE IF NOT EXISTS {s}.applied_writes (
        token uuid PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    # What each consumer reported when it finalised the job (for `extractor report JOB`).
    """
    CREATE TABLE IF NOT EXISTS {s}.job_events (
        job_id text NOT NULL REFERENCES {s}.jobs ON DELETE CASCADE,
        service text NOT NULL,
        entity text NOT NULL,
        event jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (job_id, service, entity)
    )
    """,
)


def statements(schema: str) -> list[sql.Composed]:
    """The DDL with the schema name quoted in."""
    return [sql.SQL(text).format(s=sql.Identifier(schema)) for text in STATEMENTS]


async def create_ledger(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    """Create the schema and tables if missing (safe to run from many processes at once,
    and beside tableinator creating its tables in the same schema: one DDL lock)."""
    async with conn.transaction():
        await lock_ddl(conn)
        for statement in statements(schema):
            await conn.execute(statement)
