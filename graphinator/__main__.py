"""``graphinator``: consume page batches and MERGE them into Neo4j."""

from __future__ import annotations

import signal
import sys

DESCRIPTION = """\
Consume page batches from RabbitMQ and MERGE them into Neo4j as nodes and relationships,
following the dataset spec's graph mapping: one UNWIND per label and relationship type per
batch, in one managed transaction; unchanged records are skipped by content hash; a message
is acked only after its records are committed. Configured by environment variables (the
README has the table): AMQP_CONNECTION, NEO4J_ADDRESS, NEO4J_USERNAME,
NEO4J_PASSWORD[_FILE], NEO4J_DATABASE, NEO4J_BATCH_SIZE, NEO4J_BATCH_FLUSH_INTERVAL,
NEO4J_PREFETCH, NEO4J_MAX_PENDING, DATASET_SPEC, METRICS_HOST, METRICS_PORT.
SIGTERM drains: held records are flushed and acked, then the process exits 0.

GRAPHINATOR_BULK_LOAD=true (first load into an empty database): write CSV files under
GRAPHINATOR_BULK_DIR instead, and import them at end of job with
`python -m graphinator bulk-import` (see its --help). A non-empty database exits 2.
"""


def main(argv: list[str] | None = None) -> None:
    # A SIGTERM while the imports below run (about a second) finds nothing held: exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["bulk-import"]:
        from graphinator import bulk_cli

        bulk_cli.main(args[1:])
        return
    from common.consumer import service_main
    from common.settings import GraphinatorSettings
    from graphinator.bulk_state import BulkRefused
    from graphinator.service import run

    try:
        service_main("graphinator", DESCRIPTION, GraphinatorSettings, run, argv)
    except BulkRefused as exc:
        print(f"graphinator: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
