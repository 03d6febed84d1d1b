"""The discogsography-style baseline of an end-to-end round, over the same source as the
project's job: the demo API's records or a dump's (bench/discogsography_baseline.py)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.discogsography_baseline import (
    demo_records,
    dump_records,
    prefixed_spec,
    run_discogsography,
)
from bench.discogsography_stores import drop_discogsography
from common.spec import DatasetSpec, load_spec

DEMO_SPEC = Path("common/datasets/demo.yaml")
DISCOGS_SPEC = Path("common/datasets/discogs.yaml")


def demo_baseline(url: str, limit: int) -> dict[str, Any]:
    spec = load_spec(DEMO_SPEC)
    return asyncio.run(_measure(demo_records(url, limit), spec))


def dump_baseline(directory: Path, limit: int, counts: dict[str, int]) -> dict[str, Any]:
    """``limit`` records of the dump in its mix of entities (``counts``: the whole dump's)."""
    spec = load_spec(DISCOGS_SPEC)
    return asyncio.run(_measure(dump_records(directory, spec, limit, counts), spec))


async def _measure(
    records: Iterable[tuple[str, dict[str, Any]]], spec: DatasetSpec
) -> dict[str, Any]:
    namespace = f"dg_{secrets.token_hex(4)}"
    spec = prefixed_spec(spec, f"Dg{namespace}")  # Neo4j's one database is shared
    try:
        measured = await run_discogsography(records, spec, namespace)
    finally:
        await drop_discogsography(spec, namespace)
    return {
        ("end_to_end" if name == "end to end" else name): m.as_dict()
        for name, m in measured.items()
    }
