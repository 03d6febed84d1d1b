"""``graphinator bulk-import``: the end of a bulk load.

Builds the neo4j-admin CSVs from the staging files, checks the target database is still
empty, runs scripts/neo4j-import.sh (stops the local Neo4j with scripts/services.sh, runs
``neo4j-admin database import full`` into its home, starts it again), creates the
constraints, checks the counts and marks the load imported: graphinator MERGEs later jobs.
With ``--print-only`` (a server this machine cannot stop, e.g. docker compose) it builds
the files and prints the one command that imports them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

from neo4j import AsyncGraphDatabase

from common.errors import ConfigError
from common.resilience import retry_transient
from common.settings import DatasetSettings, GraphinatorSettings
from common.spec import DatasetSpec, load_spec
from graphinator.bulk_import import ImportPlan, build_import
from graphinator.bulk_state import (
    IMPORTED,
    BulkRefused,
    graph_counts,
    graph_is_empty,
    locked,
    read_state,
    write_state,
)
from graphinator.cypher import node_keys
from graphinator.sink import Neo4jSink

log = logging.getLogger(__name__)
IMPORT_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "neo4j-import.sh"
DOCKER_COMMAND = (
    "docker compose stop graphinator neo4j"
    " && docker compose --profile bulk run --rm graph-import"
    " && docker compose start neo4j graphinator"
)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="graphinator bulk-import", description=__doc__)
    parser.add_argument("--spec", help="dataset spec (default: $DATASET_SPEC or demo)")
    parser.add_argument(
        "--print-only",
        action="store_true",
        help="build the CSV files and print the import command instead of running it",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = GraphinatorSettings()
    if args.spec:
        settings = settings.model_copy(update={"dataset": DatasetSettings(dataset_spec=args.spec)})
    try:
        bulk_import(settings, print_only=args.print_only)
    except BulkRefused as exc:
        print(f"graphinator bulk-import: {exc}", file=sys.stderr)
        sys.exit(2)
    except ConfigError as exc:
        sys.exit(f"graphinator bulk-import: {exc}")


def bulk_import(settings: GraphinatorSettings, *, print_only: bool) -> None:
    spec = load_spec(settings.dataset.dataset_spec)
    root = settings.bulk.directory
    with locked(root, "graphinator bulk-import"):
        state = read_state(root)
        if state.get("dataset") != spec.name:
            raise BulkRefused(f"{root} holds no bulk load of dataset {spec.name!r}")
        if state.get("status") == IMPORTED:
            print(f"graphinator bulk-import: {root} was imported already; nothing to do")
            return
        started = time.monotonic()
        plan = build_import(root, sorted(node_keys(spec)), settings.neo4j.neo4j_database)
        nodes, rels = plan.total()
        log.info(
            "bulk files built nodes=%d relationships=%d in %.1f s",
            nodes,
            rels,
            time.monotonic() - started,
        )
        if print_only:
            _print_commands(plan)
            return
        asyncio.run(_refuse_unless_empty(settings))
        imported = time.monotonic()
        _run_import(plan)
        asyncio.run(_after_import(settings, spec, plan))
        write_state(root, spec.name, IMPORTED)
    seconds = time.monotonic() - imported
    print(
        f"graphinator bulk-import: imported {nodes} nodes and {rels} relationships"
        f" in {seconds:.1f} s ({(nodes + rels) / max(seconds, 1e-9):,.0f}/s incl. server restart);"
        " graphinator now MERGEs later jobs"
    )


def _print_commands(plan: ImportPlan) -> None:
    print(f"import files and arguments ready in {plan.directory}; import them with:")
    print(f"  {DOCKER_COMMAND}")
    print(f"or, on a machine whose stopped Neo4j you own: neo4j-admin @{plan.args_file}")
    print(f"  (run in {plan.directory}); graphinator then finds the import and MERGEs later jobs")


async def _refuse_unless_empty(settings: GraphinatorSettings) -> None:
    n4j = settings.neo4j
    async with AsyncGraphDatabase.driver(n4j.neo4j_address, auth=n4j.auth) as driver:
        if not await graph_is_empty(driver, n4j.neo4j_database):
            raise BulkRefused(
                f"database {n4j.neo4j_database!r} at {n4j.neo4j_address} is not empty:"
                " a full import would replace it; refusing"
            )


def _run_import(plan: ImportPlan) -> None:
    """scripts/neo4j-import.sh; its output (the importer's progress) goes to import.log."""
    output = plan.directory / "import.log"
    with output.open("wb") as log_file:
        done = subprocess.run(  # noqa: S603 - the project's own script, arguments it wrote
            [str(IMPORT_SCRIPT), str(plan.args_file)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        tail = output.read_text(errors="replace").splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        raise ConfigError(f"{IMPORT_SCRIPT} failed with status {done.returncode} (log: {output})")


async def _after_import(settings: GraphinatorSettings, spec: DatasetSpec, plan: ImportPlan) -> None:
    """Constraints as graphinator creates them, then the counts the files promised."""
    n4j = settings.neo4j
    async with AsyncGraphDatabase.driver(n4j.neo4j_address, auth=n4j.auth) as driver:
        sink = Neo4jSink(driver, spec, n4j.neo4j_database)
        await retry_transient(sink.create_constraints, sink.is_transient, what="create constraints")
        found = await graph_counts(driver, n4j.neo4j_database)
    if found != plan.total():
        raise ConfigError(
            f"import landed {found[0]} nodes and {found[1]} relationships, the files hold"
            f" {plan.total()[0]} and {plan.total()[1]}: see {plan.directory}/import.report"
        )
