"""The ``extractor`` subcommand of ``python -m bench``: its options, its run, its output."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from bench import extractor
from bench.harness.cli import (
    Arg,
    Commands,
    add_args,
    numbers,
    options_from,
    output_args,
    write_json,
)

DEFAULT_RATE_PLOT = Path("docs/img/extractor-rate.png")
DEFAULT_RSS_PLOT = Path("docs/img/extractor-rss.png")


DESCRIPTION = (
    "Against the demo API in its own process (50 ms per page, a token bucket of R "
    "requests/s with a one-second burst), for each R and each with a fresh API: the "
    "baseline (one page at a time, sleep(0.5) between pages, each page published with "
    "its confirm awaited); extractor.backfill.run_backfill with the spec's maximum = R, "
    "and from R/2 with a maximum of 2R (the limiter must find R). Prints pages/s, "
    "records/s, the share of what the API allowed and the ratio to the baseline. Then "
    "the peak RSS of `python -m extractor run --no-wait` for a job and for two jobs "
    "10x longer (10x the pages per slice, 10x the slices). Needs RabbitMQ and "
    "PostgreSQL (scripts/services.sh start); EXTRACTOR_* variables apply to the "
    "extractor's runs."
)
ARGS = [
    Arg("--rates", numbers, "R,R", "the API's rate limits, requests/s (default 50,200)"),
    Arg("--latency-ms", float, "MS", "the API's delay per page (default %(default)s)"),
    Arg(
        "--job-seconds",
        float,
        "S",
        "size each job to last about this long at R (default %(default)s)",
    ),
    Arg("--baseline-pages", int, "N"),
    Arg("--skip-baseline"),
    Arg(
        "--concurrency-variant",
        int,
        "N",
        "also run the extractor with EXTRACTOR_CONCURRENCY=N at every R",
        default=False,
    ),
    Arg(
        "--memory-records",
        int,
        "N",
        "records of the 1x memory job (default %(default)s; the two others have 10x)",
    ),
    Arg("--skip-memory"),
    *output_args(
        f"draw requests/s over each job (e.g. {DEFAULT_RATE_PLOT}); the RSS curve goes "
        "beside it as extractor-rss.png"
    ),
]


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "extractor",
        help="pages/s against a rate-limited API vs sequential fetch + sleep(0.5); peak RSS",
        description=DESCRIPTION,
    )
    add_args(parser, extractor.Options(), ARGS)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.extractor_report import print_results

    options = options_from(extractor.Options, args)
    result = asyncio.run(extractor.run_bench(options))
    print_results(result)
    if args.json:
        write_json(args.json, result, indent=1)
    if args.plot:
        for written in plot(result, args.plot):
            print(f"wrote {written}")
    return result


def plot(result: dict[str, Any], out: Path | None = None) -> list[Path]:
    """The rate plot at ``out`` and, with memory runs, the RSS plot beside it."""
    from bench.extractor_plot import plot_rates, plot_rss

    out = out or DEFAULT_RATE_PLOT
    written = []
    if result["measurements"]:
        written.append(plot_rates(result, out))
    if result["memory"]:
        written.append(plot_rss(result, out.with_name(DEFAULT_RSS_PLOT.name)))
    return written
