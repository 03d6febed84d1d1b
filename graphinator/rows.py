"""Turning prepared records into the parameter rows the Cypher queries UNWIND."""

from __future__ import annotations

from typing import Any

import orjson

from common.errors import BadMessageError
from common.paths import flat, has_every
from common.records import PreparedRecord, cast_key, get_path
from common.spec import GraphSpec, RelationshipSpec
from graphinator.cypher import HASH_PROPERTY


def graph_value(value: Any) -> Any:
    """A value Neo4j can store: scalars and lists of one scalar type; the rest as JSON text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list) and value:
        first = type(value[0])
        if first in (str, int, float, bool) and all(type(item) is first for item in value):
            return value
    if isinstance(value, list) and not value:
        return None
    return orjson.dumps(value).decode()


def node_row(graph: GraphSpec, record: PreparedRecord) -> dict[str, Any]:
    props = {
        name: graph_value(get_path(record.doc, path)) for name, path in graph.properties.items()
    }
    props = {name: value for name, value in props.items() if value is not None}
    props[graph.key_property] = record.key
    props[HASH_PROPERTY] = record.hash.hex()
    return {"key": record.key, "hash": props[HASH_PROPERTY], "props": props}


def relationship_rows(spec: RelationshipSpec, record: PreparedRecord) -> list[dict[str, Any]]:
    """One row per distinct target the record's field points at."""
    value = get_path(record.doc, spec.field)
    if isinstance(value, list):
        items = flat(value) if has_every(spec.field) else value  # players[*].ids: one list
    else:
        items = [] if value is None else [value]
    rows: dict[Any, dict[str, Any]] = {}
    for item in items:
        row = _relationship_row(spec, record.key, item)
        if row is not None:
            rows[row["dst"]] = row
    return list(rows.values())


def _relationship_row(spec: RelationshipSpec, source: Any, item: Any) -> dict[str, Any] | None:
    nested = isinstance(item, dict)
    raw_key = get_path(item, spec.key) if nested and spec.key else (None if nested else item)
    try:
        target = cast_key(raw_key, spec.target.key_type)
    except BadMessageError:
        return None  # a reference without a usable key points nowhere; the node still loads
    props = _pick(item, spec.properties) if nested else {}
    target_props = _pick(item, spec.target_properties) if nested else {}
    return {"src": source, "dst": target, "props": props, "target_props": target_props}


def _pick(item: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    picked = {name: graph_value(get_path(item, path)) for name, path in mapping.items()}
    return {name: value for name, value in picked.items() if value is not None}
