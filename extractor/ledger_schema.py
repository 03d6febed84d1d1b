"""The ledger's tables: jobs, their slices, and each job's shared rate limit.

Idempotent DDL, run under an advisory lock so that several extractor processes starting at
once do not race on ``CREATE TABLE IF NOT EXISTS``.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

DDL_LOCK_KEY = 0x6261636B66696C6C  # "backfill"

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
)


def statements(schema: str) -> list[sql.Composed]:
    """The DDL with the schema name quoted in."""
    return [sql.SQL(text).format(s=sql.Identifier(schema)) for text in STATEMENTS]


async def create_ledger(conn: psycopg.AsyncConnection[Any], schema: str) -> None:
    """Create the schema and tables if missing (safe to run from many processes at once)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
        for statement in statements(schema):
            await conn.execute(statement)
