"""The bulk initial-load write path: batches become staging files, not transactions.

Behind the same sink interface as ``Neo4jSink``: per batch, each new or changed record
appends its node line and its edges, each relationship target not seen before a stub line;
an unchanged record (same key and hash, e.g. a redelivered page) is skipped, like the MERGE
path skips it. The batch is fsynced before ``write`` returns, so its ack is safe. At end of
job the files are turned into neo4j-admin CSVs and imported (graphinator.bulk_import).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from common.envelope import EndOfJob
from common.outcomes import Outcome
from common.records import PreparedRecord
from common.sink import WriteResult
from common.spec import DatasetSpec, GraphSpec, RelationshipSpec
from graphinator.bulk_files import (
    OWNER_END,
    OWNER_START,
    RECORD,
    STUB,
    EdgeLine,
    NodeLine,
    StagingFiles,
    encode_edge,
    encode_node,
    label_states,
    node_path,
    recover,
    rel_path,
)
from graphinator.cypher import node_keys
from graphinator.rows import node_row, relationship_rows

log = logging.getLogger(__name__)
IMPORT_COMMAND = "python -m graphinator bulk-import"


class BulkSink:
    """Appends batches of one dataset's entities to the staging files of a bulk load."""

    reads_docs = True

    def __init__(self, spec: DatasetSpec, root: Path) -> None:
        self.spec = spec
        self.root = root
        recover(root)
        self._states = label_states(root, sorted(node_keys(spec)))
        self._files = StagingFiles(root)
        self._lock = asyncio.Lock()
        self._graphs = {
            name: entity.graph for name, entity in spec.entities.items() if entity.graph
        }
        staged = {label: len(state.known) for label, state in self._states.items()}
        log.info("bulk load staging dir=%s keys=%s", root, staged)

    def classify(self, exc: BaseException) -> Outcome:
        return Outcome.STOP  # a local disk error: stop, the unacked batch is redelivered later

    def is_transient(self, exc: BaseException) -> bool:
        return False

    async def begin_job(self, entity: str, job_id: str) -> None:
        """Nothing to prepare: the files are opened at start."""

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        graph = self._graphs[entity]
        async with self._lock:  # one batch at a time: commits record sizes in file order
            written = await asyncio.to_thread(self._append_batch, graph, records)
        return WriteResult(written=written, unchanged=len(records) - written)

    async def finalise(self, entity: str, end: EndOfJob) -> dict[str, Any]:
        graph = self._graphs[entity]
        state = self._states[graph.label]
        records = state.records()
        log.warning(
            "bulk load staged entity=%s label=%s records=%d: once every entity is finalised,"
            " stop graphinator and run: %s",
            entity,
            graph.label,
            records,
            IMPORT_COMMAND,
        )
        return {
            "label": graph.label,
            "bulk_staged_records": records,
            "bulk_dir": str(self.root.parent),
            "import_command": IMPORT_COMMAND,
        }

    def close(self) -> None:
        self._files.close()

    def _append_batch(self, graph: GraphSpec, records: list[PreparedRecord]) -> int:
        state = self._states[graph.label]
        written = 0
        for record in records:
            if state.is_unchanged(record.key, record.hash.hex()):
                continue
            written += 1
            row = node_row(graph, record)
            line_number = self._append_node(
                graph.label, NodeLine(RECORD, record.key, row["hash"], row["props"])
            )
            for rel in graph.relationships:
                self._append_edges(graph, rel, record, line_number)
        self._files.commit()
        return written

    def _append_node(self, label: str, line: NodeLine) -> int:
        state = self._states[label]
        number = state.lines
        self._files.append(node_path(self.root, label), encode_node(line))
        state.lines += 1
        state.remember(line, number)
        return number

    def _append_edges(
        self, graph: GraphSpec, rel: RelationshipSpec, record: PreparedRecord, owner_line: int
    ) -> None:
        target = rel.target
        target_state = self._states[target.label]
        out = rel.direction == "out"
        start, end = (graph.label, target.label) if out else (target.label, graph.label)
        path = rel_path(self.root, rel.type, start, end)
        for row in relationship_rows(rel, record):
            if row["dst"] not in target_state.known:
                props = {target.key: row["dst"], **row["target_props"]}  # as MERGE .. SET +=
                self._append_node(target.label, NodeLine(STUB, row["dst"], "", props))
            start_key, end_key = (record.key, row["dst"]) if out else (row["dst"], record.key)
            owner = OWNER_START if out else OWNER_END
            edge = EdgeLine(start_key, end_key, owner, owner_line, row["props"])
            self._files.append(path, encode_edge(edge))
