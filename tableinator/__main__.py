"""``tableinator``: consume page batches and upsert them into PostgreSQL."""

from __future__ import annotations

import signal
import sys

DESCRIPTION = """\
Consume page batches from RabbitMQ and upsert them into PostgreSQL: each batch is COPied
into a temp table and merged with one INSERT .. ON CONFLICT that rewrites only changed rows;
a message is acked only after its records are committed. Configured by environment
variables (the README has the table): AMQP_CONNECTION, POSTGRES_ADDRESS, POSTGRES_USERNAME,
POSTGRES_PASSWORD[_FILE], POSTGRES_DATABASE, POSTGRES_SCHEMA, POSTGRES_BATCH_SIZE,
POSTGRES_BATCH_FLUSH_INTERVAL, POSTGRES_PREFETCH, POSTGRES_MAX_PENDING, DATASET_SPEC,
METRICS_HOST, METRICS_PORT. SIGTERM drains: held records are flushed and acked, exit 0.
"""


def main(argv: list[str] | None = None) -> None:
    # A SIGTERM while the imports below run (about a second) finds nothing held: exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from common.consumer import service_main
    from common.settings import TableinatorSettings
    from tableinator.service import run

    service_main("tableinator", DESCRIPTION, TableinatorSettings, run, argv)


if __name__ == "__main__":
    main()
