"""Wiring: pool, tables, sink, batch processor."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from psycopg_pool import AsyncConnectionPool

from common import postgres
from common.consumer import consume
from common.resilience import retry_transient, unless_stopped
from common.settings import TableinatorSettings
from common.spec import load_spec
from tableinator.sink import PostgresSink, prepare_database, stage_configurer

SERVICE = "tableinator"


log = logging.getLogger(__name__)


async def run(settings: TableinatorSettings, stop: asyncio.Event) -> None:
    """Run tableinator until ``stop`` is set; shutdown is the reverse of startup."""
    spec = load_spec(settings.dataset.dataset_spec)
    pg = settings.postgres
    log.info("starting service=%s dataset=%s postgres=%s", SERVICE, spec.name, pg.redacted())
    async with AsyncExitStack() as stack:
        pool = AsyncConnectionPool(
            pg.conninfo,
            min_size=pg.postgres_pool_min,
            max_size=pg.postgres_pool_max,
            open=False,
            configure=stage_configurer(spec),
            reconnect_timeout=0,
            name=SERVICE,
        )
        await pool.open(wait=False)
        stack.push_async_callback(pool.close)

        async def prepare() -> None:
            async with pool.connection() as conn:
                await prepare_database(conn, spec, pg.postgres_schema)

        tables = retry_transient(prepare, postgres.retryable, what="create tables")
        await unless_stopped(tables, stop)
        sink = PostgresSink(
            pool, spec, pg.postgres_schema, bulk_load=pg.postgres_bulk_load, service=SERVICE
        )
        await consume(
            service=SERVICE,
            spec=spec,
            sink=sink,
            amqp=settings.amqp,
            batch=settings.batch,
            observability=settings.observability,
            stop=stop,
            stack=stack,
        )
