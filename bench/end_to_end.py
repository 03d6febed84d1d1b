"""``python -m bench end-to-end``: the demo job from the demo API into PostgreSQL, the
project (``extractor run --stores tableinator`` with a tableinator process) against dlt's
``rest_api`` source over the same records, in one run."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import yaml

from bench.dlt_baseline import DLT_CREDENTIALS, count_rows, drop_dataset, run_dlt
from bench.harness.broker import delete_queues
from bench.harness.cli import Arg, Commands, add_args, numbers, options_from, write_json
from bench.harness.measure import Measurement
from bench.harness.processes import background, demo_api
from bench.harness.report import console, new_table, print_footer, ratio, verdict
from bench.harness.run import RunInfo
from common.settings import AmqpSettings
from common.topology import Topology

DEMO_SPEC = Path("common/datasets/demo.yaml")
TARGET_RATIO = 5.0
DESCRIPTION = (
    "Starts the demo API (python -m demoapi --size N), then per round: (a) the project, "
    "`extractor run --stores tableinator` of the demo spec (a fresh dataset name, so fresh "
    "queues, ledger and schema) with a `python -m tableinator` process, timed from the "
    "job's start to the run's exit (it waits for tableinator to finalise the job); (b) "
    "dlt's rest_api source over /offset.json (OffsetPaginator, merge on id) into the "
    "bench_dlt schema, dropped first, timed over pipeline.run (load included). Rows are "
    "counted in each table afterwards. Needs RabbitMQ and PostgreSQL."
)


@dataclass(frozen=True)
class Options:
    records: int = 100_000
    repeat: int = 1
    dlt_page_size: int = 500
    port: int = 18899
    page_size: int | None = None  # the project's page size; None: the demo spec's (50)
    rate_limit: tuple[int, ...] | None = None  # initial,maximum requests/s; None: the spec's
    timeout: float = 1800.0


ARGS = [
    Arg("--records", int, "N", "records in the demo API (default %(default)s)"),
    Arg("--repeat", int, "N", "rounds of both paths; every round is reported"),
    Arg("--dlt-page-size", int, "N", "dlt's OffsetPaginator limit (default %(default)s)"),
    Arg("--port", int, "P", "the demo API's port (default %(default)s)"),
    Arg("--page-size", int, "N", "the project's page size (default: the demo spec's, 50)"),
    Arg("--rate-limit", numbers, "INITIAL,MAX", "requests/s (default: the spec's, 200,2000)"),
    Arg("--timeout", float, "S", "give up on one path after this many seconds"),
    Arg("--json", Path, "PATH", "write the results as JSON", default=False),
]


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "end-to-end",
        help="records/s from the demo API into PostgreSQL, against dlt",
        description=DESCRIPTION,
    )
    add_args(parser, Options(), ARGS)


def write_spec(directory: Path, name: str, url: str, options: Options) -> Path:
    """The demo spec under another dataset name, pointed at this run's API, with the
    page size and rate limit of the options when they are given."""
    raw = yaml.safe_load(DEMO_SPEC.read_text())
    raw["name"] = name
    raw["source"]["base_url"] = url
    if options.page_size:
        paginator = raw["entities"]["replays"]["paginator"]
        paginator.update(page_size=options.page_size, page_size_param="page_size")
    if options.rate_limit:
        initial, maximum = options.rate_limit
        raw["source"]["rate_limit"] = {"initial": initial, "maximum": maximum}
    spec = directory / f"{name}.yaml"
    spec.write_text(yaml.safe_dump(raw, sort_keys=False))
    return spec


def job_env(spec: Path, url: str, name: str) -> dict[str, str]:
    return dict(
        os.environ,
        DATASET_SPEC=str(spec),
        EXTRACTOR_SOURCE_URL=url,
        AMQP_CONSUMERS="tableinator",
        POSTGRES_SCHEMA=name,
        EXTRACTOR_LEDGER_SCHEMA=f"{name}_ledger",
        EXTRACTOR_WORK_QUEUE=f"extractor.work.{name}",
        LOG_LEVEL="WARNING",
    )


def run_project(url: str, options: Options, logs: Path) -> Measurement:
    """One job of the demo spec under a fresh name, tableinator consuming it."""
    name = f"e2e_{uuid.uuid4().hex[:8]}"
    env = job_env(write_spec(logs, name, url, options), url, name)
    extractor = [sys.executable, "-m", "extractor", "run", "--stores", "tableinator"]
    try:
        with (
            background(["-m", "tableinator"], env, logs / f"{name}.tableinator.log"),
            (logs / f"{name}.extractor.log").open("ab") as out,
        ):
            started = time.perf_counter()
            subprocess.run(
                extractor, env=env, stdout=out, stderr=out, check=True, timeout=options.timeout
            )
            seconds = time.perf_counter() - started
        rows = count_rows(DLT_CREDENTIALS, name, "replays")
    finally:
        for schema in (name, f"{name}_ledger"):
            drop_dataset(DLT_CREDENTIALS, schema)
        asyncio.run(delete_job_queues(name))
    label = "project: extractor -> tableinator (finalised)"
    details = {"dataset": name, "page_size": options.page_size or 50}
    return Measurement("project", label, rows, seconds, details=details)


async def delete_job_queues(name: str) -> None:
    """The round's dataset queues (tableinator's and its dead letters) and work queue."""
    names = [
        Topology.queue_name("tableinator", name, "replays"),
        Topology.dead_letter_queue_name("tableinator", name, "replays"),
        f"extractor.work.{name}",
    ]
    async with await aio_pika.connect(AmqpSettings().url) as connection:
        await delete_queues(await connection.channel(), names)


def one_round(url: str, options: Options, logs: Path) -> dict[str, Any]:
    project = run_project(url, options, logs)
    dlt = run_dlt(url, limit=options.dlt_page_size)
    return {
        "project": project.as_dict(),
        "dlt": dlt.as_dict(),
        "ratio": project.rate / dlt.rate if dlt.rate else None,
    }


def run_bench(options: Options) -> dict[str, Any]:
    """Every round of both paths against one demo API, with the run's metadata."""
    import dlt

    info = RunInfo()
    with (
        tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp,
        demo_api(options.records, options.port) as url,
    ):
        rounds = [one_round(url, options, Path(tmp)) for _ in range(options.repeat)]
    ratios = [r["ratio"] or 0.0 for r in rounds]
    return {
        **info.header("end-to-end"),
        "versions": {"dlt": dlt.__version__},
        "records": options.records,
        "project_page_size": options.page_size,
        "project_rate_limit": options.rate_limit,
        "rounds": rounds,
        "target_ratio": TARGET_RATIO,
        "target_met": all(value >= TARGET_RATIO for value in ratios),
    }


def print_results(result: dict[str, Any]) -> None:
    out = console(120)
    columns = ("round", "project rows", "project rec/s", "dlt rows", "dlt rec/s", "ratio")
    table = new_table("source to PostgreSQL: project against dlt", columns)
    for number, r in enumerate(result["rounds"], 1):
        project, dlt = r["project"], r["dlt"]
        table.add_row(
            str(number),
            f"{project['records']:,}",
            f"{project['records_per_second']:,.0f}",
            f"{dlt['records']:,}",
            f"{dlt['records_per_second']:,.0f}",
            ratio(project["records_per_second"], dlt["records_per_second"]),
        )
    out.print(table)
    out.print(f"target >= {TARGET_RATIO:.0f}x dlt in every round: {verdict(result['target_met'])}")
    print_footer(out, result, f"{result['records']:,} records in the demo API; ")


def run(args: argparse.Namespace) -> None:
    result = run_bench(options_from(Options, args))
    print_results(result)
    if args.json:
        write_json(args.json, result)
