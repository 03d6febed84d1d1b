"""The dataset spec a consumer benchmark writes for each namespace: the demo spec's replays
under a unique name, with the benchmark's own table or graph mapping."""

from __future__ import annotations

from typing import Any

from bench.harness.consumer import ENTITY


def replay_spec(name: str, description: str, mapping: dict[str, Any]) -> dict[str, Any]:
    """The replays entity (its source is never fetched: the bench publishes the records)
    with ``mapping`` (``{"table": ...}`` or ``{"graph": ...}``)."""
    entity = {
        "path": "/search.json",
        "paginator": {"kind": "before_timestamp", "field": "uploadtime"},
        "key": "id",
        **mapping,
    }
    return {
        "name": name,
        "description": description,
        "source": {
            "kind": "http",
            "base_url": "http://127.0.0.1:8899",
            "slicing": {"kind": "none"},
        },
        "entities": {ENTITY: entity},
    }
