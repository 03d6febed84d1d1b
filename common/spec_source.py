"""The source half of the dataset spec: where pages come from (an HTTP API or dump files),
how a job is sliced and rate limited, how each entity pages (the paginators) and how the
requests are authenticated. ``common.spec`` adds the entities' tables and graphs.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from common.paths import compiled, one_value

FieldPath = Annotated[str, AfterValidator(compiled)]
"""``a.b.c``, ``a[0].b`` or ``a[*].b`` (many values: a list); compiled once, on load."""
OnePath = Annotated[FieldPath, AfterValidator(one_value)]
"""A field path where one value is needed (a key, a column, a cursor): no ``[*]``."""


class Strict(BaseModel):
    """A spec model: unknown fields refused, immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimitSpec(Strict):
    """Requests per second a source allows: where to start and what never to exceed."""

    initial: float = Field(20.0, gt=0)
    maximum: float = Field(100.0, gt=0)
    # Lower the rate when the source's latency climbs well above its floor (for sources that
    # slow down instead of answering 429). Off by default: 429, Retry-After and RateLimit-*
    # are the source's own word, while latency also rises when this machine's CPU is busy.
    latency_pacing: bool = False


class SlicingSpec(Strict):
    """How a job's date range is cut into independent slices."""

    kind: Literal["daily", "hourly", "none"] = "daily"
    start: dt.date | dt.datetime | None = None
    end: dt.date | dt.datetime | None = None


MoreSignal = Literal["extra_row", "full_page"]
"""How a page says there is more: ``extra_row`` (page_size + 1 rows, the last one only a
signal: a server that fixes its page size and sends one row more) or ``full_page`` (a page
of page_size rows; fewer rows than asked is the last page)."""


class _Timestamped(Strict):
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


class PageNumberPaginator(Strict):
    """page=1,2,3..; stops at an empty page, or a short one (``stop: short_page``)."""

    kind: Literal["page_number"]
    param: str = "page"
    first: int = 1
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = "per_page"
    stop: Literal["short_page", "empty_page"] = "short_page"


class OffsetPaginator(Strict):
    """offset=0,n,2n..; stops at a short or empty page, or at the total read from the body."""

    kind: Literal["offset"]
    param: str = "offset"
    limit_param: str | None = "limit"
    page_size: int = Field(100, ge=1)
    total_path: OnePath | None = None
    stop: Literal["short_page", "empty_page"] = "short_page"


class CursorPaginator(Strict):
    """A token read from the body, sent back as a param; absent or empty: the last page."""

    kind: Literal["cursor"]
    param: str = "cursor"
    cursor_path: OnePath = "next_cursor"
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = None


class NextUrlPaginator(Strict):
    """The next page's URL read from the body (only on the source's host and scheme)."""

    kind: Literal["next_url"]
    next_path: OnePath = "next"
    page_size: int = Field(100, ge=1)
    page_size_param: str | None = None


class LinkHeaderPaginator(Strict):
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


class BearerAuth(Strict):
    """``Authorization: Bearer <token>``, the token from ``token_env`` (or ``..._FILE``)."""

    kind: Literal["bearer"]
    token_env: EnvName


class ApiKeyAuth(Strict):
    """An API key in a header or a query parameter, from ``key_env`` (or ``..._FILE``)."""

    kind: Literal["api_key"]
    name: str = "X-API-Key"
    location: Literal["header", "query"] = "header"
    key_env: EnvName


class BasicAuth(Strict):
    """HTTP basic auth, user and password from environment variables (or ``..._FILE``)."""

    kind: Literal["basic"]
    username_env: EnvName
    password_env: EnvName


class OAuth2ClientCredentials(Strict):
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


class HttpSourceSpec(Strict):
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


class DumpSourceSpec(Strict):
    """Dump files on disk: per entity, a file name or glob relative to base_path."""

    kind: Literal["dump"]
    format: Literal["jsonl", "csv", "discogs_xml"]
    base_path: str = "."
    page_size: int = Field(500, ge=1, description="Records per published page batch.")


SourceSpec = Annotated[HttpSourceSpec | DumpSourceSpec, Field(discriminator="kind")]
