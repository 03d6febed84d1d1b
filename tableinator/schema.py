"""DDL for the entity tables, built with psycopg.sql from validated spec names."""

from __future__ import annotations

from psycopg import sql

from common.spec import TableSpec

STAGE_PREFIX = "_stage_"


def table_ident(schema: str, table: TableSpec) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table.name))


def create_table(schema: str, table: TableSpec, key_type: str) -> sql.Composed:
    """The entity table: key, content hash, JSONB document, typed columns, updated_at."""
    typed = [
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(column.type))
        for name, column in table.columns.items()
    ]
    columns = sql.SQL(", ").join(
        [
            sql.SQL("key {} PRIMARY KEY").format(sql.SQL(key_type)),
            sql.SQL("content_hash bytea NOT NULL"),
            sql.SQL("doc jsonb NOT NULL"),
            *typed,
            sql.SQL("updated_at timestamptz NOT NULL DEFAULT now()"),
        ]
    )
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(table_ident(schema, table), columns)


def index_name(table: TableSpec, column: str) -> str:
    return f"{table.name}_{column}_idx"[:63]


def create_indexes(schema: str, table: TableSpec) -> list[sql.Composed]:
    """One btree index per declared secondary index column."""
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({})").format(
            sql.Identifier(index_name(table, column)),
            table_ident(schema, table),
            sql.Identifier(column),
        )
        for column in table.indexes
    ]


def create_stage(table: TableSpec, key_type: str) -> sql.Composed:
    """The per-connection temp table a batch is COPied into; emptied at commit."""
    return sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} (key {}, content_hash bytea, doc jsonb)"
        " ON COMMIT DELETE ROWS"
    ).format(sql.Identifier(STAGE_PREFIX + table.name), sql.SQL(key_type))
