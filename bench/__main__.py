"""``python -m bench``: run a benchmark against the local services, or plot saved results."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from bench import extractor_cli, graphinator
from bench.chaos import cli as chaos_cli
from bench.report import print_results
from bench.tableinator import Options, run_bench

DEFAULT_PLOT = Path("docs/img/tableinator-sweep.png")
DEFAULT_GRAPH_PLOT = Path("docs/img/graphinator-sweep.png")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    commands = parser.add_subparsers(dest="command", required=True)

    table = commands.add_parser(
        "tableinator",
        help="records/s from queue to committed upsert, against the baselines",
        description=(
            "Publishes realistic records (~400-byte JSON, pages of 100) and measures, in one "
            "run: the baselines (a) one upsert committed per message, prefetch 1, and (b) "
            "executemany of 50 per commit; tableinator at its settings into empty tables; "
            "the same records again unchanged and with 10% changed; a plain COPY (the "
            "ceiling). Needs RabbitMQ and PostgreSQL (scripts/services.sh start)."
        ),
    )
    defaults = Options()
    table.add_argument("--records", type=int, default=defaults.records, metavar="N")
    table.add_argument(
        "--baseline-records",
        type=int,
        default=defaults.baseline_records,
        metavar="N",
        help="records for each baseline (default %(default)s; rates are rates)",
    )
    table.add_argument(
        "--baseline-seconds",
        type=float,
        default=defaults.baseline_seconds,
        metavar="S",
        help="stop a baseline after this long and rate what it committed (default %(default)s)",
    )
    table.add_argument("--skip-baseline", action="store_true")
    table.add_argument(
        "--repeat",
        type=int,
        default=defaults.repeat,
        metavar="N",
        help="rounds of tableinator's three runs; the median round is reported",
    )
    table.add_argument("--sweep", action="store_true", help="add a batch size x prefetch sweep")
    table.add_argument("--sweep-records", type=int, default=defaults.sweep_records, metavar="N")
    table.add_argument(
        "--sweep-batch-sizes",
        type=_sizes,
        default=defaults.sweep_batch_sizes,
        metavar="N,N",
    )
    table.add_argument(
        "--sweep-prefetch", type=_sizes, default=defaults.sweep_prefetch, metavar="N,N"
    )
    table.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        metavar="S",
        help="give up on one measurement after this many seconds",
    )
    table.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    table.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help=f"with --sweep: draw it (needs the bench extra; e.g. {DEFAULT_PLOT})",
    )

    _add_graphinator(commands)
    extractor_cli.add_parser(commands)
    chaos_cli.add_parser(commands)

    plot = commands.add_parser("plot", help="draw the sweep of a --json results file")
    plot.add_argument("results", type=Path, help="a JSON file written by --json")
    plot.add_argument(
        "--out",
        type=Path,
        help=f"default {DEFAULT_PLOT}, or {DEFAULT_GRAPH_PLOT} for graphinator results",
    )
    return parser


def _add_graphinator(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    graph = commands.add_parser(
        "graphinator",
        help="nodes+relationships/s from queue to committed MERGE, against the baseline",
        description=(
            "Publishes realistic replays (pages of 100; a replay is a node with ~2 PLAYED_BY "
            "relationships and one IN_FORMAT) and measures, in one run: the baselines, one "
            "transaction per record with its MERGEs, prefetch 1 ((a) a statement per MERGE "
            "group, (b) one statement); graphinator at its settings into an empty graph; the "
            "same records again unchanged and with 10% changed; optionally a batch size "
            "sweep. Needs RabbitMQ and Neo4j (scripts/services.sh start); every measurement "
            "uses its own labels and deletes them afterwards."
        ),
    )
    defaults = graphinator.Options()
    graph.add_argument("--records", type=int, default=defaults.records, metavar="N")
    graph.add_argument(
        "--baseline-records",
        type=int,
        default=defaults.baseline_records,
        metavar="N",
        help="records for each baseline (default %(default)s; rates are rates)",
    )
    graph.add_argument(
        "--baseline-seconds",
        type=float,
        default=defaults.baseline_seconds,
        metavar="S",
        help="stop a baseline after this long and rate what it committed (default %(default)s)",
    )
    graph.add_argument("--skip-baseline", action="store_true")
    graph.add_argument(
        "--repeat",
        type=int,
        default=defaults.repeat,
        metavar="N",
        help="rounds of the baselines and graphinator's three runs (and of each sweep cell);"
        " medians are reported",
    )
    graph.add_argument("--sweep", action="store_true", help="add a batch size sweep")
    graph.add_argument("--sweep-records", type=int, default=defaults.sweep_records, metavar="N")
    graph.add_argument(
        "--sweep-batch-sizes",
        type=_sizes,
        default=defaults.sweep_batch_sizes,
        metavar="N,N",
    )
    graph.add_argument(
        "--timeout",
        type=float,
        default=defaults.timeout,
        metavar="S",
        help="give up on one measurement after this many seconds",
    )
    graph.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    graph.add_argument(
        "--plot",
        type=Path,
        metavar="PNG",
        help=f"with --sweep: draw it (needs the bench extra; e.g. {DEFAULT_GRAPH_PLOT})",
    )


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

    options = graphinator.Options(
        records=args.records,
        baseline_records=args.baseline_records,
        baseline_seconds=args.baseline_seconds,
        skip_baseline=args.skip_baseline,
        repeat=max(1, args.repeat),
        sweep=args.sweep,
        sweep_records=args.sweep_records,
        sweep_batch_sizes=args.sweep_batch_sizes,
        timeout=args.timeout,
    )
    result = asyncio.run(graphinator.run_bench(options))
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
    if args.command == "chaos":
        raise SystemExit(chaos_cli.run(args))
    options = Options(
        records=args.records,
        baseline_records=args.baseline_records,
        baseline_seconds=args.baseline_seconds,
        skip_baseline=args.skip_baseline,
        repeat=max(1, args.repeat),
        sweep=args.sweep,
        sweep_records=args.sweep_records,
        sweep_batch_sizes=args.sweep_batch_sizes,
        sweep_prefetch=args.sweep_prefetch,
        timeout=args.timeout,
    )
    result = asyncio.run(run_bench(options))
    print_results(result)
    _write(args, result)


def _write(args: argparse.Namespace, result: dict[str, Any]) -> None:
    """``--json`` and ``--plot`` of either benchmark."""
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.plot and result["sweep"]:
        print(f"wrote {_plot(result, args.plot)}")


if __name__ == "__main__":
    main()
