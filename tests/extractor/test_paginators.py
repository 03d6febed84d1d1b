"""Paginators and the planner: pure logic."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import ConfigError
from common.spec import BeforeTimestampPaginator, PageNumberPaginator, SlicingSpec
from extractor.paginators import BeforeTimestamp, PageNumber, Window
from extractor.planner import plan_slices


def items(*timestamps: int) -> list[dict[str, int]]:
    return [{"uploadtime": t} for t in timestamps]


def before(page_size: int = 3) -> BeforeTimestamp:
    return BeforeTimestamp(BeforeTimestampPaginator(kind="before_timestamp", page_size=page_size))


def test_before_timestamp_n_plus_one_means_more() -> None:
    page = before().parse(items(100, 90, 80, 70), None, Window())
    assert page.records == items(100, 90, 80)
    assert page.next_position == 80


def test_before_timestamp_short_page_ends() -> None:
    page = before().parse(items(100, 90), 110, Window())
    assert page.records == items(100, 90)
    assert page.next_position is None


def test_before_timestamp_stops_at_window_start() -> None:
    page = before().parse(items(100, 90, 80, 70), 110, Window(start=90, end=110))
    assert page.records == items(100, 90)
    assert page.next_position is None


def test_before_timestamp_first_position_is_window_end() -> None:
    paginator = before()
    assert paginator.first_position(Window(0, 500)) == 500
    assert paginator.params(500) == {"before": 500}


def test_before_timestamp_detects_a_cursor_that_does_not_move() -> None:
    with pytest.raises(ValueError, match="cursor did not move"):
        before().parse(items(100, 100, 100, 100), 100, Window())


def test_page_number() -> None:
    paginator = PageNumber(PageNumberPaginator(kind="page_number", page_size=2))
    assert paginator.params(1) == {"page": 1, "per_page": 2}
    assert paginator.parse([1, 2], 1, Window()).next_position == 2
    assert paginator.parse([1], 2, Window()).next_position is None


def test_daily_slices_newest_first_cover_the_range() -> None:
    slicing = SlicingSpec(kind="daily", start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 4))
    slices = plan_slices(["a"], slicing)
    assert [s.slice_id for s in slices] == ["a:2025-01-03", "a:2025-01-02", "a:2025-01-01"]
    assert slices[0].window.end == int(dt.datetime(2025, 1, 4, tzinfo=dt.UTC).timestamp())
    assert all(s.window.end - s.window.start == 86_400 for s in slices)


def test_slices_need_a_range_in_order() -> None:
    slicing = SlicingSpec(kind="daily")
    with pytest.raises(ConfigError):
        plan_slices(["a"], slicing, dt.date(2025, 1, 2), dt.date(2025, 1, 1))
