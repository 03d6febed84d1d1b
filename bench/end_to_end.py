"""``python -m bench end-to-end``: the whole job, source to both stores, against its peers
in one run: the demo job (demo API -> PostgreSQL and Neo4j) and a generated Discogs-shaped
dump (bench/discogs_dump.py), each against a discogsography-style baseline (one record per
message, each confirm awaited), and the demo job into PostgreSQL alone against dlt's
``rest_api`` source over the same records."""

from __future__ import annotations

import argparse
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bench.dlt_baseline import run_dlt
from bench.e2e_baseline import demo_baseline, dump_baseline
from bench.e2e_job import Job, run_job
from bench.e2e_report import print_results
from bench.harness.cli import Arg, Commands, add_args, numbers, options_from, write_json
from bench.harness.processes import demo_api
from bench.harness.run import RunInfo

if TYPE_CHECKING:
    from bench.discogs_dump import DumpSummary

DEMO_SPEC = Path("common/datasets/demo.yaml")
DISCOGS_SPEC = Path("common/datasets/discogs.yaml")
DLT_TARGET = 5.0  # source to PostgreSQL, x dlt
BASELINE_TARGET = 50.0  # end to end, x one record per message
DISCOGS_RECORDS = 34_000_000  # a full monthly dump, for the projection
DESCRIPTION = (
    "Starts the demo API (python -m demoapi --size N), then per round: (1) the demo job "
    "(`extractor run` of the demo spec under a fresh dataset name and label prefix) into "
    "PostgreSQL and Neo4j with a tableinator and a graphinator process, timed from the "
    "job's start to the run's exit (the extractor waits until both stores finalised it); "
    "(2) the same into PostgreSQL alone, against dlt's rest_api source over /offset.json "
    "(OffsetPaginator, merge on id); (3) the discogsography-style baseline on the first "
    "--baseline-records records; (4) with --dump-records N > 0, a generated Discogs-shaped "
    "dump of N records (all four files; --dump-dir keeps it for the next run) into both "
    "stores, its graph bulk-loaded into a throwaway Neo4j and/or MERGEd (--dump-graph), "
    "and through the baseline, projected to a 34M-record monthly dump. Prints records/s per store "
    "and end to end, and each process's share of the machine's CPU. Needs RabbitMQ, "
    "PostgreSQL and Neo4j (scripts/services.sh start) and the bench extra."
)


@dataclass(frozen=True)
class Options:
    records: int = 100_000
    repeat: int = 1
    dlt_page_size: int = 500
    port: int = 18899
    page_size: int | None = None  # the project's page size; None: the demo spec's (50)
    rate_limit: tuple[int, ...] | None = None  # initial,maximum requests/s; None: the spec's
    baseline_records: int = 5_000
    dump_records: int = 0
    dump_dir: Path | None = None
    dump_graph: tuple[str, ...] = ("bulk", "merge")
    skip_dlt: bool = False
    timeout: float = 3600.0


def modes(text: str) -> tuple[str, ...]:
    """``bulk,merge`` -> ("bulk", "merge"); anything else is refused."""
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = set(chosen) - {"bulk", "merge"}
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"expected bulk, merge or bulk,merge, got {text!r}")
    return chosen


ARGS = [
    Arg("--records", int, "N", "records in the demo API (default %(default)s)"),
    Arg("--repeat", int, "N", "rounds of every path; every round is reported"),
    Arg("--dlt-page-size", int, "N", "dlt's OffsetPaginator limit (default %(default)s)"),
    Arg("--port", int, "P", "the demo API's port (default %(default)s)"),
    Arg("--page-size", int, "N", "the project's page size (default: the demo spec's, 50)"),
    Arg("--rate-limit", numbers, "INITIAL,MAX", "requests/s (default: the spec's, 200,2000)"),
    Arg("--baseline-records", int, "N", "records the one-per-message baseline moves"),
    Arg("--dump-records", int, "N", "also a generated Discogs dump of N records (0: none)"),
    Arg("--dump-dir", Path, "DIR", "where the dump is written (reused if it holds one)"),
    Arg(
        "--dump-graph",
        modes,
        "MODE,MODE",
        "how the dump's graph loads: bulk (GRAPHINATOR_BULK_LOAD and neo4j-admin, into a "
        "throwaway Neo4j), merge, or both (default bulk,merge)",
    ),
    Arg("--skip-dlt", help="leave out the PostgreSQL-only job and dlt"),
    Arg("--timeout", float, "S", "give up on one job after this many seconds"),
    Arg("--json", Path, "PATH", "write the results as JSON", default=False),
]


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "end-to-end",
        help="the whole job into both stores, against discogsography-style and dlt",
        description=DESCRIPTION,
    )
    add_args(parser, Options(), ARGS)


def demo_job(url: str, options: Options, stores: tuple[str, ...]) -> Job:
    """The demo spec pointed at this run's API, with the options' page size and rate."""
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["source"]["base_url"] = url
    if options.page_size:
        paginator = raw["entities"]["replays"]["paginator"]
        paginator.update(page_size=options.page_size, page_size_param="page_size")
    if options.rate_limit:
        initial, maximum = options.rate_limit
        raw["source"]["rate_limit"] = {"initial": initial, "maximum": maximum}
    label = "demo job -> " + " + ".join(stores)
    env = {"EXTRACTOR_SOURCE_URL": url}
    return Job(raw, options.records, label, env, stores)


def dump_job(directory: Path, records: int, mode: str) -> Job:
    raw = yaml.safe_load(DISCOGS_SPEC.read_text())
    raw["source"]["base_path"] = str(directory)
    label = f"Discogs dump -> tableinator + graphinator ({mode})"
    return Job(raw, records, label, graph_bulk=mode == "bulk")


def demo_round(url: str, options: Options, logs: Path) -> dict[str, Any]:
    """The demo job into both stores and its baseline; into PostgreSQL alone and dlt."""
    both = run_job(demo_job(url, options, ("tableinator", "graphinator")), logs, options.timeout)
    baseline = demo_baseline(url, options.baseline_records)
    result: dict[str, Any] = {
        "both": both.as_dict(),
        "baseline": baseline,
        "vs_baseline": ratio(both.rate, baseline["end_to_end"]["records_per_second"]),
    }
    if not options.skip_dlt:
        postgres = run_job(demo_job(url, options, ("tableinator",)), logs, options.timeout)
        dlt = run_dlt(url, limit=options.dlt_page_size)
        result.update(postgres=postgres.as_dict(), dlt=dlt.as_dict())
        result["vs_dlt"] = ratio(postgres.rate, dlt.rate)
    return result


def dump_round(dump: DumpSummary, options: Options, logs: Path) -> dict[str, Any]:
    """The dump into both stores, its graph bulk-loaded and/or MERGEd, and its baseline
    (over a sample in the dump's mix of entities); the projection is the first mode's
    (bulk when it runs)."""
    jobs = {
        mode: run_job(dump_job(dump.directory, dump.total, mode), logs, options.timeout)
        for mode in options.dump_graph
    }
    first = jobs[options.dump_graph[0]]
    baseline = dump_baseline(dump.directory, options.baseline_records, dump.records)
    hours = DISCOGS_RECORDS / first.rate / 3600 if first.rate else None
    graphs = {(job.nodes, job.relationships) for job in jobs.values()}
    return {
        "both": first.as_dict(),
        "modes": {mode: job.as_dict() for mode, job in jobs.items()},
        "same_graph": len(graphs) == 1 if len(jobs) > 1 else None,
        "baseline": baseline,
        "vs_baseline": ratio(first.rate, baseline["end_to_end"]["records_per_second"]),
        "projected_hours_34m": round(hours, 2) if hours else None,
    }


def ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 2) if theirs else None


def dump_directory(options: Options, stack: ExitStack) -> DumpSummary:
    """The dump to load: the options' directory (written there unless it holds one of
    the same size) or a temporary one."""
    from bench.discogs_dump import existing_dump, write_dump

    if options.dump_dir is None:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-dump-")))
    else:
        directory = options.dump_dir
        directory.mkdir(parents=True, exist_ok=True)
    return existing_dump(directory, options.dump_records) or write_dump(
        directory, options.dump_records
    )


def run_bench(options: Options, save: Path | None = None) -> dict[str, Any]:
    """Every round of every path, with the run's metadata; with ``save``, the results so
    far are written there after every round (a long run that fails keeps its rounds)."""
    import dlt

    info = RunInfo()
    rounds: list[dict[str, Any]] = []

    def result() -> dict[str, Any]:
        return {
            **info.header("end-to-end"),
            "versions": {"dlt": dlt.__version__},
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(options).items()},
            "rounds": rounds,
            "targets": targets(rounds),
        }

    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-e2e-")))
        dump = dump_directory(options, stack) if options.dump_records else None
        url = stack.enter_context(demo_api(options.records, options.port))
        for _ in range(options.repeat):
            one: dict[str, Any] = {"demo": demo_round(url, options, logs)}
            if dump:
                one["dump"] = dump_round(dump, options, logs)
            rounds.append(one)
            if save:
                write_json(save, result())
    return result()


def targets(rounds: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Each target, met only when it holds in every round (None: not measured)."""

    def every(path: str, key: str, floor: float) -> bool | None:
        values = [r[path].get(key) for r in rounds if path in r]
        if not values or any(v is None for v in values):
            return None
        return all(v >= floor for v in values)

    demo_rates = [r["demo"]["both"]["records_per_second"] for r in rounds]
    hours = [r["dump"]["projected_hours_34m"] for r in rounds if "dump" in r]
    return {
        "demo >= 8,000 records/s, both stores": all(rate >= 8000 for rate in demo_rates),
        f"demo >= {BASELINE_TARGET:.0f}x one record per message": every(
            "demo", "vs_baseline", BASELINE_TARGET
        ),
        f"source to PostgreSQL >= {DLT_TARGET:.0f}x dlt": every("demo", "vs_dlt", DLT_TARGET),
        f"dump >= {BASELINE_TARGET:.0f}x one record per message": every(
            "dump", "vs_baseline", BASELINE_TARGET
        ),
        "34M-record dump projected < 1 hour": (
            all(h is not None and h < 1 for h in hours) if hours else None
        ),
    }


def run(args: argparse.Namespace) -> None:
    result = run_bench(options_from(Options, args), args.json or None)
    print_results(result)
    if args.json:
        write_json(args.json, result)
