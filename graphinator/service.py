"""Wiring: driver, constraints (or a bulk load's staging files), sink, batch processor."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from neo4j import AsyncDriver, AsyncGraphDatabase

from common.consumer import consume
from common.outcomes import Outcome
from common.resilience import retry_transient, unless_stopped
from common.settings import GraphinatorSettings
from common.sink import Sink
from common.spec import DatasetSpec, load_spec
from graphinator.bulk import BulkSink
from graphinator.bulk_state import bulk_mode, locked
from graphinator.cypher import node_keys
from graphinator.errors import classify
from graphinator.sink import Neo4jSink

SERVICE = "graphinator"
log = logging.getLogger(__name__)


async def run(settings: GraphinatorSettings, stop: asyncio.Event) -> None:
    """Run graphinator until ``stop`` is set; shutdown is the reverse of startup."""
    spec = load_spec(settings.dataset.dataset_spec)
    node_keys(spec)  # refuse a label keyed two ways before connecting anywhere
    n4j = settings.neo4j
    log.info("starting service=%s dataset=%s neo4j=%s", SERVICE, spec.name, n4j.neo4j_address)
    async with AsyncExitStack() as stack:
        driver = AsyncGraphDatabase.driver(
            n4j.neo4j_address, auth=n4j.auth, max_connection_pool_size=n4j.neo4j_pool_max
        )
        stack.push_async_callback(driver.close)
        sink = await unless_stopped(_sink(settings, spec, driver, stack), stop)
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


async def _sink(
    settings: GraphinatorSettings, spec: DatasetSpec, driver: AsyncDriver, stack: AsyncExitStack
) -> Sink:
    """The MERGE sink with its constraints, or (GRAPHINATOR_BULK_LOAD) the staging files."""
    database = settings.neo4j.neo4j_database
    root = settings.bulk.directory
    if settings.bulk.graphinator_bulk_load:
        stack.enter_context(locked(root, "this graphinator"))
        is_bulk = await retry_transient(
            lambda: bulk_mode(driver, database, root, spec.name),
            lambda exc: classify(exc) is Outcome.RETRY,
            what="check the graph is empty",
        )
        if is_bulk:
            bulk = BulkSink(spec, root / "staging")
            stack.callback(bulk.close)
            return bulk
    sink = Neo4jSink(driver, spec, database)
    await retry_transient(sink.create_constraints, sink.is_transient, what="create constraints")
    return sink
