"""The staging files of a bulk load: append-only, fsynced per batch, exact after a crash.

Layout of ``<bulk dir>/staging``: ``nodes/<Label>.tsv`` (one line per record version or
stub), ``rels/<TYPE>.<StartLabel>.<EndLabel>.tsv`` (one line per edge, naming the node line
of the record that owns it) and ``commits.log``. Fields are tab-separated and JSON-encoded
(JSON never holds a raw tab or newline), so a line is one record. After a batch's lines are
written and fsynced, one line in ``commits.log`` records every file's committed size; only
then is the batch acked. On open, every file is cut back to its last committed size: a torn
line, or the lines of a batch that never committed (its messages are redelivered), vanish.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from common.errors import ConfigError
from graphinator.cypher import ident

RECORD, STUB = "r", "s"
OWNER_START, OWNER_END = "s", "e"
COMMITS = "commits.log"


@dataclass(frozen=True)
class NodeLine:
    kind: str  # RECORD or STUB
    key: Any
    hash: str
    props: dict[str, Any]


@dataclass(frozen=True)
class EdgeLine:
    start: Any
    end: Any
    owner: str  # which end is the record that made the edge: OWNER_START or OWNER_END
    owner_line: int  # that record's line in its label's node file
    props: dict[str, Any]


@dataclass
class LabelState:
    """What the writer knows of a label: per key one small int (see ``remember``), for the
    memory of tens of millions of keys: a record's hash prefix and node line, or a stub."""

    lines: int = 0
    known: dict[Any, int] = field(default_factory=dict)

    def remember(self, line: NodeLine, number: int) -> None:
        if line.kind != RECORD:
            self.known[line.key] = 0
            return
        if number >= 1 << 32:
            raise ConfigError(f"more than 2^32 node lines for one label: {number}")
        self.known[line.key] = (_hash64(line.hash) << 33) | (number << 1) | 1

    def is_unchanged(self, key: Any, hash_hex: str) -> bool:
        """Whether the key's record is staged with this hash (64 bits of it compared)."""
        entry = self.known.get(key, 0)
        return bool(entry & 1) and entry >> 33 == _hash64(hash_hex)

    def records(self) -> int:
        return sum(entry & 1 for entry in self.known.values())


def _hash64(hash_hex: str) -> int:
    return int(hash_hex[:16], 16)


def node_path(root: Path, label: str) -> Path:
    ident(label)
    return root / "nodes" / f"{label}.tsv"


def rel_path(root: Path, rel_type: str, start: str, end: str) -> Path:
    for name in (rel_type, start, end):
        ident(name)
    return root / "rels" / f"{rel_type}.{start}.{end}.tsv"


def encode_node(line: NodeLine) -> bytes:
    key, props = orjson.dumps(line.key), orjson.dumps(line.props)
    return b"\t".join((line.kind.encode(), key, line.hash.encode(), props)) + b"\n"


def encode_edge(line: EdgeLine) -> bytes:
    fields = (orjson.dumps(line.start), orjson.dumps(line.end), line.owner.encode())
    tail = (str(line.owner_line).encode(), orjson.dumps(line.props))
    return b"\t".join((*fields, *tail)) + b"\n"


def read_nodes(path: Path) -> Iterator[NodeLine]:
    for raw in _lines(path):
        kind, key, hash_, props = raw.split(b"\t", 3)
        yield NodeLine(kind.decode(), orjson.loads(key), hash_.decode(), orjson.loads(props))


def read_edges(path: Path) -> Iterator[EdgeLine]:
    for raw in _lines(path):
        start, end, owner, owner_line, props = raw.split(b"\t", 4)
        yield EdgeLine(
            orjson.loads(start),
            orjson.loads(end),
            owner.decode(),
            int(owner_line),
            orjson.loads(props),
        )


def _lines(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as handle:
        for raw in handle:
            yield raw.rstrip(b"\n")


class StagingFiles:
    """The open staging files; one writer at a time (the caller serialises batches)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._handles: dict[Path, BinaryIO] = {}
        self._touched: set[Path] = set()
        (root / "nodes").mkdir(parents=True, exist_ok=True)
        (root / "rels").mkdir(parents=True, exist_ok=True)
        self._commits = self._open(root / COMMITS)

    def append(self, path: Path, data: bytes) -> None:
        handle = self._handles.get(path) or self._open(path)
        handle.write(data)
        self._touched.add(path)

    def commit(self) -> None:
        """Make the lines appended since the last commit durable, then record the sizes."""
        sizes = {}
        for path in sorted(self._touched):
            handle = self._handles[path]
            handle.flush()
            os.fsync(handle.fileno())
            sizes[str(path.relative_to(self.root))] = handle.tell()
        self._touched.clear()
        if sizes:
            self._commits.write(orjson.dumps(sizes) + b"\n")
            self._commits.flush()
            os.fsync(self._commits.fileno())

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()

    def _open(self, path: Path) -> BinaryIO:
        handle = path.open("ab")
        self._handles[path] = handle
        return handle


def recover(root: Path) -> dict[str, int]:
    """Cut every staging file back to its last committed size; returns those sizes."""
    committed: dict[str, int] = {}
    log_path = root / COMMITS
    good = 0
    if log_path.exists():
        data = log_path.read_bytes()
        for raw in data.splitlines(keepends=True):
            if not raw.endswith(b"\n"):
                break  # torn by a crash: that batch was never acked
            committed.update(orjson.loads(raw))
            good += len(raw)
        if good < len(data):
            os.truncate(log_path, good)
    for folder in ("nodes", "rels"):
        for path in sorted((root / folder).glob("*.tsv")) if (root / folder).exists() else []:
            size = committed.get(str(path.relative_to(root)), 0)
            if path.stat().st_size < size:
                raise ConfigError(f"{path}: shorter than its committed size {size}: files damaged")
            if path.stat().st_size > size:
                os.truncate(path, size)
    return committed


def label_states(root: Path, labels: list[str]) -> dict[str, LabelState]:
    """The writer's dedupe state, rebuilt from the (recovered) node files."""
    states: dict[str, LabelState] = {}
    for label in labels:
        state = LabelState()
        for number, line in enumerate(read_nodes(node_path(root, label))):
            state.remember(line, number)
            state.lines = number + 1
        states[label] = state
    return states
