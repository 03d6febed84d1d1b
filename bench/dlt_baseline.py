"""The peer of the source-to-PostgreSQL figure: dlt's ``rest_api`` source over the demo API's
``/offset.json`` (``OffsetPaginator``, merge on ``id``) into a PostgreSQL schema of its own."""

from __future__ import annotations

import os
import tempfile
import time
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from bench.harness.measure import Measurement

if TYPE_CHECKING:
    from dlt.sources.rest_api.typing import RESTAPIConfig

DLT_CREDENTIALS = "postgresql://backfill:backfill@127.0.0.1:5432/backfill"
DLT_DATASET = "bench_dlt"
DLT_TABLE = "replays"
DLT_PAGE_SIZE = 500  # the demo API's largest page, dlt's best case


def rest_api_config(base_url: str, limit: int = DLT_PAGE_SIZE) -> RESTAPIConfig:
    """The ``rest_api`` source over the offset endpoint: items in ``items``, ``total``."""
    from dlt.sources.helpers.rest_client.paginators import OffsetPaginator

    return {
        "client": {
            "base_url": base_url,
            "paginator": OffsetPaginator(limit=limit, total_path="total"),
        },
        "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
        "resources": [
            {
                "name": DLT_TABLE,
                "endpoint": {"path": "offset.json", "data_selector": "items"},
            }
        ],
    }


def drop_dataset(conninfo: str, schema: str) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def count_rows(conninfo: str, schema: str, table: str) -> int:
    """Rows in ``schema.table`` (0 if it is not there)."""
    query = sql.SQL("SELECT count(*) FROM {}.{}").format(
        sql.Identifier(schema), sql.Identifier(table)
    )
    with psycopg.connect(conninfo) as conn:
        try:
            row = conn.execute(query).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def run_dlt(base_url: str, schema: str = DLT_DATASET, limit: int = DLT_PAGE_SIZE) -> Measurement:
    """One dlt run from an empty schema: extract, normalize and load, timed whole."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    drop_dataset(DLT_CREDENTIALS, schema)
    with tempfile.TemporaryDirectory(prefix="bench-dlt-") as pipelines_dir:
        pipeline = dlt.pipeline(
            pipeline_name="bench_e2e",
            pipelines_dir=pipelines_dir,
            destination=dlt.destinations.postgres(credentials=DLT_CREDENTIALS),
            dataset_name=schema,
        )
        # Nested lists (players) stay JSON in the one table, as in the project's table.
        source = rest_api_source(rest_api_config(base_url, limit), max_table_nesting=0)
        started = time.perf_counter()
        pipeline.run(source)
        seconds = time.perf_counter() - started
    rows = count_rows(DLT_CREDENTIALS, schema, DLT_TABLE)
    details = {"page_size": limit, "dlt": dlt.__version__, "schema": schema}
    return Measurement("dlt", "dlt rest_api -> postgres (merge)", rows, seconds, details=details)
