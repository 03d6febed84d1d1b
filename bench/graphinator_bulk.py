"""``python -m bench.graphinator_bulk``: the bulk initial load against the MERGE path.

The same replays (bench.records: a node, ~2 PLAYED_BY and one IN_FORMAT each, plus the
Player and Format nodes they imply) into a throwaway Neo4j of its own (scripts/services.sh
on another port, another home; the shared server is never touched), in one run:

1. MERGE: graphinator's Neo4jSink writes batches into the empty graph (constraints on);
2. bulk: the graph is emptied, BulkSink stages the same batches (fsynced per batch), the
   neo4j-admin CSVs are built, and scripts/neo4j-import.sh stops the server, imports and
   starts it again.

Both are measured at the sink (records already prepared, no broker: ``python -m bench
graphinator`` measures the transport) and rated in nodes+relationships per second; the
bulk path's steps are timed apart, with neo4j-admin's own time read from its log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase

from bench.records import BenchRecords
from common.records import PreparedRecord, prepare
from common.spec import DatasetSpec, load_spec
from graphinator.bulk import BulkSink
from graphinator.bulk_cli import IMPORT_SCRIPT
from graphinator.bulk_import import build_import
from graphinator.bulk_state import graph_counts
from graphinator.cypher import node_keys
from graphinator.sink import Neo4jSink

REPO = Path(__file__).resolve().parents[1]
ENTITY = "replays"


def batches(count: int, size: int, spec: DatasetSpec) -> list[list[PreparedRecord]]:
    entity = spec.entities[ENTITY]
    records = [prepare(r, entity.key, entity.key_type) for r in BenchRecords(count).records()]
    return [records[i : i + size] for i in range(0, len(records), size)]


async def merge_path(driver: AsyncDriver, spec: DatasetSpec, work: list[Any]) -> dict[str, Any]:
    sink = Neo4jSink(driver, spec, "neo4j")
    await sink.create_constraints()
    started = time.perf_counter()
    for batch in work:
        await sink.write(ENTITY, batch)
    seconds = time.perf_counter() - started
    nodes, rels = await graph_counts(driver, "neo4j")
    return _rate(nodes, rels, seconds)


async def wipe(driver: AsyncDriver) -> None:
    """Empty the graph, relationships first: a node with thousands of edges deleted with
    them in one batch overruns the server's transaction memory."""
    async with driver.session() as session:
        for query in (
            "MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF 10000 ROWS",
            "MATCH (n) CALL (n) { DELETE n } IN TRANSACTIONS OF 10000 ROWS",
        ):
            await (await session.run(query)).consume()


async def stage(spec: DatasetSpec, root: Path, work: list[Any]) -> float:
    sink = BulkSink(spec, root / "staging")
    started = time.perf_counter()
    for batch in work:
        await sink.write(ENTITY, batch)
    sink.close()
    return time.perf_counter() - started


def bulk_path(spec: DatasetSpec, root: Path, staged: float, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    plan = build_import(root, sorted(node_keys(spec)), "neo4j")
    built = time.perf_counter() - started
    started = time.perf_counter()
    log = plan.directory / "import.log"
    with log.open("wb") as out:
        subprocess.run([str(IMPORT_SCRIPT), str(plan.args_file)], env=env, stdout=out, check=True)
    imported = time.perf_counter() - started
    nodes, rels = plan.total()
    found = re.search(r"IMPORT DONE in (?:(\d+)m )?(?:(\d+)s )?(\d+)ms", log.read_text())
    admin = None
    if found:
        minutes, secs, millis = (int(part or 0) for part in found.groups())
        admin = minutes * 60 + secs + millis / 1000
    return {
        "stage": _rate(nodes, rels, staged),
        "build_csv": _rate(nodes, rels, built),
        "neo4j_admin": _rate(nodes, rels, admin) if admin else None,
        "import_with_restart": _rate(nodes, rels, imported),
        "end_to_end": _rate(nodes, rels, staged + built + imported),
    }


def _rate(nodes: int, rels: int, seconds: float) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "relationships": rels,
        "seconds": round(seconds, 2),
        "per_second": round((nodes + rels) / seconds),
    }


def services(action: str, env: dict[str, str]) -> None:
    subprocess.run([str(REPO / "scripts/services.sh"), action, "neo4j"], env=env, check=True)


async def run(records: int, batch: int, port: int) -> dict[str, Any]:
    spec = load_spec("demo")
    work = batches(records, batch, spec)
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        env = dict(os.environ, NEO4J_BOLT_PORT=str(port), NEO4J_HOME_DIR=f"{tmp}/home")
        address = f"bolt://127.0.0.1:{port}"
        services("start", env)
        try:
            async with AsyncGraphDatabase.driver(address, auth=("neo4j", "unused")) as driver:
                merged = await merge_path(driver, spec, work)
                await wipe(driver)
            staged = await stage(spec, Path(tmp) / "bulk", work)
            bulk = bulk_path(spec, Path(tmp) / "bulk", staged, env)
            async with AsyncGraphDatabase.driver(address, auth=("neo4j", "unused")) as driver:
                landed = await graph_counts(driver, "neo4j")
        finally:
            services("stop", env)
    same = landed == (merged["nodes"], merged["relationships"])
    return {"records": records, "batch": batch, "merge": merged, "bulk": bulk, "same": same}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.graphinator_bulk", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, metavar="N")
    parser.add_argument("--batch", type=int, default=5000, metavar="N")
    parser.add_argument("--port", type=int, default=7689, help="the throwaway Neo4j's Bolt port")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results as JSON")
    args = parser.parse_args()
    result = asyncio.run(run(args.records, args.batch, args.port))
    merge, bulk = result["merge"], result["bulk"]
    print(f"records {result['records']}, same counts both ways: {result['same']}")
    print(f"MERGE (Neo4jSink)            {merge['per_second']:>9,} nodes+rels/s")
    for step, figure in bulk.items():
        if figure:
            print(f"bulk {step:<23} {figure['per_second']:>9,} nodes+rels/s  {figure['seconds']} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
