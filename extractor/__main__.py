"""``extractor``: plan, run, resume and inspect backfill jobs; run workers."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aio_pika.exceptions
import orjson
from pydantic import ValidationError
from rich.console import Console

from common.consumer import configure_logging, tune_garbage_collector
from common.errors import ConfigError, Unreachable
from common.settings import DatasetSettings, ExtractorSettings
from extractor import backfill, plan_cli
from extractor.backfill import Interrupted, JobOptions
from extractor.dlq import cli as dlq_cli
from extractor.incremental import parse_duration
from extractor.reporting.report import JobReport, print_report
from extractor.reporting.report_data import load_report
from extractor.reporting.report_file import default_path, print_sections, write_report
from extractor.reporting.views import print_ledger_report, print_status
from extractor.sources.preflight import SourceUnreachable

DESCRIPTION = """\
The backfill driver. Plans a dataset's date range into slices (e.g. one per day), or a dump
dataset's files into one slice per file, kept in a PostgreSQL ledger; puts one task per
slice on a RabbitMQ work queue, and runs workers that fetch pages under one adaptive rate
limit shared by every worker of the job (retries with backoff and jitter, Retry-After and
RateLimit-* honoured, a circuit breaker) or stream them from the files, publish each page
with publisher confirms, and checkpoint it once confirmed. Jobs can be resumed, retried,
cancelled and reported on. Settings come from environment variables (the README has the
table): AMQP_CONNECTION, POSTGRES_*, DATASET_SPEC, EXTRACTOR_*.

`run --since-last` (a scheduled, incremental run) goes from where the ledger's complete
coverage of the dataset ends (never past a failed or unfinished slice) to now; `plan
--since-last` shows that window. `plan` prints each slice's paginator and the params of
its first request.

Before planning (`run`) or estimating (`plan`), the source is asked once with no retry.
Exit codes: 0 done (or, with --since-last, nothing to do); 1 the job ended with failed
slices or a store did not report; 2 a configuration error (a bad spec or setting, or
401/403/404 on that first request); 3 the source did not answer (connection refused, DNS,
TLS, no answer in time), or the ledger database did not within 15 s; 130 interrupted
by SIGTERM/SIGINT (resumable with `extractor resume JOB`).
"""
EXIT_CONFIG = 2  # the spec or a setting is wrong (also 401/403/404 on the first request)
EXIT_UNREACHABLE = 3  # the source (its first request) or the ledger database did not answer
EXIT_INTERRUPTED = 130
LONG_RUNNING = frozenset({"run", "resume", "retry-failed", "worker"})
Command = Callable[[argparse.Namespace, ExtractorSettings], Coroutine[Any, Any, int]]


def _date(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or datetime: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _stores(value: str) -> tuple[str, ...]:
    stores = tuple(name.strip() for name in value.split(",") if name.strip())
    if not stores:
        raise argparse.ArgumentTypeError("name at least one store, e.g. tableinator")
    return stores


def _parents() -> dict[str, argparse.ArgumentParser]:
    """Option groups the subcommands share."""
    parents = {name: argparse.ArgumentParser(add_help=False) for name in PARENTS}
    scope, driving = parents["scope"], parents["driving"]
    parents["spec"].add_argument(
        "--spec", help="dataset spec: a YAML path or a bundled name (default demo)"
    )
    parents["url"].add_argument(
        "--source-url", help="the source's base URL instead of the spec's (EXTRACTOR_SOURCE_URL)"
    )
    parents["url"].add_argument(
        "--base-path",
        help="dumps: the directory of the files instead of the spec's (EXTRACTOR_DUMP_PATH)",
    )
    scope.add_argument(
        "--start",
        type=_date,
        help="first day of the range (default: the spec's; not with --since-last)",
    )
    scope.add_argument(
        "--end",
        type=_date,
        help="end of the range, exclusive (default: the spec's; with --since-last, now)",
    )
    _since_last_flags(scope)
    scope.add_argument("--no-estimate", action="store_true", help="do not ask the source for sizes")
    scope.add_argument(
        "--all-files",
        action="store_true",
        help="dumps: every file a glob matches, not only the newest dump date",
    )
    driving.add_argument(
        "--wait", action="store_true", help="wait for both stores to finalise (the default)"
    )
    driving.add_argument("--no-wait", action="store_true", help="do not wait for the stores")
    driving.add_argument(
        "--wait-timeout", type=float, default=3600.0, help="seconds to wait for the stores"
    )
    driving.add_argument(
        "--enqueue-only", action="store_true", help="leave the work to `extractor worker`s"
    )
    driving.add_argument("--report-json", type=Path, help="also write the report as JSON here")
    parents["job"].add_argument("job_id", metavar="JOB")
    parents["json"].add_argument("--json", action="store_true", help="print JSON")
    return parents


PARENTS = ("spec", "url", "scope", "driving", "job", "json")


def _since_last_flags(scope: argparse.ArgumentParser) -> None:
    scope.add_argument(
        "--since-last",
        action="store_true",
        help="incremental: start where the ledger's complete coverage of the dataset ends (the"
        " newest job done and finalised by every store, or the first failed or unfinished"
        " slice after the oldest such job, rounded down to the slicing unit) and end now",
    )
    scope.add_argument(
        "--lookback",
        metavar="DURATION",
        help="with --since-last: start this much earlier, e.g. 30m, 2h, 1d, 1h30m, PT2H"
        " (records that arrived late at the source)",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="extractor",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = _parents()
    run = commands.add_parser(
        "run", parents=[p["spec"], p["url"], p["scope"], p["driving"]], help="plan and run a job"
    )
    run.add_argument("--job-id", help="the new job's id (default: dataset-time-random)")
    run.add_argument(
        "--stores",
        type=_stores,
        help="the consumers to publish to and wait on, comma separated, e.g. tableinator"
        " (default: the spec's stores:, else every one in AMQP_CONSUMERS); a resume keeps them",
    )
    commands.add_parser(
        "plan", parents=[p["spec"], p["url"], p["scope"], p["json"]], help="dry run with estimates"
    )
    commands.add_parser("worker", parents=[p["spec"]], help="run the dataset's slice tasks")
    for name, what in (("resume", "continue a job"), ("retry-failed", "rerun failed slices")):
        commands.add_parser(name, parents=[p["url"], p["job"], p["driving"]], help=what)
    status = commands.add_parser("status", parents=[p["json"]], help="a job's progress, or jobs")
    status.add_argument("job_id", metavar="JOB", nargs="?")
    commands.add_parser("cancel", parents=[p["job"]], help="stop a job after in-flight pages")
    report = commands.add_parser(
        "report", parents=[p["job"], p["json"]], help="the job's report (terminal, Markdown, PNG)"
    )
    report.add_argument(
        "--out", type=Path, help="also write it as Markdown here, with the chart beside (.png)"
    )
    dlq_cli.add_parser(commands, p["spec"])
    return parser


def _settings(args: argparse.Namespace) -> ExtractorSettings:
    settings = ExtractorSettings()
    updates: dict[str, object] = {}
    if getattr(args, "spec", None):
        updates["dataset"] = DatasetSettings(dataset_spec=args.spec)
    if getattr(args, "source_url", None):
        updates["extractor_source_url"] = args.source_url
    if getattr(args, "base_path", None):
        updates["extractor_dump_path"] = args.base_path
    return settings.model_copy(update=updates)


def _options(args: argparse.Namespace) -> JobOptions:
    since_last, lookback = getattr(args, "since_last", False), getattr(args, "lookback", None)
    if since_last and args.start is not None:
        raise ConfigError("--since-last and --start exclude each other: the ledger sets the start")
    if lookback is not None and not since_last:
        raise ConfigError("--lookback goes with --since-last")
    return JobOptions(
        since_last=since_last,
        lookback=dt.timedelta() if lookback is None else parse_duration(lookback),
        start=getattr(args, "start", None),
        end=getattr(args, "end", None),
        wait=not getattr(args, "no_wait", False),
        wait_timeout=getattr(args, "wait_timeout", 3600.0),
        job_id=getattr(args, "job_id", None),
        local_workers=not getattr(args, "enqueue_only", False),
        estimate=not getattr(args, "no_estimate", False),
        all_files=getattr(args, "all_files", False),
        stores=getattr(args, "stores", None),
    )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _drive(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    interrupt = _stop_on_signals()
    console = Console(stderr=True)
    options = _options(args)
    try:
        if args.command == "run":
            if options.since_last:
                window = await backfill.since_last(settings, options)
                print(window.describe())  # one line, unwrapped: cron logs grep it
                if window.nothing_to_do:
                    return 0
                options = window.options(options)
            report = await backfill.run_backfill(settings, options, console, interrupt)
        elif args.command == "resume":
            report = await backfill.resume_backfill(
                settings, args.job_id, options, console, interrupt
            )
        else:
            report = await backfill.retry_failed(settings, args.job_id, options, console, interrupt)
    except Interrupted as stopped:
        if str(stopped):
            console.print(f"interrupted; continue with: extractor resume {stopped}")
        else:
            console.print("interrupted while planning the job; nothing was fetched")
        return EXIT_INTERRUPTED
    _output(report, args.report_json)
    await _full_report(settings, report.job_id, None, console=Console(), stores=False)
    return 0 if report.ok else 1


def _output(report: JobReport, json_path: Path | None) -> None:
    print_report(report, Console())
    if json_path:
        json_path.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))


async def _plan(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    return await plan_cli.run(args, settings, _options(args))


async def _worker(_args: argparse.Namespace, settings: ExtractorSettings) -> int:
    await backfill.run_worker(settings, _stop_on_signals())
    return 0


async def _status(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    if args.job_id is None:
        jobs = await backfill.recent_jobs(settings)
        for job in jobs:
            created = f"{job['created_at']:%Y-%m-%d %H:%M:%S}"
            print(f"{job['job_id']}  {job['status']:<10}  {job['dataset']}  {created}")
        return 0
    snapshot = await backfill.job_status(settings, args.job_id)
    if args.json:
        print(orjson.dumps(snapshot.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print_status(Console(), snapshot)
    return 0


async def _cancel(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    status = await backfill.cancel(settings, args.job_id)
    print(f"job {args.job_id}: {status}")
    return 0


async def _report(args: argparse.Namespace, settings: ExtractorSettings) -> int:
    if args.json:
        full = await load_report(settings, args.job_id)
        print(orjson.dumps(full.as_dict(), option=orjson.OPT_INDENT_2).decode())
        if args.out:
            write_report(full, args.out)
        return 0
    await _full_report(settings, args.job_id, args.out, console=Console(), stores=True)
    return 0


async def _full_report(
    settings: ExtractorSettings, job_id: str, out: Path | None, *, console: Console, stores: bool
) -> None:
    """The report's terminal sections and its file: ``out``, or reports/<job>.md after a run."""
    full = await load_report(settings, job_id)
    if stores:
        print_ledger_report(console, full.snapshot)
    print_sections(console, full, stores=stores)
    path = out or (None if stores else default_path(job_id))
    if path is None:
        return
    try:
        chart = write_report(full, path)
    except OSError as exc:
        console.print(f"[red]report not written to {path}: {exc}[/red]")
        return
    console.print(f"report written to {path}" + (f" (chart {chart})" if chart else ""))


COMMANDS: dict[str, Command] = {
    "run": _drive,
    "resume": _drive,
    "retry-failed": _drive,
    "plan": _plan,
    "worker": _worker,
    "status": _status,
    "cancel": _cancel,
    "report": _report,
    "dlq": dlq_cli.run,
}


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
        configure_logging(settings.observability.log_level)
        if args.command in LONG_RUNNING:
            tune_garbage_collector()  # a dump's records churn containers as a consumer's do
        sys.exit(asyncio.run(COMMANDS[args.command](args, settings)))
    except (ConfigError, ValidationError) as exc:
        print(f"extractor: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    except SourceUnreachable as exc:
        print(f"extractor: source unreachable: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNREACHABLE)
    except Unreachable as exc:
        print(f"extractor: {exc}", file=sys.stderr)
        sys.exit(EXIT_UNREACHABLE)
    except aio_pika.exceptions.AMQPConnectionError as exc:  # the CLI's short-lived connections
        print(f"extractor: cannot reach RabbitMQ (AMQP_CONNECTION): {exc}", file=sys.stderr)
        sys.exit(EXIT_UNREACHABLE)


if __name__ == "__main__":
    main()
