"""Paginators: one small class per pagination kind, behind one interface.

A paginator's position is a small immutable value (a page number, a timestamp) so that a
checkpoint can store it and resuming is building the paginator from the saved value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from common.records import get_path
from common.spec import BeforeTimestampPaginator, PageNumberPaginator


@dataclass(frozen=True)
class Window:
    """The part of the source a slice covers: [start, end) as unix seconds, or unbounded."""

    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Page:
    """What one response (or stretch of a dump file) yields: records, and where to go next.

    ``file_stats`` is a dump reader's account of its file so far (bytes read, skipped
    records), kept with the page's checkpoint.
    """

    records: list[Any]
    next_position: Any | None
    file_stats: dict[str, Any] | None = None


class Paginator(Protocol):
    def first_position(self, window: Window) -> Any:
        """Where a slice starts."""

    def params(self, position: Any) -> dict[str, Any]:
        """Query parameters that ask for the page at ``position``."""

    def parse(self, items: list[Any], position: Any, window: Window) -> Page:
        """Records of the slice on this page and the next position (None: slice done)."""


class BeforeTimestamp:
    """Newest first by a ``before`` timestamp; page_size+1 items mean there is more.

    The next position is the timestamp of the last item kept, so the next page starts
    strictly before it. Items older than the window's start end the slice.
    """

    def __init__(self, spec: BeforeTimestampPaginator) -> None:
        self.spec = spec

    def first_position(self, window: Window) -> int | None:
        return window.end

    def params(self, position: int | None) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if position is not None:
            params[self.spec.param] = position
        if self.spec.page_size_param:
            params[self.spec.page_size_param] = self.spec.page_size
        return params

    def parse(self, items: list[Any], position: int | None, window: Window) -> Page:
        more = len(items) > self.spec.page_size
        page = items[: self.spec.page_size]
        kept = [item for item in page if self._in_window(item, window)]
        crossed_start = len(kept) < len(page)
        if not more or crossed_start or not page:
            return Page(kept, None)
        last = self._timestamp(page[-1])
        if position is not None and last >= position:
            raise ValueError(f"cursor did not move: {self.spec.field}={last} at before={position}")
        if self._timestamp(items[self.spec.page_size]) == last:
            # The next page asks for items strictly before `last`: the tied ones would be lost.
            raise ValueError(
                f"{self.spec.field}={last} is shared by the last item of the page and the next"
                f" one: paging before it would skip records (raise page_size above the ties)"
            )
        return Page(kept, last)

    def _timestamp(self, item: Any) -> int:
        value = get_path(item, self.spec.field)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ValueError(f"item has no numeric {self.spec.field!r}: {value!r}")
        return int(value)

    def _in_window(self, item: Any, window: Window) -> bool:
        return window.start is None or self._timestamp(item) >= window.start


class PageNumber:
    """page=1,2,3..; a short or empty page ends the slice."""

    def __init__(self, spec: PageNumberPaginator) -> None:
        self.spec = spec

    def first_position(self, window: Window) -> int:
        return self.spec.first

    def params(self, position: int) -> dict[str, Any]:
        params: dict[str, Any] = {self.spec.param: position}
        if self.spec.page_size_param:
            params[self.spec.page_size_param] = self.spec.page_size
        return params

    def parse(self, items: list[Any], position: int, window: Window) -> Page:
        done = len(items) < self.spec.page_size
        return Page(items, None if done else position + 1)


class RepeatGuard:
    """Notices a source that answers a new position with the page it just gave (it ignores
    the cursor), which would otherwise publish the same page forever."""

    def __init__(self) -> None:
        self._previous: list[Any] = []

    def check(self, items: list[Any], position: Any) -> None:
        if items and items == self._previous:
            raise ValueError(
                f"page at {position!r} repeats the previous page: the source ignores the cursor"
            )
        self._previous = items


def paginator_for(spec: BeforeTimestampPaginator | PageNumberPaginator) -> Paginator:
    if isinstance(spec, BeforeTimestampPaginator):
        return BeforeTimestamp(spec)
    return PageNumber(spec)
