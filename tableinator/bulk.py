"""Bulk-load mode: secondary indexes dropped while a job loads, rebuilt at its end.

The state lives in a table, not in the process, so a consumer that restarts mid-job
neither rebuilds the indexes too early nor forgets to rebuild them: the end-of-job message
is acked only after the rebuild and ANALYZE have committed.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection, sql

from common.spec import TableSpec
from tableinator import schema

STATE_TABLE = "backfill_bulk_load"


def create_state_table(db_schema: str) -> sql.Composed:
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (table_name text, job_id text, state text NOT NULL,"
        " updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, job_id))"
    ).format(sql.Identifier(db_schema, STATE_TABLE))


async def _lock(conn: AsyncConnection[Any], db_schema: str, table: TableSpec) -> None:
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"bulk:{db_schema}.{table.name}",)
    )


async def loading(conn: AsyncConnection[Any], db_schema: str, table: TableSpec) -> bool:
    """Whether some job is bulk-loading the table (its indexes must stay dropped)."""
    cur = await conn.execute(
        sql.SQL("SELECT 1 FROM {} WHERE table_name = %s AND state = 'loading' LIMIT 1").format(
            sql.Identifier(db_schema, STATE_TABLE)
        ),
        (table.name,),
    )
    return await cur.fetchone() is not None


async def begin(conn: AsyncConnection[Any], db_schema: str, table: TableSpec, job_id: str) -> None:
    """Drop the table's secondary indexes for this job, once (idempotent across restarts)."""
    await _lock(conn, db_schema, table)
    state = sql.Identifier(db_schema, STATE_TABLE)
    cur = await conn.execute(
        sql.SQL(
            "INSERT INTO {} (table_name, job_id, state) VALUES (%s, %s, 'loading')"
            " ON CONFLICT DO NOTHING"
        ).format(state),
        (table.name, job_id),
    )
    if cur.rowcount == 1:
        for column in table.indexes:
            await conn.execute(
                sql.SQL("DROP INDEX IF EXISTS {}").format(
                    sql.Identifier(db_schema, schema.index_name(table, column))
                )
            )
    await conn.commit()


async def finish(conn: AsyncConnection[Any], db_schema: str, table: TableSpec, job_id: str) -> None:
    """Rebuild the indexes and ANALYZE, then mark the job's load done."""
    await _lock(conn, db_schema, table)
    await conn.execute(
        sql.SQL(
            "UPDATE {} SET state = 'done', updated_at = now() WHERE table_name = %s AND job_id = %s"
        ).format(sql.Identifier(db_schema, STATE_TABLE)),
        (table.name, job_id),
    )
    for statement in schema.create_indexes(db_schema, table):
        await conn.execute(statement)
    await conn.commit()
    await conn.execute(sql.SQL("ANALYZE {}").format(schema.table_ident(db_schema, table)))
    await conn.commit()
