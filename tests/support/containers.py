"""Start RabbitMQ, PostgreSQL and Neo4j with testcontainers where a Docker engine exists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager


@contextmanager
def started() -> Iterator[dict[str, str]]:
    """The three services in containers; yields the environment that points at them."""
    from testcontainers.neo4j import Neo4jContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with ExitStack() as stack:
        rabbit = stack.enter_context(RabbitMqContainer("rabbitmq:3.13"))
        postgres = stack.enter_context(
            PostgresContainer(
                "postgres:16", username="backfill", password="backfill", dbname="backfill"
            )
        )
        neo4j = stack.enter_context(
            Neo4jContainer("neo4j:5.26-community", password="backfill-password")
        )
        yield {
            "AMQP_CONNECTION": (
                f"amqp://guest:guest@{rabbit.get_container_host_ip()}:"
                f"{rabbit.get_exposed_port(5672)}/"
            ),
            "POSTGRES_ADDRESS": (
                f"{postgres.get_container_host_ip()}:{postgres.get_exposed_port(5432)}"
            ),
            "NEO4J_ADDRESS": neo4j.get_connection_url(),
        }
