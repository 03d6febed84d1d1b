"""The spec validator, by property: whatever name is put where a SQL or Cypher identifier
goes, the spec is either refused with a SpecError naming that field, or the name matches
the strict pattern the write paths rely on; and garbage anywhere is a SpecError, never
another exception."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from common.errors import ConfigError, SpecError
from common.spec import BUNDLED_DIR, parse_spec
from graphinator.cypher import constraint_statements, entity_queries, ident
from tests.properties.strategies import JSON, TEXT

DEMO = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
SQL = re.compile(r"[a-z_][a-z0-9_]{0,62}")
CYPHER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
HOSTILE = st.sampled_from(
    [
        'x"; DROP TABLE t; --',
        "Replay`) DETACH DELETE n //",
        "A})-[:X]->(b",
        "name with space",
        "x\x00y",
        "é",
        "",
        "a" * 64,
        "a" * 65,
        "UPPER",
        "_ok_",
        "ok1",
    ]
)
NAMES = HOSTILE | TEXT | st.from_regex(CYPHER, fullmatch=True)

# where a name goes, the field a refusal must name, and the pattern an accepted name meets
PLACES: list[tuple[tuple[Any, ...], re.Pattern[str]]] = [
    (("table", "name"), SQL),
    (("table", "indexes", 0), SQL),
    (("graph", "label"), CYPHER),
    (("graph", "key_property"), CYPHER),
    (("graph", "relationships", 0, "type"), re.compile(r"[A-Z_][A-Z0-9_]{0,63}")),
    (("graph", "relationships", 0, "target", "label"), CYPHER),
    (("graph", "relationships", 1, "target", "key"), CYPHER),
]


def demo_with(where: tuple[Any, ...], value: Any) -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(yaml.safe_dump(DEMO))
    node: Any = raw["entities"]["replays"]
    for part in where[:-1]:
        node = node[part]
    node[where[-1]] = value
    return raw


@given(st.sampled_from(PLACES), NAMES)
def test_a_name_is_refused_by_field_or_matches_the_strict_pattern(
    place: tuple[tuple[Any, ...], re.Pattern[str]], name: str
) -> None:
    where, pattern = place
    try:
        spec = parse_spec(demo_with(where, name), "fuzz.yaml")
    except SpecError as exc:
        assert exc.path == "fuzz.yaml"
        assert exc.field.startswith(f"entities.replays.{where[0]}")  # or its model's check
        assert exc.reason
        return
    assert pattern.fullmatch(name)
    entity = spec.entities["replays"]
    assert entity.graph is not None
    # Graphinator's start-up accepts what the validator accepted: every identifier passes
    # ident() again (a 64-character label once passed the spec, then stopped the service).
    statements = " ".join(constraint_statements(spec))
    assert f"FOR (n:`{entity.graph.label}`)" in statements
    entity_queries(entity)


@given(st.sampled_from(["name", "source", "entities", "key", "paginator", "table"]), JSON)
def test_garbage_anywhere_is_a_spec_error(where: str, value: Any) -> None:
    raw = demo_with(("key",), "id")
    target = raw if where in {"name", "source", "entities"} else raw["entities"]["replays"]
    target[where] = value
    try:
        parse_spec(raw, "fuzz.yaml")
    except SpecError as exc:
        assert exc.path == "fuzz.yaml" and exc.reason


@given(NAMES)
def test_ident_quotes_only_strict_names(name: str) -> None:
    try:
        quoted = ident(name)
    except ConfigError:
        assert not CYPHER.fullmatch(name)
        return
    assert quoted == f"`{name}`" and CYPHER.fullmatch(name)


def test_a_hostile_label_is_named_in_the_error() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(demo_with(("graph", "label"), "Replay`) DETACH DELETE n //"), "x.yaml")
    assert caught.value.field == "entities.replays.graph.label"
    assert "pattern" in caught.value.reason
