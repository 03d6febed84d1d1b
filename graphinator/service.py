"""Wiring: driver, constraints, sink, batch processor."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from neo4j import AsyncGraphDatabase

from common.consumer import consume
from common.resilience import retry_transient, unless_stopped
from common.settings import GraphinatorSettings
from common.spec import load_spec
from graphinator.cypher import node_keys
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
        sink = Neo4jSink(driver, spec, n4j.neo4j_database)
        constraints = retry_transient(
            sink.create_constraints, sink.is_transient, what="create constraints"
        )
        await unless_stopped(constraints, stop)
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
