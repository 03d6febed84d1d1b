"""The ``extractor`` subcommand of ``python -m bench``: its options, its run, its output."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from bench import extractor

DEFAULT_RATE_PLOT = Path("docs/img/extractor-rate.png")
DEFAULT_RSS_PLOT = Path("docs/img/extractor-rss.png")


def _numbers(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "extractor",
        help="pages/s against a rate-limited API vs sequential fetch + sleep(0.5); peak RSS",
        description=(
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
        ),
    )
    defaults = extractor.Options()
    parser.add_argument(
        "--rates",
        type=_numbers,
        default=defaults.rates,
        metavar="R,R",
        help="the API's rate limits, requests/s (default 50,200)",
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=defaults.latency_ms,
        metavar="MS",
        help="the API's delay per page (default %(default)s)",
    )
    parser.add_argument(
        "--job-seconds",
        type=float,
        default=defaults.job_seconds,
        metavar="S",
        help="size each job to last about this long at R (default %(default)s)",
    )
    parser.add_argument("--baseline-pages", type=int, default=defaults.baseline_pages, metavar="N")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument(
        "--concurrency-variant",
        type=int,
        metavar="N",
        help="also run the extractor with EXTRACTOR_CONCURRENCY=N at every R",
    )
    parser.add_argument(
        "--memory-records",
        type=int,
        default=defaults.memory_records,
        metavar="N",
        help="records of the 1x memory job (default %(default)s; the two others have 10x)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help=f"draw requests/s over each job (e.g. {DEFAULT_RATE_PLOT}); the RSS curve goes "
        "beside it as extractor-rss.png",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.extractor_report import print_results

    options = extractor.Options(
        rates=args.rates,
        latency_ms=args.latency_ms,
        job_seconds=args.job_seconds,
        baseline_pages=args.baseline_pages,
        skip_baseline=args.skip_baseline,
        concurrency_variant=args.concurrency_variant,
        memory_records=args.memory_records,
        skip_memory=args.skip_memory,
    )
    result = asyncio.run(extractor.run_bench(options))
    print_results(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {args.json}")
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
