"""Paginators: one small class per pagination kind, behind one interface.

A paginator's position is a small JSON value (a page number, an offset, a cursor token, a
URL, or a timestamp boundary with the keys already taken at it) that a checkpoint stores;
resuming is building the paginator and asking for the page at the saved value. Positions
are values: a paginator never changes one, it returns the next.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

from common.outcomes import FailSlice
from common.records import get_path
from common.spec_source import (
    AfterTimestampPaginator,
    BeforeTimestampPaginator,
    CursorPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    PaginatorSpec,
)
from extractor.ledger.slices import Window


@dataclass(frozen=True)
class Page:
    """What one response (or stretch of a dump file) yields: records, and where to go next.

    ``file_stats`` is a dump reader's account of its file so far (bytes read, skipped
    records), kept with the page's checkpoint.
    """

    records: list[Any]
    next_position: Any | None
    file_stats: dict[str, Any] | None = None


@dataclass(frozen=True)
class Response:
    """One decoded answer: the body, the list of items in it, its headers and URL."""

    items: list[Any]
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


@dataclass(frozen=True)
class Request:
    """Where the page at a position is: a path under base_url (or a whole URL) and params.

    ``entity_params``: whether the entity's own params go with it (a next URL carries its
    own query).
    """

    path: str | None
    params: dict[str, Any]
    entity_params: bool = True


class Paginator(Protocol):
    def first_position(self, window: Window) -> Any:
        """Where a slice starts."""

    def request(self, position: Any) -> Request:
        """The request that asks for the page at ``position`` (path None: the entity's)."""

    def parse(self, response: Response, position: Any, window: Window) -> Page:
        """Records of the slice on this page and the next position (None: slice done)."""


class PaginationError(FailSlice):
    """The source cannot be paged any further without losing or repeating records."""


def _sized(param: str | None, page_size: int) -> dict[str, Any]:
    return {param: page_size} if param else {}


class PageNumber:
    """page=1,2,3..; an empty page (or a short one, by default) ends the slice."""

    def __init__(self, spec: PageNumberPaginator) -> None:
        self.spec = spec

    def first_position(self, window: Window) -> int:
        return self.spec.first

    def request(self, position: int) -> Request:
        params = {
            self.spec.param: position,
            **_sized(self.spec.page_size_param, self.spec.page_size),
        }
        return Request(None, params)

    def params(self, position: int) -> dict[str, Any]:
        return self.request(position).params

    def parse(self, response: Response, position: int, window: Window) -> Page:
        items = response.items
        short = self.spec.stop == "short_page" and len(items) < self.spec.page_size
        return Page(items, None if short or not items else position + 1)


class Offset:
    """offset=0,n,2n.. (advancing by the rows received, so a server that fixes a smaller
    page size loses nothing); ends at a short or empty page, or at the body's total."""

    def __init__(self, spec: OffsetPaginator) -> None:
        self.spec = spec

    def first_position(self, window: Window) -> int:
        return 0

    def request(self, position: int) -> Request:
        params = {self.spec.param: position, **_sized(self.spec.limit_param, self.spec.page_size)}
        return Request(None, params)

    def parse(self, response: Response, position: int, window: Window) -> Page:
        items = response.items
        after = position + len(items)
        if not items:
            return Page(items, None)
        if self.spec.total_path is not None:
            total = get_path(response.body, self.spec.total_path)
            if not isinstance(total, int) or isinstance(total, bool):
                raise PaginationError(f"body has no integer {self.spec.total_path!r}: {total!r}")
            return Page(items, None if after >= total else after)
        if self.spec.stop == "short_page" and len(items) < self.spec.page_size:
            return Page(items, None)
        return Page(items, after)


class Cursor:
    """A token read from the body and sent back; absent or empty ends the slice."""

    def __init__(self, spec: CursorPaginator) -> None:
        self.spec = spec

    def first_position(self, window: Window) -> str | None:
        return None

    def request(self, position: str | None) -> Request:
        params = _sized(self.spec.page_size_param, self.spec.page_size)
        if position is not None:
            params[self.spec.param] = position
        return Request(None, params)

    def parse(self, response: Response, position: str | None, window: Window) -> Page:
        token = get_path(response.body, self.spec.cursor_path)
        if token is None or token == "" or not response.items:
            return Page(response.items, None)
        token = str(token)
        if token == position:
            raise PaginationError(f"cursor did not move: {self.spec.cursor_path}={token!r}")
        return Page(response.items, token)


class FollowsUrls:
    """Follows next-page URLs, only on the source's host and scheme."""

    base_url: str
    page_size: int
    page_size_param: str | None

    def first_position(self, window: Window) -> str | None:
        return None

    def request(self, position: str | None) -> Request:
        if position is None:
            return Request(None, _sized(self.page_size_param, self.page_size))
        return Request(self._checked(position), {}, entity_params=False)

    def _next(self, url: str | None, response: Response, position: str | None) -> str | None:
        if not url or not response.items:
            return None
        url = self._checked(urljoin(response.url or self.base_url + "/", url))
        if url == position or url == response.url:
            raise PaginationError(f"next URL did not move: {url}")
        return url

    def _checked(self, url: str) -> str:
        base, target = urlsplit(self.base_url), urlsplit(url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise PaginationError(
                f"refusing next page URL {url}: not on the source's {base.scheme}://{base.netloc}"
            )
        return url


class NextUrl(FollowsUrls):
    """The next page's URL read from the body by path."""

    def __init__(self, spec: NextUrlPaginator, base_url: str) -> None:
        self.spec, self.base_url = spec, base_url.rstrip("/")
        self.page_size, self.page_size_param = spec.page_size, spec.page_size_param

    def parse(self, response: Response, position: str | None, window: Window) -> Page:
        url = get_path(response.body, self.spec.next_path)
        return Page(response.items, self._next(url if url else None, response, position))


LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,<]+)*)")
REL = re.compile(r"""rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)


def link_target(header: str, rel: str) -> str | None:
    """The target of the first link of relation ``rel`` in an RFC 8288 Link header."""
    for match in LINK.finditer(header):
        relation = REL.search(match.group(2))
        if relation and rel in (relation.group(1) or relation.group(2) or "").lower().split():
            return match.group(1)
    return None


class LinkHeader(FollowsUrls):
    """The next page's URL from the ``Link`` header's ``rel="next"``."""

    def __init__(self, spec: LinkHeaderPaginator, base_url: str) -> None:
        self.spec, self.base_url = spec, base_url.rstrip("/")
        self.page_size, self.page_size_param = spec.page_size, spec.page_size_param

    def parse(self, response: Response, position: str | None, window: Window) -> Page:
        header = response.headers.get("Link", "")
        return Page(
            response.items, self._next(link_target(header, self.spec.rel), response, position)
        )


@dataclass(frozen=True)
class Boundary:
    """A timestamp position: every record past ``at`` is taken, and of those at ``at``,
    the ones keyed ``taken``. JSON: ``{"at": at, "taken": [...]}``."""

    at: int
    taken: frozenset[Any]

    def as_json(self) -> dict[str, Any]:
        return {"at": self.at, "taken": sorted(self.taken, key=str)}


class _Timestamp:
    """Paging by a record timestamp, newest or oldest first, without losing ties.

    The next request overlaps the boundary (the API's bound inclusive, or exclusive and one
    past it) and drops the records the position says were taken. Only a tie group larger
    than a page stops the slice: the API offers no way past it.
    """

    direction: int  # -1: newest first (before), +1: oldest first (after)

    def __init__(self, spec: BeforeTimestampPaginator | AfterTimestampPaginator, key: str) -> None:
        self.spec = spec
        self.key = key

    def boundary(self, position: Any) -> Boundary | None:
        """The position as a value; an int is a checkpoint from before ties were kept
        (everything at and past it taken)."""
        if position is None:
            return None
        if isinstance(position, int):
            return Boundary(position + self.direction, frozenset())
        return Boundary(int(position["at"]), frozenset(position.get("taken", ())))

    def request(self, position: Any) -> Request:
        params = _sized(self.spec.page_size_param, self.spec.page_size)
        boundary = self.boundary(position)
        if boundary is not None:
            params[self.spec.param] = boundary.at - (0 if self.spec.inclusive else self.direction)
        return Request(None, params)

    def params(self, position: Any) -> dict[str, Any]:
        return self.request(position).params

    def parse(self, response: Response, position: Any, window: Window) -> Page:
        items, size = response.items, self.spec.page_size
        more = len(items) > size if self.spec.more == "extra_row" else len(items) >= size
        page = items[:size]
        boundary = self.boundary(position)
        fresh = [item for item in page if not self._taken(item, boundary)]
        kept = [item for item in fresh if self._in_window(item, window)]
        if not more or len(kept) < len(fresh) or not page:
            return Page(kept, None)
        last = self._timestamp(page[-1])
        if boundary is not None and (last - boundary.at) * self.direction < 0:
            raise PaginationError(
                f"cursor did not move: {self.spec.field}={last}"
                f" past {self.spec.param}={boundary.at}"
            )
        if self.spec.more == "extra_row" and self._timestamp(items[size]) != last:
            # The extra row shows the group at ``last`` ends on this page: no overlap needed.
            return Page(kept, Boundary(last + self.direction, frozenset()).as_json())
        taken = frozenset(self._key(i) for i in page if self._timestamp(i) == last)
        if boundary is not None and boundary.at == last:
            taken |= boundary.taken
            if not fresh:
                raise PaginationError(
                    f"{len(taken)} or more records share {self.spec.field}={last}, a"
                    f" whole page of {size}: the API offers no way past them"
                )
        return Page(kept, Boundary(last, taken).as_json())

    def _taken(self, item: Any, boundary: Boundary | None) -> bool:
        if boundary is None:
            return False
        offset = (self._timestamp(item) - boundary.at) * self.direction
        return offset < 0 or (offset == 0 and self._key(item) in boundary.taken)

    def _key(self, item: Any) -> Any:
        value = get_path(item, self.key)
        if value is None:
            raise PaginationError(f"item has no key {self.key!r}")
        return value

    def _timestamp(self, item: Any) -> int:
        value = get_path(item, self.spec.field)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise PaginationError(f"item has no numeric {self.spec.field!r}: {value!r}")
        return int(value)

    def _in_window(self, item: Any, window: Window) -> bool:
        stamp = self._timestamp(item)
        if self.direction < 0:
            return window.start is None or stamp >= window.start
        return window.end is None or stamp < window.end


class BeforeTimestamp(_Timestamp):
    """Newest first by a ``before`` timestamp, from the window's end down to its start."""

    direction = -1

    def first_position(self, window: Window) -> Any:
        return None if window.end is None else Boundary(window.end - 1, frozenset()).as_json()


class AfterTimestamp(_Timestamp):
    """Oldest first by an ``after`` timestamp, from the window's start up to its end."""

    direction = 1

    def first_position(self, window: Window) -> Any:
        return None if window.start is None else Boundary(window.start, frozenset()).as_json()


class RepeatGuard:
    """Notices a source that answers a new position with the page it just gave (it ignores
    the cursor), which would otherwise publish the same page forever."""

    def __init__(self) -> None:
        self._previous: list[Any] = []

    def check(self, items: list[Any], position: Any) -> None:
        if items and items == self._previous:
            raise PaginationError(
                f"page at {position!r} repeats the previous page: the source ignores the cursor"
            )
        self._previous = items


def paginator_for(spec: PaginatorSpec, *, key: str = "id", base_url: str = "") -> Paginator:
    """The paginator of a spec; ``key`` is the entity's key (timestamp ties are told apart by
    it), ``base_url`` the source's (next URLs are followed only there)."""
    match spec:
        case BeforeTimestampPaginator():
            return BeforeTimestamp(spec, key)
        case AfterTimestampPaginator():
            return AfterTimestamp(spec, key)
        case PageNumberPaginator():
            return PageNumber(spec)
        case OffsetPaginator():
            return Offset(spec)
        case CursorPaginator():
            return Cursor(spec)
        case NextUrlPaginator():
            return NextUrl(spec, base_url)
        case LinkHeaderPaginator():
            return LinkHeader(spec, base_url)
    raise AssertionError(f"no paginator for {spec!r}")
