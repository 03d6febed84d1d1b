"""The PostgreSQL write path: COPY a batch into a temp table, then one upsert.

A batch whose records are all new (the stored-hash lookup finds none of their keys) is
COPied straight into the table instead (tableinator.direct); a unique violation (another
writer got there first) or a value that does not cast sends it to the upsert, which
handles both.

The upsert only rewrites rows whose content hash changed, so re-running unchanged data
costs no row writes. Typed columns are cast from the JSONB document inside PostgreSQL; a
value that does not cast fails its batch, which the batch processor splits to dead-letter
just that record.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import orjson
from psycopg import AsyncConnection, AsyncCursor, sql
from psycopg_pool import AsyncConnectionPool

from common import metrics
from common.envelope import HASH_BYTES, EndOfJob
from common.errors import BadMessageError
from common.outcomes import Outcome
from common.paths import sql_path
from common.postgres import RECORD_ERRORS, classify, lock_ddl
from common.records import PreparedRecord
from common.sink import WriteResult
from common.spec import DatasetSpec, EntitySpec, TableSpec
from tableinator import bulk, schema
from tableinator.copy_text import encode_rows
from tableinator.direct import NotDirect, copy_statement, encode_direct_rows

log = logging.getLogger(__name__)

# An escaped NUL: backslash-u0000 after an even number of backslashes (JSON escapes).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class PostgresSink:
    """Upserts batches of one dataset's entities into their tables."""

    reads_docs = (
        False  # PostgreSQL reads the JSON text: records of keyed pages are never parsed here.
    )

    def __init__(
        self,
        pool: AsyncConnectionPool,
        spec: DatasetSpec,
        db_schema: str,
        *,
        bulk_load: bool = False,
        service: str = "tableinator",
    ) -> None:
        self.pool = pool
        self.spec = spec
        self.schema = db_schema
        self.bulk_load = bulk_load
        self.service = service
        tables = {name: e.table for name, e in spec.entities.items() if e.table is not None}
        self._upserts = {name: upsert_statement(db_schema, spec.entities[name]) for name in tables}
        self._lookups = {
            name: hash_lookup(db_schema, table, spec.entities[name].key_type)
            for name, table in tables.items()
        }
        self._copies = {
            name: sql.SQL("COPY {} (key, content_hash, doc) FROM STDIN").format(
                sql.Identifier(schema.STAGE_PREFIX + table.name)
            )
            for name, table in tables.items()
        }
        self._direct_copies = {
            name: copy_statement(db_schema, table) for name, table in tables.items()
        }

    def classify(self, exc: BaseException) -> Outcome:
        return classify(exc)

    def is_transient(self, exc: BaseException) -> bool:
        return classify(exc) is Outcome.RETRY

    async def begin_job(self, entity: str, job_id: str) -> None:
        table = self._table(entity)
        if self.bulk_load and table.indexes:
            async with self.pool.connection() as conn:
                await bulk.begin(conn, self.schema, table, job_id)

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        """Write the new and changed records: COPY them straight into the table if all are
        new, else COPY them into the stage and upsert them in one statement."""
        async with self.pool.connection() as conn, conn.cursor() as cur:
            fresh, existing = await self._new_or_changed(cur, entity, records)
            fresh, rejected = _without_nul(fresh)
            written = 0
            if fresh and not existing and await self._copy_direct(conn, cur, entity, fresh):
                written = len(fresh)
            elif fresh:
                async with cur.copy(self._copies[entity]) as copy:
                    await copy.write(encode_rows(fresh))
                await cur.execute(self._upserts[entity])
                written = max(cur.rowcount, 0)
        self._observe_pool()
        unchanged = len(records) - written - len(rejected)
        return WriteResult(written=written, unchanged=unchanged, rejected=rejected)

    async def _copy_direct(
        self,
        conn: AsyncConnection[Any],
        cur: AsyncCursor[Any],
        entity: str,
        records: list[PreparedRecord],
    ) -> bool:
        """COPY all-new records straight into the table (in a savepoint); False if the
        upsert must write them instead (a key another writer inserted, a bad value)."""
        try:
            rows = encode_direct_rows(self._table(entity), records)
        except (NotDirect, ValueError, UnicodeError):
            return False
        try:
            async with conn.transaction(), cur.copy(self._direct_copies[entity]) as copy:
                await copy.write(rows)
        except RECORD_ERRORS as exc:
            log.info(
                "direct copy falls back to upsert entity=%s size=%d error=%s",
                entity,
                len(records),
                type(exc).__name__,
            )
            return False
        return True

    async def _new_or_changed(
        self, cur: AsyncCursor[Any], entity: str, records: list[PreparedRecord]
    ) -> tuple[list[PreparedRecord], int]:
        """The records whose key is new or whose hash differs (one indexed lookup), and how
        many of them the table already holds."""
        keys = orjson.dumps([record.key for record in records]).decode()
        hashes = b"".join([record.hash for record in records])
        await cur.execute(self._lookups[entity], (keys, hashes))
        rows = await cur.fetchall()
        return [records[position - 1] for position, _ in rows], sum(held for _, held in rows)

    async def finalise(self, entity: str, end: EndOfJob) -> dict[str, Any]:
        table = self._table(entity)
        async with self.pool.connection() as conn:
            if self.bulk_load and table.indexes:
                await bulk.finish(conn, self.schema, table, end.job_id)
            cur = await conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(schema.table_ident(self.schema, table))
            )
            row = await cur.fetchone()
        return {"table": f"{self.schema}.{table.name}", "rows": row[0] if row else 0}

    def _table(self, entity: str) -> TableSpec:
        table = self.spec.entities[entity].table
        assert table is not None
        return table

    def _observe_pool(self) -> None:
        stats = self.pool.get_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        metrics.POOL_CONNECTIONS.labels(self.service, "max").set(self.pool.max_size)
        metrics.POOL_CONNECTIONS.labels(self.service, "open").set(size)
        metrics.POOL_CONNECTIONS.labels(self.service, "in_use").set(size - idle)
        metrics.POOL_CONNECTIONS.labels(self.service, "waiting").set(
            stats.get("requests_waiting", 0)
        )


def _without_nul(
    records: list[PreparedRecord],
) -> tuple[list[PreparedRecord], tuple[tuple[PreparedRecord, BadMessageError], ...]]:
    """PostgreSQL's jsonb and text cannot hold U+0000: such records are left out (and
    dead-lettered). Only new or changed records are looked at: the table holds none."""
    bad = [r for r in records if b"\\u0000" in r.json and _NUL_ESCAPE.search(r.json)]
    if not bad:
        return records, ()
    left_out = {id(record) for record in bad}
    return [r for r in records if id(r) not in left_out], tuple((r, _NUL_ERROR) for r in bad)


_NUL_ERROR = BadMessageError(
    "record contains U+0000 (NUL), which PostgreSQL cannot store in jsonb or text",
    code="nul_character",
)


def hash_lookup(db_schema: str, table: TableSpec, key_type: str) -> sql.Composed:
    """The positions (1-based) of a batch's records that are new or changed, each with 1 if
    the table holds its key (changed) and 0 if not (new).

    The keys travel as one JSON array and the 16-byte hashes as one bytea, and the store
    compares them: an unchanged batch returns no rows (adapting Python lists as arrays, or
    fetching every stored hash to compare in Python, costs more than the lookup itself).
    """
    return sql.SQL(
        "SELECT u.i, (t.key IS NOT NULL)::int"
        " FROM jsonb_array_elements_text(%s::jsonb) WITH ORDINALITY AS u(k, i)"
        " LEFT JOIN {} t ON t.key = u.k::{}"
        " WHERE t.content_hash IS DISTINCT FROM"
        " substring(%s::bytea FROM (u.i::int - 1) * {} + 1 FOR {})"
    ).format(
        schema.table_ident(db_schema, table),
        sql.SQL(key_type),
        sql.Literal(HASH_BYTES),
        sql.Literal(HASH_BYTES),
    )


def upsert_statement(db_schema: str, entity: EntitySpec) -> sql.Composed:
    """INSERT .. SELECT from the stage .. ON CONFLICT DO UPDATE .. WHERE the hash changed."""
    assert entity.table is not None
    table = entity.table
    typed = list(table.columns.items())
    names = [sql.Identifier(name) for name, _ in typed]
    casts = [
        sql.SQL("(doc #>> {})::{}").format(
            sql.Literal(sql_path(column.field)), sql.SQL(column.type)
        )
        if column.type != "jsonb"
        else sql.SQL("(doc #> {})").format(sql.Literal(sql_path(column.field)))
        for _, column in typed
    ]
    target = schema.table_ident(db_schema, table)
    updates = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(name))
        for name in ("content_hash", "doc", *(n for n, _ in typed), "updated_at")
    ]
    return sql.SQL(
        "INSERT INTO {target} AS t (key, content_hash, doc, {names}updated_at)"
        " SELECT key, content_hash, doc, {casts}now() FROM {stage}"
        " ON CONFLICT (key) DO UPDATE SET {updates}"
        " WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash"
    ).format(
        target=target,
        names=sql.SQL("").join(sql.SQL("{}, ").format(n) for n in names),
        casts=sql.SQL("").join(sql.SQL("{}, ").format(c) for c in casts),
        stage=sql.Identifier(schema.STAGE_PREFIX + table.name),
        updates=sql.SQL(", ").join(updates),
    )


async def prepare_database(conn: AsyncConnection[Any], spec: DatasetSpec, db_schema: str) -> None:
    """Create the schema, tables and indexes of a dataset (idempotent, safe from replicas)."""
    await lock_ddl(conn)
    await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(db_schema)))
    await conn.execute(bulk.create_state_table(db_schema))
    for entity in spec.entities.values():
        if entity.table is None:
            continue
        await conn.execute(schema.create_table(db_schema, entity.table, entity.key_type))
        if not await bulk.loading(conn, db_schema, entity.table):
            for statement in schema.create_indexes(db_schema, entity.table):
                await conn.execute(statement)
    await conn.commit()


def stage_configurer(spec: DatasetSpec) -> Any:
    """A pool ``configure`` callback creating each entity's temp stage table once per connection."""

    async def configure(conn: AsyncConnection[Any]) -> None:
        for entity in spec.entities.values():
            if entity.table is not None:
                await conn.execute(schema.create_stage(entity.table, entity.key_type))
        await conn.commit()

    return configure
