"""Cypher generated from a dataset's graph mapping.

Labels, relationship types and property names cannot be query parameters, so they come
only from the spec, where they were checked against a strict identifier pattern; they are
checked again here and backtick-quoted. Every value is a parameter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import ConfigError
from common.spec import DatasetSpec, EntitySpec, GraphSpec, RelationshipSpec

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
HASH_PROPERTY = "_hash"


def ident(name: str) -> str:
    """A backtick-quoted identifier, refused unless it matches the strict pattern."""
    if not _IDENTIFIER.fullmatch(name):
        raise ConfigError(f"refusing Cypher identifier {name!r}: must match {_IDENTIFIER.pattern}")
    return f"`{name}`"


@dataclass(frozen=True)
class RelationshipQueries:
    """Replacing one relationship type of changed records: delete theirs, MERGE each
    distinct target once (a stub if it is not loaded yet), then CREATE the edges."""

    spec: RelationshipSpec
    delete: str
    targets: str
    edges: str


@dataclass(frozen=True)
class EntityQueries:
    """Every query one entity's batch needs."""

    graph: GraphSpec
    lookup: str
    create: str
    nodes: str
    relationships: tuple[RelationshipQueries, ...]


def lookup_query(graph: GraphSpec) -> str:
    """Which of the batch's keys are new and which changed (a stub's hash is null), compared
    in the store: an unchanged batch sends back two empty lists."""
    label, key = ident(graph.label), ident(graph.key_property)
    return (
        "UNWIND $rows AS row "
        f"OPTIONAL MATCH (n:{label} {{{key}: row.key}}) "
        f"WITH row, n WHERE n IS NULL OR n.{HASH_PROPERTY} IS NULL "
        f"OR n.{HASH_PROPERTY} <> row.hash "
        "RETURN collect(CASE WHEN n IS NULL THEN row.key END) AS new, "
        "collect(CASE WHEN n IS NOT NULL THEN row.key END) AS changed"
    )


def create_query(graph: GraphSpec) -> str:
    """CREATE nodes whose keys the lookup did not find; the uniqueness constraint fails the
    batch if another writer created one meanwhile (it then takes the MERGE path)."""
    return f"UNWIND $rows AS row CREATE (n:{ident(graph.label)}) SET n = row.props"


def node_query(graph: GraphSpec) -> str:
    """MERGE the batch's nodes and replace the properties of changed ones.

    Returns the changed keys, and among them those that existed with a hash before: only
    those can have relationships of their own to replace (a new node or a stub has none).
    """
    label, key = ident(graph.label), ident(graph.key_property)
    return (
        "UNWIND $rows AS row "
        f"MERGE (n:{label} {{{key}: row.key}}) "
        f"WITH n, row, n.{HASH_PROPERTY} AS previous "
        "WHERE previous IS NULL OR previous <> row.hash "
        "SET n = row.props "
        "RETURN collect(row.key) AS changed, "
        "collect(CASE WHEN previous IS NOT NULL THEN row.key END) AS updated"
    )


def _arrow(spec: RelationshipSpec) -> str:
    """The relationship pattern, seen from the record's node."""
    rel = f"[e:{ident(spec.type)}]"
    return f"-{rel}->" if spec.direction == "out" else f"<-{rel}-"


def relationship_queries(graph: GraphSpec, spec: RelationshipSpec) -> RelationshipQueries:
    label, key = ident(graph.label), ident(graph.key_property)
    target, target_key = ident(spec.target.label), ident(spec.target.key)
    arrow = _arrow(spec)
    delete = f"UNWIND $keys AS key MATCH (n:{label} {{{key}: key}}){arrow}(:{target}) DELETE e"
    targets = (
        "UNWIND $targets AS t "
        f"MERGE (b:{target} {{{target_key}: t.dst}}) "
        "ON CREATE SET b += t.target_props"
    )
    # CREATE, not MERGE, for the edge: the record's old edges of this type were deleted in
    # the same transaction, and a batch holds each record, and each target per record, once.
    edges = (
        "UNWIND $rels AS r "
        f"MATCH (a:{label} {{{key}: r.src}}) "
        f"MATCH (b:{target} {{{target_key}: r.dst}}) "
        f"CREATE (a){arrow}(b) "
        "SET e = r.props"
    )
    return RelationshipQueries(spec=spec, delete=delete, targets=targets, edges=edges)


def entity_queries(entity: EntitySpec) -> EntityQueries:
    assert entity.graph is not None
    graph = entity.graph
    return EntityQueries(
        graph=graph,
        lookup=lookup_query(graph),
        create=create_query(graph),
        nodes=node_query(graph),
        relationships=tuple(relationship_queries(graph, rel) for rel in graph.relationships),
    )


def node_keys(spec: DatasetSpec) -> dict[str, str]:
    """Each label's key property; a label keyed two ways is a configuration error."""
    keys: dict[str, str] = {}

    def claim(label: str, key: str, where: str) -> None:
        ident(label)
        ident(key)
        if keys.setdefault(label, key) != key:
            raise ConfigError(
                f"{where}: label {label} is keyed by {key!r} here and by {keys[label]!r} elsewhere"
            )

    for name, entity in spec.entities.items():
        if entity.graph is None:
            continue
        claim(entity.graph.label, entity.graph.key_property, f"entities.{name}.graph")
        for index, rel in enumerate(entity.graph.relationships):
            claim(
                rel.target.label,
                rel.target.key,
                f"entities.{name}.graph.relationships.{index}.target",
            )
    return keys


def constraint_statements(spec: DatasetSpec) -> list[str]:
    """A uniqueness constraint per mapped label (idempotent)."""
    # The name is built from two checked identifiers (so it is safe to quote) but may be
    # longer than one: 64-character labels are legal in a spec.
    return [
        f"CREATE CONSTRAINT `{label}_{key}_unique` IF NOT EXISTS "
        f"FOR (n:{ident(label)}) REQUIRE n.{ident(key)} IS UNIQUE"
        for label, key in sorted(node_keys(spec).items())
    ]


def count_queries(graph: GraphSpec) -> tuple[str, dict[str, str]]:
    """Queries counting an entity's nodes and, per type, its relationships."""
    label = ident(graph.label)
    nodes = f"MATCH (n:{label}) RETURN count(n) AS count"
    types = [rel.type for rel in graph.relationships]
    rels = {
        # IS->Genre and IS->Style are told apart by their target label.
        (rel.type if types.count(rel.type) == 1 else f"{rel.type}:{rel.target.label}"): (
            f"MATCH (n:{label}){_arrow(rel)}(:{ident(rel.target.label)}) RETURN count(e) AS count"
        )
        for rel in graph.relationships
    }
    return nodes, rels
