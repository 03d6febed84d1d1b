"""Running a consumer service: broker channel, metrics endpoint, signals, batch processor."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable
from contextlib import AsyncExitStack
from typing import Any, Protocol

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from common.amqp import robust_channel
from common.batch import BatchProcessor
from common.errors import ConfigError
from common.metrics import serve_metrics
from common.outcomes import StopConsumer
from common.resilience import Stopped, unless_stopped
from common.settings import (
    AmqpSettings,
    ConsumerSettings,
    DatasetSettings,
    ObservabilitySettings,
)
from common.sink import Sink
from common.spec import DatasetSpec
from common.topology import Topology

log = logging.getLogger(__name__)
GC_GEN0_THRESHOLD = 50_000


def stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT ask the service to drain and exit 0."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


async def consume(
    *,
    service: str,
    spec: DatasetSpec,
    sink: Sink,
    amqp: AmqpSettings,
    batch: ConsumerSettings,
    observability: ObservabilitySettings,
    stop: asyncio.Event,
    stack: AsyncExitStack,
) -> None:
    """Consume the dataset's queues into ``sink`` until ``stop`` is set, then drain."""
    connection, channel = await unless_stopped(
        stack.enter_async_context(robust_channel(amqp.url, prefetch=batch.prefetch, name=service)),
        stop,
    )
    port = await stack.enter_async_context(
        serve_metrics(observability, healthy=lambda: not connection.is_closed)
    )
    if port is not None:
        log.info("metrics and health on http://%s:%s", observability.metrics_host, port)
    tune_garbage_collector()
    processor = BatchProcessor(
        service=service,
        spec=spec,
        sink=sink,
        channel=channel,
        settings=batch,
        topology=Topology(amqp.amqp_exchange),
    )
    await processor.run(stop)


def tune_garbage_collector() -> None:
    """Fewer cyclic collections: records are acyclic dicts and lists that reference
    counting frees, yet every page allocates thousands of them, and with the default
    thresholds the collector ran often enough to take ~40% of the per-record CPU time.
    Objects alive after start-up (modules, clients) are frozen out of later collections."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 50)


def configure_logging(level: str) -> None:
    """One line per event: time, level, logger, message with key=value pairs."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("neo4j").setLevel(logging.WARNING)


class _Runnable(Protocol):
    def __call__(self, settings: Any, stop: asyncio.Event) -> Awaitable[None]: ...


EXIT_CODES = """\
A store or RabbitMQ that is down is waited for (with backoff), until SIGTERM.
Exit codes: 0 stopped by SIGTERM/SIGINT (what it held is flushed and acked); 1 stopped on an
error it cannot retry (a bug, a store error that is not about a record: nothing it held is
acked, RabbitMQ redelivers it once the consumer runs again); 2 a bad spec or setting.
"""


def service_main(
    prog: str,
    description: str,
    settings_type: type[BaseSettings],
    run: _Runnable,
    argv: list[str] | None = None,
) -> None:
    """The command line of a consumer: --help, --spec, signals, a clear exit on bad config."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--spec",
        help="dataset spec: a YAML path or a bundled name (default: $DATASET_SPEC or demo)",
    )
    args = parser.parse_args(argv)
    try:
        settings: Any = settings_type()
        if args.spec:
            settings = settings.model_copy(
                update={"dataset": DatasetSettings(dataset_spec=args.spec)}
            )
        configure_logging(settings.observability.log_level)
        asyncio.run(_until_signalled(settings, run))
    except (ConfigError, ValidationError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        sys.exit(2)
    except StopConsumer as exc:
        sys.exit(f"{prog}: {exc}")


async def _until_signalled(settings: Any, run: _Runnable) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    try:
        await run(settings, stop)
    except Stopped:
        log.info("stopped before consuming anything")
