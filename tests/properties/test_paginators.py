"""Paginators walked over simulated sources, by property: an honest source is walked
completely, each record once, in a bounded number of pages, whatever its ties at page
boundaries; a tie group larger than a page or a cursor the source ignores is refused with a
clear error, never looped on or silently short. Positions go through JSON between pages,
as a checkpoint would carry them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.spec_source import (
    AfterTimestampPaginator,
    BeforeTimestampPaginator,
    CursorPaginator,
    OffsetPaginator,
    PageNumberPaginator,
)
from extractor.ledger.slices import Window
from extractor.sources.paginators import (
    AfterTimestamp,
    BeforeTimestamp,
    Cursor,
    Offset,
    PageNumber,
    PaginationError,
    Paginator,
    RepeatGuard,
    Response,
)

TIMES = st.lists(st.integers(0, 60), max_size=120)
Record = dict[str, int]


def records(times: list[int]) -> list[Record]:
    return [{"id": i, "uploadtime": t} for i, t in enumerate(times)]


def serve_timestamps(
    rows: list[Record], params: dict[str, Any], spec: Any, server_size: int
) -> list[Record]:
    """A timestamp API: ordered by (time, id), bounded by its param, inclusive or not."""
    newest_first = isinstance(spec, BeforeTimestampPaginator)
    ordered = sorted(rows, key=lambda r: (r["uploadtime"], r["id"]), reverse=newest_first)
    bound = params.get(spec.param)
    if bound is not None:
        if newest_first:
            keep = (lambda t: t <= bound) if spec.inclusive else (lambda t: t < bound)
        else:
            keep = (lambda t: t >= bound) if spec.inclusive else (lambda t: t > bound)
        ordered = [r for r in ordered if keep(r["uploadtime"])]
    extra = 1 if spec.more == "extra_row" else 0
    return ordered[: server_size + extra]


def walk(paginator: Paginator, serve: Any, window: Window, limit: int) -> list[Any]:
    position, seen, guard = paginator.first_position(window), [], RepeatGuard()
    for _ in range(limit):
        items = serve(paginator.request(position).params)
        page = paginator.parse(Response(items, {"items": items}), position, window)
        guard.check(items, position)
        seen += page.records
        if page.next_position is None:
            return seen
        position = json.loads(json.dumps(page.next_position))  # as the ledger keeps it
    raise AssertionError("the paginator did not stop")


def in_window(row: Record, window: Window) -> bool:
    t = row["uploadtime"]
    return (window.start is None or t >= window.start) and (window.end is None or t < window.end)


def timestamp_paginator(data: st.DataObject, size: int) -> BeforeTimestamp | AfterTimestamp:
    inclusive, more = (
        data.draw(st.booleans()),
        data.draw(st.sampled_from(["extra_row", "full_page"])),
    )
    if data.draw(st.booleans()):
        spec = BeforeTimestampPaginator(
            kind="before_timestamp", page_size=size, inclusive=inclusive, more=more
        )
        return BeforeTimestamp(spec, "id")
    after = AfterTimestampPaginator(
        kind="after_timestamp", page_size=size, inclusive=inclusive, more=more
    )
    return AfterTimestamp(after, "id")


@given(TIMES, st.integers(1, 20), st.data())
def test_timestamp_paging_takes_every_record_of_the_window_once_despite_ties(
    times: list[int], size: int, data: st.DataObject
) -> None:
    paginator = timestamp_paginator(data, size)
    window = Window(
        data.draw(st.none() | st.integers(0, 60)), data.draw(st.none() | st.integers(0, 61))
    )
    rows = records(times)
    expected = sorted(r["id"] for r in rows if in_window(r, window))

    def serve(params: dict[str, Any]) -> list[Record]:
        return serve_timestamps(rows, params, paginator.spec, size)

    groups = max((times.count(t) for t in set(times)), default=0)
    try:
        seen = walk(paginator, serve, window, limit=2 * len(times) + 3)
    except PaginationError as exc:
        # Only a tie group that does not fit on a page (beside the one row of overlap) stops.
        assert groups >= size, (groups, size)
        assert "share uploadtime=" in str(exc) and f"page of {size}" in str(exc)
        return
    assert sorted(r["id"] for r in seen) == expected


@given(st.integers(2, 10), st.integers(0, 5), st.data())
def test_a_tie_group_larger_than_a_page_fails_with_the_timestamp_and_count(
    size: int, before_group: int, data: st.DataObject
) -> None:
    paginator = timestamp_paginator(data, size)
    rows = records([7] * (size + 1 + data.draw(st.integers(0, 5))) + list(range(before_group)))

    def serve(params: dict[str, Any]) -> list[Record]:
        return serve_timestamps(rows, params, paginator.spec, size)

    with pytest.raises(PaginationError, match=rf"{size} or more records share uploadtime=7"):
        walk(paginator, serve, Window(), limit=len(rows) + 3)


def test_a_checkpoint_from_before_ties_were_kept_still_resumes() -> None:
    spec = BeforeTimestampPaginator(kind="before_timestamp", page_size=2)
    paginator = BeforeTimestamp(spec, "id")
    assert paginator.request(80).params == {"before": 80}  # the old int: strictly before it
    rows = records([100, 90, 80, 70, 60])
    page = paginator.parse(Response(rows[3:]), 80, Window())
    assert [r["uploadtime"] for r in page.records] == [70, 60]


@given(st.integers(0, 300), st.integers(1, 40), st.integers(0, 3), st.booleans())
def test_page_number_walks_every_record_once(
    total: int, size: int, first: int, empty_stop: bool
) -> None:
    stop = "empty_page" if empty_stop else "short_page"
    spec = PageNumberPaginator(kind="page_number", page_size=size, first=first, stop=stop)
    rows = list(range(total))

    def serve(params: dict[str, Any]) -> list[int]:
        offset = (params["page"] - first) * size
        return rows[offset : offset + size]

    assert walk(PageNumber(spec), serve, Window(), total // size + 3) == rows


@given(st.integers(0, 300), st.integers(1, 40), st.integers(1, 40), st.booleans())
def test_offset_walks_every_record_once_even_when_the_server_fixes_the_page_size(
    total: int, asked: int, fixed: int, with_total: bool
) -> None:
    """A server that answers fewer rows than asked loses nothing with a total or
    ``stop: empty_page``."""
    total_path = "total" if with_total else None
    spec = OffsetPaginator(kind="offset", page_size=asked, total_path=total_path, stop="empty_page")
    paginator, rows = Offset(spec), list(range(total))
    position, seen = paginator.first_position(Window()), []
    for _ in range(total + 2):
        params = paginator.request(position).params
        items = rows[params["offset"] : params["offset"] + min(fixed, params["limit"])]
        page = paginator.parse(Response(items, {"total": total}), position, Window())
        seen += page.records
        if page.next_position is None:
            break
        position = page.next_position
    assert seen == rows


@given(st.integers(0, 200), st.integers(1, 30))
def test_cursor_walks_every_record_once(total: int, size: int) -> None:
    paginator, rows = Cursor(CursorPaginator(kind="cursor", page_size=size)), list(range(total))
    position, seen = paginator.first_position(Window()), []
    for _ in range(total + 2):
        start = int(paginator.request(position).params.get("cursor", 0))
        items = rows[start : start + size]
        token = str(start + size) if start + size < total else None
        page = paginator.parse(Response(items, {"next_cursor": token}), position, Window())
        seen += page.records
        if page.next_position is None:
            break
        position = page.next_position
    assert seen == rows


@given(st.lists(st.integers(), min_size=1, max_size=10), st.integers(1, 5))
def test_a_source_that_ignores_the_cursor_is_caught_on_the_second_page(
    items: list[Any], first: int
) -> None:
    guard = RepeatGuard()
    guard.check(list(items), first)
    with pytest.raises(PaginationError, match=f"page at {first + 1} repeats the previous page"):
        guard.check(list(items), first + 1)
