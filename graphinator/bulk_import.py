"""A bulk load's staging files turned into neo4j-admin CSVs and the arguments importing them.

Per label and per relationship file, only the last version of each record is kept, with the
edges it made; a stub only where no record of its key arrived. ``neo4j-admin database import
full`` needs one type per CSV column, while a property may be an integer in one record and a
string in the next (the MERGE path stores each as it comes): rows are grouped by their
(property, type) columns, one CSV file with its own header per group.
"""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from common.errors import ConfigError
from graphinator.bulk_files import (
    OWNER_START,
    RECORD,
    node_path,
    read_edges,
    read_nodes,
    recover,
)

ARRAY_DELIMITER = "\x1f"  # unit separator: no real text holds it; "--array-delimiter=U+001F"
_SCALAR_TYPES = ((bool, "boolean"), (int, "long"), (float, "double"), (str, "string"))
Columns = tuple[tuple[str, str], ...]


def column_type(value: Any) -> str:
    """The neo4j-admin header type of a property value (``graph_value``'s output)."""
    if isinstance(value, list):
        return column_type(value[0]) + "[]"
    for python_type, name in _SCALAR_TYPES:
        if isinstance(value, python_type):
            return name
    raise ConfigError(f"no CSV type for property value {value!r}")


def csv_value(value: Any) -> str:
    if isinstance(value, list):
        items = [csv_value(item) for item in value]
        if any(ARRAY_DELIMITER in item for item in items):
            raise ConfigError(f"a list value holds the array delimiter U+001F: {value!r}")
        return ARRAY_DELIMITER.join(items)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


def id_value(key: Any) -> str:
    """A node's import id: its key as JSON, so the key 1 and the key "1" stay two nodes."""
    return orjson.dumps(key).decode()


class GroupedCsv:
    """The CSV files of one label or relationship file: one per set of typed columns."""

    def __init__(self, directory: Path, prefix: str, id_columns: list[str]) -> None:
        self.directory = directory
        self.prefix = prefix
        self.id_columns = id_columns
        self.rows = 0
        self._writers: dict[Columns, Any] = {}
        self._handles: list[IO[str]] = []
        self.files: list[Path] = []

    def write(self, ids: list[str], props: dict[str, Any]) -> None:
        columns = tuple(sorted((name, column_type(value)) for name, value in props.items()))
        writer = self._writers.get(columns) or self._open(columns)
        writer.writerow([*ids, *(csv_value(props[name]) for name, _ in columns)])
        self.rows += 1

    def close(self) -> None:
        for handle in self._handles:
            handle.close()

    def _open(self, columns: Columns) -> Any:
        path = self.directory / f"{self.prefix}.{len(self.files)}.csv"
        handle = path.open("w", encoding="utf-8", newline="")
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL, lineterminator="\n")
        writer.writerow([*self.id_columns, *(f"{name}:{kind}" for name, kind in columns)])
        self._writers[columns] = writer
        self._handles.append(handle)
        self.files.append(path)
        return writer


@dataclass
class ImportPlan:
    """What the import will load, and the neo4j-admin arguments (paths relative to it)."""

    directory: Path
    database: str
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    node_files: list[tuple[str, str]] = field(default_factory=list)
    rel_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def args_file(self) -> Path:
        return self.directory / "import.args"

    def args(self) -> list[str]:
        return [
            *("database", "import", "full", self.database),
            "--overwrite-destination=true",
            "--multiline-fields=true",
            "--array-delimiter=U+001F",
            "--id-type=string",
            "--bad-tolerance=0",
            *(f"--nodes={label}={path}" for label, path in self.node_files),
            *(f"--relationships={kind}={path}" for kind, path in self.rel_files),
        ]

    def total(self) -> tuple[int, int]:
        return sum(self.nodes.values()), sum(self.relationships.values())

    def save(self) -> None:
        self.args_file.write_text("\n".join(self.args()) + "\n", encoding="utf-8")
        counts = {"nodes": self.nodes, "relationships": self.relationships}
        (self.directory / "plan.json").write_bytes(orjson.dumps(counts))


def build_import(root: Path, labels: list[str], database: str) -> ImportPlan:
    """Write ``<root>/import`` from ``<root>/staging`` (recovered first); returns the plan."""
    staging = root / "staging"
    recover(staging)
    plan = ImportPlan(directory=root / "import", database=database)
    shutil.rmtree(plan.directory, ignore_errors=True)
    (plan.directory / "nodes").mkdir(parents=True)
    (plan.directory / "rels").mkdir(parents=True)
    winners = {label: _winners(node_path(staging, label)) for label in labels}
    for label in labels:
        _write_nodes(plan, staging, label, winners[label])
    for path in sorted((staging / "rels").glob("*.tsv")):
        _write_edges(plan, path, winners)
    plan.save()
    return plan


def _winners(path: Path) -> dict[Any, int]:
    """Each record key's last node line (its last version wins, as SET n = props does)."""
    return {line.key: number for number, line in enumerate(read_nodes(path)) if line.kind == RECORD}


def _write_nodes(plan: ImportPlan, staging: Path, label: str, winners: dict[Any, int]) -> None:
    out = GroupedCsv(plan.directory / "nodes", label, [f":ID({label})"])
    for number, line in enumerate(read_nodes(node_path(staging, label))):
        kept = winners[line.key] == number if line.kind == RECORD else line.key not in winners
        if kept:
            out.write([id_value(line.key)], line.props)
    out.close()
    plan.nodes[label] = out.rows
    plan.node_files += [(label, str(p.relative_to(plan.directory))) for p in out.files]


def _write_edges(plan: ImportPlan, path: Path, winners: dict[str, dict[Any, int]]) -> None:
    """Edges whose owning record version is the one kept (a replaced version's edges go)."""
    rel_type, start, end = path.stem.split(".")
    ids = [f":START_ID({start})", f":END_ID({end})"]
    out = GroupedCsv(plan.directory / "rels", path.stem, ids)
    for line in read_edges(path):
        owner_label, owner_key = (
            (start, line.start) if line.owner == OWNER_START else (end, line.end)
        )
        if winners[owner_label].get(owner_key) == line.owner_line:
            out.write([id_value(line.start), id_value(line.end)], line.props)
    out.close()
    plan.relationships[rel_type] = plan.relationships.get(rel_type, 0) + out.rows
    plan.rel_files += [(rel_type, str(p.relative_to(plan.directory))) for p in out.files]
