"""``extractor``: plan and run backfill jobs."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from pathlib import Path

import orjson
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from common.consumer import configure_logging
from common.errors import ConfigError
from common.settings import DatasetSettings, ExtractorSettings
from common.spec import load_spec
from extractor.backfill import JobOptions, plan, run_backfill
from extractor.report import print_report

DESCRIPTION = """\
The backfill driver. Plans a dataset's date range into slices (e.g. one per day), fetches
their pages concurrently under one adaptive rate limit (retries with backoff and jitter,
Retry-After honoured), and publishes each page to RabbitMQ with publisher confirms for
tableinator (PostgreSQL) and graphinator (Neo4j). Connections come from environment
variables (the README has the table): AMQP_CONNECTION, DATASET_SPEC,
EXTRACTOR_SOURCE_URL, EXTRACTOR_CONCURRENCY, EXTRACTOR_MAX_RETRIES, timeouts.
"""


def _date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extractor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--spec", help="dataset spec: a YAML path or a bundled name (default demo)")
    common.add_argument("--start", type=_date, help="first day of the range (default: the spec's)")
    common.add_argument(
        "--end", type=_date, help="end of the range, exclusive (default: the spec's)"
    )
    common.add_argument("--source-url", help="override the spec's base URL (EXTRACTOR_SOURCE_URL)")
    run = commands.add_parser("run", parents=[common], help="fetch and publish a whole job")
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="exit once everything is published, without waiting for the stores",
    )
    run.add_argument(
        "--wait-timeout",
        type=float,
        default=3600.0,
        help="seconds to wait for both stores to finalise (default 3600)",
    )
    run.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    commands.add_parser("plan", parents=[common], help="dry run: print the slices, publish nothing")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = ExtractorSettings()
        updates: dict[str, object] = {}
        if args.spec:
            updates["dataset"] = DatasetSettings(dataset_spec=args.spec)
        if args.source_url:
            updates["extractor_source_url"] = args.source_url
        settings = settings.model_copy(update=updates)
        configure_logging(settings.observability.log_level)
        options = JobOptions(
            start=args.start,
            end=args.end,
            wait=getattr(args, "wait", True),
            wait_timeout=getattr(args, "wait_timeout", 3600.0),
        )
        sys.exit(
            _run(args, settings, options) if args.command == "run" else _plan(settings, options)
        )
    except (ConfigError, ValidationError) as exc:
        sys.exit(f"extractor: {exc}")


def _run(args: argparse.Namespace, settings: ExtractorSettings, options: JobOptions) -> int:
    console = Console(stderr=True)
    report = asyncio.run(run_backfill(settings, options, console))
    print_report(report, Console())
    if args.report_json:
        args.report_json.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
    return 0 if report.ok else 1


def _plan(settings: ExtractorSettings, options: JobOptions) -> int:
    spec = load_spec(settings.dataset.dataset_spec)
    slices = plan(spec, options)
    table = Table(title=f"{spec.name}: {len(slices)} slices (dry run, nothing published)")
    for column in ("slice", "from", "to"):
        table.add_column(column)
    for item in slices:
        start = item.window.start
        end = item.window.end
        table.add_row(item.slice_id, _iso(start), _iso(end))
    Console().print(table)
    return 0


def _iso(ts: int | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


if __name__ == "__main__":
    main()
