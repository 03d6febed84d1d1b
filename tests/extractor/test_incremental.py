"""The pure rules of ``--since-last``: durations, rounding to the slicing unit, and where
complete coverage ends (never past a gap). The ledger's side: test_since_last.py."""

from __future__ import annotations

import datetime as dt

import pytest

from common.errors import ConfigError
from common.spec import DatasetSpec, load_spec
from extractor.incremental import (
    JobCoverage,
    OpenSlice,
    StartPoint,
    floor_to_unit,
    needed_pairs,
    parse_duration,
    since_last_start,
    window_since,
)

DAY = 86_400
D1 = 1_767_225_600  # 2026-01-01T00:00:00Z
BOTH = frozenset({("tableinator", "replays"), ("graphinator", "replays")})
TABLE = frozenset({("tableinator", "replays")})


def day(n: int) -> int:
    return D1 + (n - 1) * DAY


def job(
    job_id: str,
    first: int,
    last: int,
    status: str = "done",
    failed: tuple[int, ...] = (),
    pairs: frozenset[tuple[str, str]] = BOTH,
    finalised: frozenset[tuple[str, str]] | None = None,
) -> JobCoverage:
    """A daily job over days [first, last), its slices on ``failed`` days failed."""
    slices = tuple(
        OpenSlice(f"replays:day{n}", "replays", "failed", day(n), day(n + 1)) for n in failed
    )
    return JobCoverage(
        job_id,
        status,
        pairs,
        pairs if finalised is None else finalised,
        day(first),
        day(last),
        slices,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1_800),
        ("2h", 7_200),
        ("1d", 86_400),
        ("1h30m", 5_400),
        ("1w", 604_800),
        ("90s", 90),
        ("PT2H", 7_200),
        ("P1D", 86_400),
        ("P1DT12H", 129_600),
        ("pt45m", 2_700),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "2", "h", "2x", "-1h", "1.5h", "P", "PT", "2 h", "P1H"])
def test_a_bad_duration_names_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--lookback: not a duration: "):
        parse_duration(text)


def test_rounding_down_to_the_slicing_unit() -> None:
    moment = dt.datetime(2026, 12, 3, 7, 42, 19, tzinfo=dt.UTC)
    assert floor_to_unit(moment, "daily") == dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert floor_to_unit(moment, "hourly") == dt.datetime(2026, 12, 3, 7, tzinfo=dt.UTC)
    midnight = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)
    assert floor_to_unit(midnight, "daily") == midnight


def test_the_start_is_the_end_of_the_newest_complete_job() -> None:
    point = since_last_start([job("a", 1, 3), job("c", 3, 6)], BOTH, "demo")
    assert point == StartPoint(day(6), "the end of job c")


def test_a_failed_slice_between_complete_jobs_is_the_start() -> None:
    jobs = [job("a", 1, 3), job("b", 3, 5, "failed", failed=(4,)), job("c", 5, 6)]
    point = since_last_start(jobs, BOTH, "demo")
    assert point.at == day(4)
    assert point.reason == "slice replays:day4 of job b failed"


def test_the_earliest_of_several_gaps_wins() -> None:
    jobs = [
        job("a", 1, 3),
        job("b", 3, 5, "failed", failed=(4,)),
        job("c", 5, 7, "failed", failed=(5, 6)),
        job("d", 7, 8),
    ]
    assert since_last_start(jobs, BOTH, "demo").at == day(4)


def test_a_gap_covered_again_by_a_complete_job_is_no_gap() -> None:
    jobs = [job("a", 1, 3), job("b", 3, 5, "failed", failed=(4,)), job("fix", 4, 5), job("c", 5, 6)]
    assert since_last_start(jobs, BOTH, "demo").at == day(6)


def test_a_job_not_finalised_by_a_store_counts_whole() -> None:
    half = job("b", 3, 5, finalised=TABLE)  # graphinator never reported it
    point = since_last_start([job("a", 1, 3), half, job("c", 5, 6)], BOTH, "demo")
    assert point.at == day(3)
    assert point.reason == "job b (done) not finalised by graphinator"


def test_a_running_job_counts_whole() -> None:
    running = job("b", 6, 7, "running", finalised=frozenset())
    assert since_last_start([job("a", 1, 6), running], BOTH, "demo").at == day(6)
    assert since_last_start([job("a", 1, 6), running, job("c", 7, 8)], BOTH, "demo").at == day(6)
    # Inside a complete job's window it is no gap: that job landed those days.
    assert since_last_start([job("a", 1, 8), running], BOTH, "demo").at == day(8)


def test_a_job_to_fewer_stores_neither_covers_nor_is_a_gap_for_the_others() -> None:
    table_only = job("t", 3, 5, pairs=TABLE)
    assert since_last_start([job("a", 1, 3), table_only], BOTH, "demo").at == day(3)
    # For a tableinator-only run it covers.
    assert since_last_start([job("a", 1, 3), table_only], TABLE, "demo").at == day(5)
    # A failed job to graphinator alone is not a gap of a tableinator-only run.
    graph_failed = job("g", 2, 4, "failed", failed=(2,), pairs=BOTH - TABLE)
    assert since_last_start([job("a", 1, 3), graph_failed], TABLE, "demo").at == day(3)


def test_failures_older_than_every_complete_job_are_no_gap() -> None:
    jobs = [job("old", 1, 3, "failed", failed=(1, 2)), job("a", 3, 5)]
    assert since_last_start(jobs, BOTH, "demo").at == day(5)


def test_failures_past_the_end_change_nothing() -> None:
    jobs = [job("a", 1, 3), job("b", 4, 6, "failed", failed=(5,))]
    assert since_last_start(jobs, BOTH, "demo").at == day(3)


def test_no_complete_job_is_a_config_error() -> None:
    failed = job("b", 1, 3, "failed", failed=(1,))
    with pytest.raises(ConfigError) as caught:
        since_last_start([failed], BOTH, "demo")
    assert str(caught.value) == (
        "no complete earlier job for dataset demo: run with --start/--end first"
    )


@pytest.fixture
def demo() -> DatasetSpec:
    return load_spec("demo")


def test_the_needed_pairs_follow_the_stores(demo: DatasetSpec) -> None:
    assert needed_pairs(demo, ["tableinator", "graphinator"]) == BOTH
    assert needed_pairs(demo, ["tableinator"]) == TABLE


def test_the_lookback_moves_the_start_back_and_it_is_rounded(demo: DatasetSpec) -> None:
    end = dt.datetime(2026, 12, 3, 7, 42, 19, 5, tzinfo=dt.UTC)
    last_now = int(dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC).timestamp())
    plain = window_since(demo, StartPoint(last_now, "x"), dt.timedelta(), end)
    # The last run ended at 09:30: its partial day is fetched again whole.
    assert plain.start == dt.datetime(2026, 12, 2, tzinfo=dt.UTC)
    assert plain.end == end.replace(microsecond=0)
    back = window_since(demo, StartPoint(last_now, "x"), dt.timedelta(hours=10), end)
    assert back.start == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert back.reason == "x, 10:00:00 back"
    assert not back.nothing_to_do


def test_a_start_at_or_past_the_end_is_nothing_to_do(demo: DatasetSpec) -> None:
    end = dt.datetime(2026, 12, 3, 7, tzinfo=dt.UTC)
    ahead = int(dt.datetime(2026, 12, 5, tzinfo=dt.UTC).timestamp())
    window = window_since(demo, StartPoint(ahead, "the end of job a"), dt.timedelta(), end)
    assert window.nothing_to_do
    assert window.describe().startswith("since last: nothing to do")


def test_a_dataset_without_windows_is_refused(demo: DatasetSpec) -> None:
    raw = demo.model_dump(mode="json")
    raw["source"]["slicing"] = {"kind": "none"}
    unsliced = DatasetSpec.model_validate(raw)
    with pytest.raises(ConfigError, match="--since-last needs an http source sliced"):
        window_since(unsliced, StartPoint(D1, "x"), dt.timedelta(), dt.datetime.now(dt.UTC))
