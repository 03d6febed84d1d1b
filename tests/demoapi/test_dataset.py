"""The generated replay dataset: shape, uniqueness, determinism and realistic mess."""

import itertools
from collections import Counter
from typing import Any

import orjson
import pytest

from demoapi import Dataset
from demoapi.catalog import FORMATS, SPECIAL_NAMES
from demoapi.players import build_player_pool, to_userid
from demoapi.timeline import allocate_quotas

SIZE = 5_000


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset(size=SIZE, seed=3, days=10)


@pytest.fixture(scope="module")
def records(dataset: Dataset) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = orjson.loads(orjson.dumps(dataset.records(range(SIZE))))
    return loaded


def test_upload_times_are_unique_strictly_decreasing_and_in_range(dataset: Dataset) -> None:
    times = [dataset.uploadtime(index) for index in range(SIZE)]

    assert all(newer > older for newer, older in itertools.pairwise(times))
    assert dataset.end - 10 * 86_400 <= dataset.oldest == times[-1]
    assert dataset.newest == times[0] < dataset.end


def test_traffic_peaks_in_the_evening(dataset: Dataset) -> None:
    by_hour = Counter((dataset.uploadtime(index) // 3600) % 24 for index in range(SIZE))

    assert by_hour[20] > 2 * by_hour[8]


def test_ids_are_unique_and_carry_the_format(records: list[dict[str, Any]]) -> None:
    ids = [str(record["id"]) for record in records]

    assert len(set(ids)) == SIZE
    assert all(
        id_.rsplit("-", 1)[0] == record["format"] and len(id_.rsplit("-", 1)[1]) == 10
        for id_, record in zip(ids, records, strict=True)
    )


def test_players_are_distinct_and_sides_follow_the_format(
    records: list[dict[str, Any]],
) -> None:
    four_sided = {fmt.id for fmt in FORMATS if fmt.players == 4}
    for record in records:
        players = record["players"]
        expected = 4 if record["format"] in four_sided else 2
        assert [player["side"] for player in players] == ["p1", "p2", "p3", "p4"][:expected]
        assert len({player["userid"] for player in players}) == expected
        assert record["winner"] is None or record["winner"] in {p["userid"] for p in players}


def test_shares_of_unrated_and_four_player_replays(records: list[dict[str, Any]]) -> None:
    unrated = sum(record["rating"] is None for record in records) / SIZE
    four_player = sum(len(record["players"]) == 4 for record in records) / SIZE

    assert 0.03 < unrated < 0.08
    assert 0.01 < four_player < 0.035


def test_player_pool_has_unique_userids_and_no_control_characters() -> None:
    pool = build_player_pool(2_000, seed=5)

    assert len(set(pool.userids)) == len(pool) == 2_000
    assert all(
        userid and userid == to_userid(name)
        for name, userid in zip(pool.names, pool.userids, strict=True)
    )
    assert all(char == "\t" or char.isprintable() for name in pool.names for char in name)
    assert set(SPECIAL_NAMES) <= set(pool.names)


def test_nasty_names_show_up_in_records(records: list[dict[str, Any]]) -> None:
    names = {player["name"] for record in records for player in record["players"]}

    assert {"Pokémon Trainer Ñandú", "Tab\tTrainer", 'The "Champion"', "O'Malley"} <= names


def test_two_instances_serialize_identically() -> None:
    first, second = Dataset(size=500, seed=9), Dataset(size=500, seed=9)

    assert orjson.dumps(first.records(range(500))) == orjson.dumps(second.records(range(500)))
    assert orjson.dumps(Dataset(size=500, seed=10).records(range(5))) != orjson.dumps(
        first.records(range(5))
    )


def test_page_indexes_and_counts_agree(dataset: Dataset) -> None:
    before = dataset.uploadtime(100)

    assert list(dataset.page_indexes(before, None, 5)) == [101, 102, 103, 104, 105]
    assert list(dataset.page_indexes(dataset.oldest, None, 5)) == []
    assert dataset.count(before, None) == SIZE - 101
    assert dataset.count(None, before) == 101
    assert dataset.count(before, before + 1) == 0
    assert sum(dataset.count(None, None, fmt) for fmt in dataset.formats) == SIZE
    assert dataset.count(None, None, "Gen 9 OU") == dataset.count(None, None, "gen9ou")


@pytest.mark.parametrize(("size", "days"), [(0, 1), (86_401, 1), (10, 0)])
def test_impossible_shapes_are_refused(size: int, days: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        Dataset(size=size, days=days)


def test_quotas_fill_up_to_the_cap() -> None:
    quotas = allocate_quotas([1.0, 5.0, 1.0], total=25, cap=10)

    assert sum(quotas) == 25
    assert max(quotas) == 10
    with pytest.raises(ValueError, match="cannot place"):
        allocate_quotas([1.0], total=11, cap=10)
