"""Paginators, window parameters and the planner: pure logic."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import ConfigError, SpecError
from common.spec import EntitySpec, parse_spec
from common.spec_source import (
    BeforeTimestampPaginator,
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    SlicingSpec,
)
from extractor.ledger.slices import Window
from extractor.planner import plan_slices
from extractor.sources.page_sources import window_params
from extractor.sources.paginators import (
    BeforeTimestamp,
    LinkHeader,
    NextUrl,
    Offset,
    PageNumber,
    PaginationError,
    Response,
    link_target,
)

BASE = "http://api.example:8080"


def items(*timestamps: int) -> list[dict[str, int]]:
    return [{"id": i, "uploadtime": t} for i, t in enumerate(timestamps)]


def before(page_size: int = 3, **options: object) -> BeforeTimestamp:
    spec = BeforeTimestampPaginator(kind="before_timestamp", page_size=page_size, **options)  # type: ignore[arg-type]
    return BeforeTimestamp(spec, "id")


def test_before_timestamp_n_plus_one_means_more() -> None:
    page = before().parse(Response(items(100, 90, 80, 70)), None, Window())
    assert page.records == items(100, 90, 80)
    assert page.next_position == {"at": 79, "taken": []}  # no tie: strictly before 80
    assert before().request(page.next_position).params == {"before": 80}


def test_before_timestamp_a_tie_at_the_boundary_overlaps_and_keeps_the_keys_taken() -> None:
    page = before().parse(Response(items(100, 90, 80, 80)), None, Window())
    assert page.next_position == {"at": 80, "taken": [2]}
    assert before().request(page.next_position).params == {"before": 81}
    assert before(inclusive=True).request(page.next_position).params == {"before": 80}
    again = [{"id": 2, "uploadtime": 80}, {"id": 3, "uploadtime": 80}, {"id": 4, "uploadtime": 70}]
    assert before().parse(Response(again), page.next_position, Window()).records == again[1:]


def test_before_timestamp_short_page_ends() -> None:
    page = before().parse(Response(items(100, 90)), 110, Window())
    assert page.records == items(100, 90)
    assert page.next_position is None


def test_before_timestamp_stops_at_window_start() -> None:
    page = before().parse(Response(items(100, 90, 80, 70)), 110, Window(start=90, end=110))
    assert page.records == items(100, 90)
    assert page.next_position is None


def test_before_timestamp_first_position_is_window_end() -> None:
    paginator = before()
    assert paginator.request(paginator.first_position(Window(0, 500))).params == {"before": 500}


def test_before_timestamp_detects_a_cursor_that_does_not_move() -> None:
    with pytest.raises(PaginationError, match="cursor did not move"):
        before().parse(Response(items(100, 100, 100, 100)), 100, Window())


def test_page_number() -> None:
    paginator = PageNumber(PageNumberPaginator(kind="page_number", page_size=2))
    assert paginator.request(1).params == {"page": 1, "per_page": 2}
    assert paginator.parse(Response([1, 2]), 1, Window()).next_position == 2
    assert paginator.parse(Response([1]), 2, Window()).next_position is None


def test_offset_stops_at_the_total() -> None:
    paginator = Offset(OffsetPaginator(kind="offset", page_size=2, total_path="total"))
    assert paginator.request(4).params == {"offset": 4, "limit": 2}
    assert paginator.parse(Response([1, 2], {"total": 5}), 0, Window()).next_position == 2
    assert paginator.parse(Response([5], {"total": 5}), 4, Window()).next_position is None


def test_link_header_rel_next() -> None:
    header = f'<{BASE}/l?page=1>; rel="prev first", <{BASE}/l?page=3>; rel="next"'
    assert link_target(header, "next") == f"{BASE}/l?page=3"
    assert link_target(f"<{BASE}/x>; rel=next", "next") == f"{BASE}/x"
    assert link_target(f'<{BASE}/x>; rel="last"', "next") is None
    paginator = LinkHeader(LinkHeaderPaginator(kind="link_header"), BASE)
    response = Response([1], headers={"Link": header}, url=f"{BASE}/l?page=2")
    page = paginator.parse(response, None, Window())
    assert page.next_position == f"{BASE}/l?page=3"
    request = paginator.request(page.next_position)
    assert (request.path, request.params, request.entity_params) == (page.next_position, {}, False)


def test_next_url_relative_and_refused_off_the_source() -> None:
    paginator = NextUrl(NextUrlPaginator(kind="next_url"), BASE)
    response = Response([1], {"next": "/items?after=abc"}, url=f"{BASE}/items")
    assert paginator.parse(response, None, Window()).next_position == f"{BASE}/items?after=abc"
    for elsewhere in ("http://evil.example/items", "https://api.example:8080/items"):
        with pytest.raises(PaginationError, match="refusing next page URL"):
            paginator.parse(Response([1], {"next": elsewhere}, url=BASE), None, Window())
    assert paginator.parse(Response([1], {"next": None}), None, Window()).next_position is None


def test_window_params_in_each_format() -> None:
    window = Window(1_767_225_600, 1_767_312_000)  # 2026-01-01 .. 01-02
    params = {"from": "{start}", "to": "{end}", "q": "t>{start}", "fixed": 3}
    entity = EntitySpec(key="id", path="/x", params=params)
    assert window_params(entity, window) == {
        "from": 1_767_225_600,
        "to": 1_767_312_000,
        "q": "t>1767225600",
        "fixed": 3,
    }
    iso = entity.model_copy(update={"window_format": "iso"})
    assert window_params(iso, window)["from"] == "2026-01-01T00:00:00Z"
    date = entity.model_copy(update={"window_format": "date"})
    assert window_params(date, window)["to"] == "2026-01-02"
    assert "to" not in window_params(entity, Window(start=5))


def test_a_sliced_spec_whose_requests_ignore_the_window_is_refused() -> None:
    raw = {
        "name": "x",
        "source": {"kind": "http", "base_url": BASE, "slicing": {"kind": "daily"}},
        "entities": {"items": {"key": "id", "path": "/i", "paginator": {"kind": "offset"}}},
    }
    with pytest.raises(
        SpecError, match=r"^x\.yaml: entities\.items\.params: the source is sliced daily"
    ):
        parse_spec(raw, "x.yaml")
    raw["entities"]["items"]["params"] = {"since": "{start}"}  # type: ignore[index]
    assert parse_spec(raw, "x.yaml").entities["items"].params == {"since": "{start}"}


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
