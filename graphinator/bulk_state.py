"""Where a bulk load stands (``<bulk dir>/state.json``), its lock, and the start-up decision.

``loading``: staging files are being written (a restart resumes them). ``imported``: the
files were imported; graphinator then MERGEs later jobs as usual. A bulk load only starts
into an empty database: anything else is refused before a message is consumed.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import orjson
from neo4j import AsyncDriver

from common.errors import ConfigError

log = logging.getLogger(__name__)
LOADING, IMPORTED = "loading", "imported"


class BulkRefused(Exception):
    """A bulk load cannot start or finish here; the message says why (exit status 2)."""


def read_state(root: Path) -> dict[str, str]:
    path = root / "state.json"
    if not path.exists():
        return {}
    state: dict[str, str] = orjson.loads(path.read_bytes())
    return state


def write_state(root: Path, dataset: str, status: str) -> None:
    root.mkdir(parents=True, exist_ok=True)
    temporary = root / "state.json.tmp"
    temporary.write_bytes(orjson.dumps({"dataset": dataset, "status": status}))
    temporary.replace(root / "state.json")


@contextmanager
def locked(root: Path, holder: str) -> Iterator[None]:
    """One process at a time on a bulk dir: the graphinator writing it, or the importer."""
    root.mkdir(parents=True, exist_ok=True)
    handle: IO[str] = (root / "lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise BulkRefused(
            f"{root} is in use by another process (a graphinator in bulk mode, or an import):"
            f" stop it before running {holder}"
        ) from exc
    try:
        yield
    finally:
        handle.close()


async def graph_is_empty(driver: AsyncDriver, database: str) -> bool:
    async with driver.session(database=database) as session:
        result = await session.run("MATCH (n) RETURN n LIMIT 1")
        return await result.single() is None


async def graph_counts(driver: AsyncDriver, database: str) -> tuple[int, int]:
    async with driver.session(database=database) as session:
        nodes = await (await session.run("MATCH (n) RETURN count(n) AS n")).single(strict=True)
        rels = await (await session.run("MATCH ()-[e]->() RETURN count(e) AS n")).single(
            strict=True
        )
    return int(nodes["n"]), int(rels["n"])


def planned_counts(root: Path) -> tuple[int, int] | None:
    """The node and relationship totals the last built import holds (None: none built)."""
    path = root / "import" / "plan.json"
    if not path.exists():
        return None
    plan = orjson.loads(path.read_bytes())
    return sum(plan["nodes"].values()), sum(plan["relationships"].values())


async def bulk_mode(driver: AsyncDriver, database: str, root: Path, dataset: str) -> bool:
    """Whether this run writes staging files (True) or MERGEs (False, the load is imported)."""
    state = read_state(root)
    if state and state.get("dataset") != dataset:
        raise ConfigError(
            f"GRAPHINATOR_BULK_DIR={root} holds a bulk load of dataset {state.get('dataset')!r},"
            f" not {dataset!r}: use another directory"
        )
    if state.get("status") == IMPORTED:
        log.info("bulk load in %s was imported; later jobs are MERGEd", root)
        return False
    empty = await graph_is_empty(driver, database)
    if state.get("status") == LOADING and empty:
        log.info("resuming the bulk load in %s", root)
        return True
    if state.get("status") == LOADING and await _imported_elsewhere(driver, database, root):
        log.info("the bulk load in %s was imported (its counts match); MERGE from now", root)
        write_state(root, dataset, IMPORTED)
        return False
    if not empty:
        raise BulkRefused(
            f"GRAPHINATOR_BULK_LOAD=true needs an empty database, but {database!r} holds nodes"
            f" (and {root} no import of them): load into an empty one, or unset"
            " GRAPHINATOR_BULK_LOAD to MERGE"
        )
    write_state(root, dataset, LOADING)
    return True


async def _imported_elsewhere(driver: AsyncDriver, database: str, root: Path) -> bool:
    """Whether the graph is what this directory's import holds (run by docker compose)."""
    planned = planned_counts(root)
    return planned is not None and await graph_counts(driver, database) == planned
