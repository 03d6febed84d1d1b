"""Paginators walked over simulated sources, by property: an honest source is walked
completely, each record once, in a bounded number of pages; a dishonest one (ties across
a page boundary, a cursor it ignores) is refused with a clear error, never looped on or
silently short."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.spec import BeforeTimestampPaginator, PageNumberPaginator
from extractor.paginators import BeforeTimestamp, PageNumber, RepeatGuard, Window

TIMES = st.lists(st.integers(0, 10_000), max_size=120)


def serve_before(times: list[int], before: int | None, size: int) -> list[dict[str, int]]:
    """A before-timestamp API: newest first, strictly before the cursor, page_size+1 items."""
    older = [t for t in sorted(times, reverse=True) if before is None or t < before]
    return [{"uploadtime": t} for t in older[: size + 1]]


def walk_before(times: list[int], window: Window, size: int) -> list[int]:
    paginator = BeforeTimestamp(BeforeTimestampPaginator(kind="before_timestamp", page_size=size))
    position, seen = paginator.first_position(window), []
    for _ in range(len(times) + 2):  # more pages than records would be a loop
        page = paginator.parse(serve_before(times, position, size), position, window)
        seen += [item["uploadtime"] for item in page.records]
        if page.next_position is None:
            return seen
        position = page.next_position
    raise AssertionError("the paginator did not stop")


@given(st.sets(st.integers(0, 10_000), max_size=120), st.integers(1, 20), st.data())
def test_before_timestamp_walks_each_record_of_the_window_once(
    unique: set[int], size: int, data: st.DataObject
) -> None:
    start = data.draw(st.none() | st.integers(0, 10_000))
    end = data.draw(st.none() | st.integers(0, 10_001))
    window = Window(start, end)
    expected = sorted(
        (t for t in unique if (start is None or t >= start) and (end is None or t < end)),
        reverse=True,
    )
    assert walk_before(sorted(unique), window, size) == expected


@given(TIMES, st.integers(1, 20))
def test_before_timestamp_with_ties_never_loses_records_silently(
    times: list[int], size: int
) -> None:
    try:
        seen = walk_before(times, Window(), size)
    except ValueError as exc:
        assert "shared by the last item" in str(exc) or "cursor did not move" in str(exc)
        return
    assert sorted(seen) == sorted(times)


def test_a_tie_across_the_page_boundary_is_refused() -> None:
    with pytest.raises(ValueError, match="uploadtime=80 is shared"):
        walk_before([100, 90, 80, 80, 70], Window(), 3)
    assert walk_before([100, 80, 80, 70], Window(), 3) == [100, 80, 80, 70]


@given(st.integers(0, 300), st.integers(1, 40), st.integers(0, 3))
def test_page_number_walks_every_record_once(total: int, size: int, first: int) -> None:
    paginator = PageNumber(PageNumberPaginator(kind="page_number", page_size=size, first=first))
    records = list(range(total))
    position, seen, guard = paginator.first_position(Window()), [], RepeatGuard()
    for _ in range(total // size + 2):
        offset = (position - first) * size
        items = records[offset : offset + size]
        guard.check(items, position)
        page = paginator.parse(items, position, Window())
        seen += page.records
        if page.next_position is None:
            break
        position = page.next_position
    assert seen == records


@given(st.lists(st.integers(), min_size=1, max_size=10), st.integers(1, 5))
def test_a_source_that_ignores_the_cursor_is_caught_on_the_second_page(
    items: list[Any], first: int
) -> None:
    guard = RepeatGuard()
    guard.check(list(items), first)
    with pytest.raises(ValueError, match=f"page at {first + 1} repeats the previous page"):
        guard.check(list(items), first + 1)
