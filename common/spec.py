"""The dataset spec: declared once in YAML, validated here, read by every service.

A spec names the source (where pages come from and how they are sliced and rate limited)
and, per entity, its key, its PostgreSQL table and its Neo4j graph mapping. Every name that
ends up in SQL or Cypher is checked against a strict identifier pattern here, so the write
paths never see an injected name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    model_validator,
)

from common.errors import SpecError
from common.spec_details import check_detail
from common.spec_source import (
    TIMESTAMP_PAGINATORS,
    WINDOW_FIELDS,
    FieldPath,
    HttpSourceSpec,
    OnePath,
    Paginator,
    SourceSpec,
    Strict,
)

BUNDLED_DIR = Path(__file__).parent / "datasets"

SqlName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
GraphName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
RelType = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")]
SqlType = Literal[
    "text", "bigint", "integer", "double precision", "boolean", "timestamptz", "date", "jsonb"
]
KeyType = Literal["text", "bigint"]

RESERVED_COLUMNS = frozenset({"key", "content_hash", "doc", "updated_at"})
RESERVED_PROPERTIES = frozenset({"_hash"})


class ColumnSpec(Strict):
    """A typed column copied from a record field, beside the JSONB document."""

    field: OnePath
    type: SqlType = "text"


class TableSpec(Strict):
    """The PostgreSQL table of an entity."""

    name: SqlName
    columns: dict[SqlName, ColumnSpec] = Field(default_factory=dict)
    indexes: list[SqlName] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> TableSpec:
        reserved = RESERVED_COLUMNS & set(self.columns)
        if reserved:
            raise ValueError(f"column names {sorted(reserved)} are reserved")
        unknown = set(self.indexes) - set(self.columns)
        if unknown:
            raise ValueError(f"indexes name columns that are not declared: {sorted(unknown)}")
        return self


class TargetSpec(Strict):
    """The node at the other end of a relationship, MERGEd by its key."""

    label: GraphName
    key: GraphName = "id"
    key_type: KeyType = "text"


class RelationshipSpec(Strict):
    """Edges derived from a field: a scalar, a list of scalars, or a list of nested objects."""

    type: RelType
    field: FieldPath
    target: TargetSpec
    key: OnePath | None = Field(None, description="Key inside each nested object.")
    direction: Literal["out", "in"] = "out"
    properties: dict[GraphName, FieldPath] = Field(default_factory=dict)
    target_properties: dict[GraphName, FieldPath] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> RelationshipSpec:
        if (self.properties or self.target_properties) and self.key is None:
            raise ValueError("properties need nested objects: set 'key' to the object's key field")
        return self


class GraphSpec(Strict):
    """The Neo4j mapping of an entity: its node and the relationships its fields imply."""

    label: GraphName
    key_property: GraphName = "id"
    properties: dict[GraphName, FieldPath] = Field(default_factory=dict)
    relationships: list[RelationshipSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> GraphSpec:
        if RESERVED_PROPERTIES & set(self.properties):
            raise ValueError(f"property names {sorted(RESERVED_PROPERTIES)} are reserved")
        return self


class EstimateSpec(Strict):
    """A count endpoint for size estimates: ``{start}``/``{end}`` in params are window bounds."""

    path: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    field: OnePath = "count"


class ParentSpec(Strict):
    """A detail entity's parent; its records' ``field`` fills the path (common.spec_details)."""

    entity: SqlName
    field: FieldPath = "id"
    concurrency: int = Field(8, ge=1, le=256, description="Detail requests in flight per slice.")


class EntitySpec(Strict):
    """One kind of record: where its pages come from, its key, its table and its node."""

    key: OnePath
    key_type: KeyType = "text"
    path: str = Field(description="URL path (http) or file path/glob (dump).")
    params: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Query params; {start}/{end} are the slice window."
    )
    window_format: Literal["unix", "iso", "date"] = "unix"
    paginator: Paginator | None = None
    records_path: FieldPath | None = Field(None, description="Where the list is in a page body.")
    estimate: EstimateSpec | None = Field(None, description="Count endpoint used by plan.")
    table: TableSpec | None = None
    graph: GraphSpec | None = None
    parent: ParentSpec | None = None


class DatasetSpec(Strict):
    """A whole dataset: source plus entities."""

    name: SqlName
    description: str = ""
    source: SourceSpec
    entities: dict[SqlName, EntitySpec] = Field(min_length=1)
    # The consumers a job publishes to and waits on (None: every one in AMQP_CONSUMERS);
    # ``extractor run --stores`` chooses for one job.
    stores: list[SqlName] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _check(self) -> DatasetSpec:
        for name, entity in self.entities.items():
            if entity.parent is not None:
                check_detail(self, name, entity)
                continue
            if isinstance(self.source, HttpSourceSpec) and entity.paginator is None:
                raise ValueError(f"entities.{name}.paginator: required for an http source")
            slicing = (
                self.source.slicing.kind if isinstance(self.source, HttpSourceSpec) else "none"
            )
            if slicing != "none" and not _reaches_window(entity):
                raise ValueError(
                    f"entities.{name}.params: the source is sliced {slicing}"
                    " but no request uses the window: put"
                    " {start}/{end} in params or use a timestamp paginator"
                    " (or slicing kind none)"
                )
        tables = [e.table.name for e in self.entities.values() if e.table]
        if len(tables) != len(set(tables)):
            raise ValueError("two entities map to the same table")
        return self


def _reaches_window(entity: EntitySpec) -> bool:
    if isinstance(entity.paginator, TIMESTAMP_PAGINATORS):
        return True
    values = [str(v) for v in entity.params.values()]
    return any(field in value for value in values for field in WINDOW_FIELDS)


def load_spec(name_or_path: str | Path) -> DatasetSpec:
    """Read and validate a spec: a path to a YAML file, or the name of a bundled one."""
    path = _resolve(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(str(path), "(yaml)", str(exc).replace("\n", " ")) from exc
    return parse_spec(raw, str(path))


def parse_spec(raw: Any, origin: str) -> DatasetSpec:
    """Validate an already-parsed spec; errors name ``origin``, the field and the reason."""
    if not isinstance(raw, dict):
        raise SpecError(origin, "(top)", "a spec must be a mapping")
    try:
        return DatasetSpec.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"] if not _is_union_tag(part)) or "(top)"
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown field"
        if first["type"] == "missing":
            reason = "required field is missing"
        if field == "(top)" and re.match(r"^[\w.]+: ", reason):  # a check across fields
            field, reason = reason.split(": ", 1)
        raise SpecError(origin, field, reason) from exc


def _is_union_tag(part: str | int) -> bool:
    tags = {"http", "dump", "before_timestamp", "after_timestamp", "page_number", "offset"}
    auths = {"bearer", "api_key", "basic", "oauth2_client_credentials"}
    return part in tags | {"cursor", "next_url", "link_header"} | auths


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in {".yaml", ".yml"} or path.exists():
        return path
    return BUNDLED_DIR / f"{name_or_path}.yaml"


def bundled_specs() -> list[str]:
    """Names of the specs that ship with the project."""
    return sorted(p.stem for p in BUNDLED_DIR.glob("*.yaml"))
