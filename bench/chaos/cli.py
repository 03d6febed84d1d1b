"""``python -m bench chaos``: arguments, the run, the table and the JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from bench.chaos.report import markdown, print_results
from bench.chaos.runner import Options, run_suite
from bench.chaos.scenarios import SCENARIOS

DEFAULT_JSON = Path("bench/results/chaos.json")


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    names = [s.name for s in SCENARIOS]
    chaos = commands.add_parser(
        "chaos",
        help="fault-injection suite: kills, restarts, network faults; stores compared",
        description=(
            "Starts the services (scripts/services.sh), Toxiproxy (scripts/toxiproxy.sh) and "
            "the demo API, runs a clean reference job, then one job per scenario with faults "
            "injected while it runs, and compares both stores with the reference: rows by key "
            "and content in PostgreSQL, node and relationship sets in Neo4j. Scenarios: "
            + ", ".join(names)
        ),
    )
    defaults = Options()
    chaos.add_argument("--records", type=int, default=defaults.records, metavar="N")
    chaos.add_argument(
        "--scenario",
        action="append",
        choices=names,
        help="run only this scenario (repeatable; default: all)",
    )
    chaos.add_argument(
        "--scale",
        type=float,
        default=defaults.scale,
        metavar="X",
        help="fault counts times X (default %(default)s)",
    )
    chaos.add_argument("--replicas", type=int, default=defaults.replicas, metavar="N")
    chaos.add_argument("--seed", type=int, default=defaults.seed)
    chaos.add_argument("--workdir", type=Path, default=defaults.workdir, help="specs and logs")
    chaos.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH")
    chaos.add_argument("--markdown", action="store_true", help="also print the table as Markdown")


def run(args: argparse.Namespace) -> int:
    options = Options(
        records=args.records,
        scenarios=tuple(args.scenario or [s.name for s in SCENARIOS]),
        scale=args.scale,
        replicas=args.replicas,
        seed=args.seed,
        workdir=args.workdir,
    )
    result = asyncio.run(run_suite(options))
    print_results(result)
    if args.markdown:
        print(markdown(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")
    total = result["totals"]
    clean = total["lost"] == total["duplicated"] == total["differing"] == 0
    return 0 if clean and total["all_finished_without_person"] else 1
