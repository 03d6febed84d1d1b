"""The dataset spec: declared once in YAML, validated here, read by every service.

A spec names the source (where pages come from and how they are sliced and rate limited)
and, per entity, its key, its PostgreSQL table and its Neo4j graph mapping. Every name that
ends up in SQL or Cypher is checked against a strict identifier pattern here, so the write
paths never see an injected name.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from common.errors import SpecError
from common.paths import compiled, one_value
from common.spec_details import check_detail

BUNDLED_DIR = Path(__file__).parent / "datasets"

SqlName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
GraphName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
RelType = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,63}$")]
FieldPath = Annotated[str, AfterValidator(compiled)]
"""``a.b.c``, ``a[0].b`` or ``a[*].b`` (many values: a list); compiled once, on load."""
OnePath = Annotated[FieldPath, AfterValidator(one_value)]
"""A field path where one value is needed (a key, a column, a cursor): no ``[*]``."""
SqlType = Literal[
    "text", "bigint", "integer", "double precision", "boolean", "timestamptz", "date", "jsonb"
]
KeyType = Literal["text", "bigint"]

RESERVED_COLUMNS = frozenset({"key", "content_hash", "doc", "updated_at"})
RESERVED_PROPERTIES = frozenset({"_hash"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitSpec(_Strict):
    """Requests per second a source allows: where to start and what never to exceed."""

    initial: float = Field(20.0, gt=0)
    maximum: float = Field(100.0, gt=0)
    # Lower the rate when the source's latency climbs well above its floor (for sources that
    # slow down instead of answering 429). Off by default: 429, Retry-After and RateLimit-*
    # are the source's own word, while latency also rises when this machine's CPU is busy.
    latency_pacing: bool = False


class SlicingSpec(_Strict):
    """How a job's date range is cut into independent slices."""

    kind: Literal["daily", "hourly", "none"] = "daily"
    start: dt.date | dt.datetime | None = None
    end: dt.date | dt.datetime | None = None


MoreSignal = Literal["extra_row", "full_page"]
"""How a page says there is more: ``extra_row`` (page_size + 1 rows, the last one only a
signal: a server that fixes its page size and sends one row more) or ``full_page`` (a page
of page_size rows; fewer rows than asked is the last page)."""


class _Timestamped(_Strict):
    """Paging by a record timestamp; ties at the page boundary are overlapped, never lost."""

    field: OnePath = "uploadtime"
    page_size: int = Field(50, ge=1, description="Rows a page holds (the server's if fixed).")
    page_size_param: str | None = None
    more: MoreSignal = "extra_row"
    inclusive: bool = Field(False, description="The API's bound includes its timestamp.")


class BeforeTimestampPaginator(_Timestamped):
    """Newest first; cursor = the boundary timestamp and the keys already taken at it."""

    kind: Literal["before_timestamp"]
    param: str = "before"


class AfterTimestampPaginator(_Timestamped):
    """Oldest first; cursor = the boundary timestamp and the keys already taken at it."""

    kind: Literal["after_timestamp"]
    param: str = "after"
    more: MoreSignal = "full_page"
    inclusive: bool = True


class PageNumberPaginator(_Strict):
    """page=1,2,3..; stops at an empty page, or a short one (``stop: short_page``)."""

    kind: Literal["page_number"]
    param: str = "page"
    first: int = 1
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = "per_page"
    stop: Literal["short_page", "empty_page"] = "short_page"


class OffsetPaginator(_Strict):
    """offset=0,n,2n..; stops at a short or empty page, or at the total read from the body."""

    kind: Literal["offset"]
    param: str = "offset"
    limit_param: str | None = "limit"
    page_size: int = Field(100, ge=1)
    total_path: OnePath | None = None
    stop: Literal["short_page", "empty_page"] = "short_page"


class CursorPaginator(_Strict):
    """A token read from the body, sent back as a param; absent or empty: the last page."""

    kind: Literal["cursor"]
    param: str = "cursor"
    cursor_path: OnePath = "next_cursor"
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = None


class NextUrlPaginator(_Strict):
    """The next page's URL read from the body (only on the source's host and scheme)."""

    kind: Literal["next_url"]
    next_path: OnePath = "next"
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = None


class LinkHeaderPaginator(_Strict):
    """The next page's URL from an RFC 8288 ``Link: <url>; rel="next"`` header."""

    kind: Literal["link_header"]
    rel: str = "next"
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = None


PaginatorSpec = (
    BeforeTimestampPaginator
    | AfterTimestampPaginator
    | PageNumberPaginator
    | OffsetPaginator
    | CursorPaginator
    | NextUrlPaginator
    | LinkHeaderPaginator
)
Paginator = Annotated[PaginatorSpec, Field(discriminator="kind")]
TIMESTAMP_PAGINATORS = (BeforeTimestampPaginator, AfterTimestampPaginator)
WINDOW_FIELDS = ("{start}", "{end}")


EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class BearerAuth(_Strict):
    """``Authorization: Bearer <token>``, the token from ``token_env`` (or ``..._FILE``)."""

    kind: Literal["bearer"]
    token_env: EnvName


class ApiKeyAuth(_Strict):
    """An API key in a header or a query parameter, from ``key_env`` (or ``..._FILE``)."""

    kind: Literal["api_key"]
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"
    key_env: EnvName


class BasicAuth(_Strict):
    """HTTP basic auth, user and password from environment variables (or ``..._FILE``)."""

    kind: Literal["basic"]
    username_env: EnvName
    password_env: EnvName


class OAuth2ClientCredentials(_Strict):
    """OAuth 2.0 client credentials (RFC 6749 4.4): a bearer token fetched from
    ``token_url`` with the client's id and secret (from environment variables or
    ``..._FILE``), cached, and fetched again before it expires or when the API answers 401.

    ``token_url`` is a whole URL, or a path on the source's base URL (``/oauth/token``);
    the client secret is sent there only, never to the API.
    """

    kind: Literal["oauth2_client_credentials"]
    token_url: Annotated[str, Field(pattern=r"^(https?://[^/\s]+)?/\S*$")]
    client_id_env: EnvName
    client_secret_env: EnvName
    scope: str | None = None
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"


AuthSpec = BearerAuth | ApiKeyAuth | BasicAuth | OAuth2ClientCredentials


class HttpSourceSpec(_Strict):
    """A paginated HTTP JSON API."""

    kind: Literal["http"]
    base_url: str
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Annotated[AuthSpec, Field(discriminator="kind")] | None = None
    error_path: FieldPath | None = Field(
        None, description="A field whose presence in a 200 body means an error (retried)."
    )
    rate_limit: RateLimitSpec = Field(default_factory=RateLimitSpec)
    slicing: SlicingSpec = Field(default_factory=SlicingSpec)


class DumpSourceSpec(_Strict):
    """Dump files on disk: per entity, a file name or glob relative to base_path."""

    kind: Literal["dump"]
    format: Literal["jsonl", "csv", "discogs_xml"]
    base_path: str = "."
    page_size: int = Field(500, ge=1, description="Records per published page batch.")


SourceSpec = Annotated[HttpSourceSpec | DumpSourceSpec, Field(discriminator="kind")]


class ColumnSpec(_Strict):
    """A typed column copied from a record field, beside the JSONB document."""

    field: OnePath
    type: SqlType = "text"


class TableSpec(_Strict):
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


class TargetSpec(_Strict):
    """The node at the other end of a relationship, MERGEd by its key."""

    label: GraphName
    key: GraphName = "id"
    key_type: KeyType = "text"


class RelationshipSpec(_Strict):
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


class GraphSpec(_Strict):
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


class EstimateSpec(_Strict):
    """A count endpoint for size estimates: ``{start}``/``{end}`` in params are window bounds."""

    path: str
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    field: OnePath = "count"


class ParentSpec(_Strict):
    """A detail entity's parent; its records' ``field`` fills the path (common.spec_details)."""

    entity: SqlName
    field: FieldPath = "id"
    concurrency: int = Field(8, ge=1, le=256, description="Detail requests in flight per slice.")


class EntitySpec(_Strict):
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


class DatasetSpec(_Strict):
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
