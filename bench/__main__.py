"""``python -m bench``: run a benchmark against the local services, or plot saved results."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bench import discogs_dump, end_to_end, extractor_cli, graphinator
from bench.chaos import cli as chaos_cli
from bench.harness.cli import Arg, add_args, consumer_args, numbers, options_from, write_json
from bench.report import print_results
from bench.tableinator import Options, run_bench

DEFAULT_PLOT = Path("docs/img/tableinator-sweep.png")
DEFAULT_GRAPH_PLOT = Path("docs/img/graphinator-sweep.png")


TABLEINATOR_DESCRIPTION = (
    "Publishes realistic records (~400-byte JSON, pages of 100) and measures, in one "
    "run: the baselines (a) one upsert committed per message, prefetch 1, and (b) "
    "executemany of 50 per commit; tableinator at its settings into empty tables; "
    "the same records again unchanged and with 10% changed; a plain COPY (the "
    "ceiling). Needs RabbitMQ and PostgreSQL (scripts/services.sh start)."
)
GRAPHINATOR_DESCRIPTION = (
    "Publishes realistic replays (pages of 100; a replay is a node with ~2 PLAYED_BY "
    "relationships and one IN_FORMAT) and measures, in one run: the baselines, one "
    "transaction per record with its MERGEs, prefetch 1 ((a) a statement per MERGE "
    "group, (b) one statement); graphinator at its settings into an empty graph; the "
    "same records again unchanged and with 10% changed; optionally a batch size "
    "sweep. Needs RabbitMQ and Neo4j (scripts/services.sh start); every measurement "
    "uses its own labels and deletes them afterwards."
)
TABLEINATOR_ARGS = consumer_args(
    "rounds of tableinator's three runs; the median round is reported",
    [
        Arg("--sweep", help="add a batch size x prefetch sweep"),
        Arg("--sweep-records", int, "N"),
        Arg("--sweep-batch-sizes", numbers, "N,N"),
        Arg("--sweep-prefetch", numbers, "N,N"),
    ],
    f"with --sweep: draw it (needs the bench extra; e.g. {DEFAULT_PLOT})",
)
GRAPHINATOR_ARGS = consumer_args(
    "rounds of the baselines and graphinator's three runs (and of each sweep cell);"
    " medians are reported",
    [
        Arg("--sweep", help="add a batch size sweep"),
        Arg("--sweep-records", int, "N"),
        Arg("--sweep-batch-sizes", numbers, "N,N"),
    ],
    f"with --sweep: draw it (needs the bench extra; e.g. {DEFAULT_GRAPH_PLOT})",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser(
        "tableinator",
        help="records/s from queue to committed upsert, against the baselines",
        description=TABLEINATOR_DESCRIPTION,
    )
    add_args(table, Options(), TABLEINATOR_ARGS)
    graph = commands.add_parser(
        "graphinator",
        help="nodes+relationships/s from queue to committed MERGE, against the baseline",
        description=GRAPHINATOR_DESCRIPTION,
    )
    add_args(graph, graphinator.Options(), GRAPHINATOR_ARGS)
    extractor_cli.add_parser(commands)
    chaos_cli.add_parser(commands)
    end_to_end.add_parser(commands)
    discogs_dump.add_parser(commands)
    plot = commands.add_parser("plot", help="draw the sweep of a --json results file")
    plot.add_argument("results", type=Path, help="a JSON file written by --json")
    plot.add_argument(
        "--out",
        type=Path,
        help=f"default {DEFAULT_PLOT}, or {DEFAULT_GRAPH_PLOT} for graphinator results",
    )
    return parser


def _plot(result: dict[str, Any], out: Path | None) -> Path:
    """Draw a results file's sweep with the benchmark's own plot."""
    if result.get("benchmark") == "extractor":
        return extractor_cli.plot(result, out)[0]
    if result.get("benchmark") == "graphinator":
        from bench.graphinator_plot import plot_graph_sweep

        return plot_graph_sweep(result, out or DEFAULT_GRAPH_PLOT)
    from bench.plot import plot_sweep

    return plot_sweep(result, out or DEFAULT_PLOT)


def _run_graphinator(args: argparse.Namespace) -> dict[str, Any]:
    from bench.graphinator_report import print_results as print_graph_results

    result = asyncio.run(graphinator.run_bench(options_from(graphinator.Options, args)))
    print_graph_results(result)
    return result


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    for noisy in ("aiormq", "aio_pika"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.command == "plot":
        print(f"wrote {_plot(json.loads(args.results.read_text()), args.out)}")
        return
    if args.command == "graphinator":
        _write(args, _run_graphinator(args))
        return
    if args.command == "extractor":
        extractor_cli.run(args)
        return
    if args.command == "end-to-end":
        end_to_end.run(args)
        return
    if args.command == "discogs-dump":
        discogs_dump.run(args)
        return
    if args.command == "chaos":
        raise SystemExit(chaos_cli.run(args))
    options = options_from(Options, args)
    result = asyncio.run(run_bench(options))
    print_results(result)
    _write(args, result)


def _write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """``--json`` and ``--plot`` of either benchmark."""
    if args.json:
        write_json(args.json, result)
    if args.plot and result["sweep"]:
        print(f"wrote {_plot(result, args.plot)}")


if __name__ == "__main__":
    main()
