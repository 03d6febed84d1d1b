"""Field paths compiled into getters: names, dotted paths, list indexes and ``[*]``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import SpecError
from common.paths import (
    EVERY,
    MISSING,
    compile_path,
    flat,
    get_value,
    list_at,
    parse_path,
    sql_path,
)
from common.records import get_path
from common.spec import BUNDLED_DIR, load_spec

RECORD = {
    "id": 7,
    "meta": {"source": {"name": "ladder"}},
    "players": [
        {"id": "p1", "team": {"name": "red"}, "pokemon": [{"species": "a"}, {"species": "b"}]},
        {"id": "p2", "pokemon": [{"species": "c"}]},
        {"name": "no id"},
        "not an object",
    ],
    "tags": ["x", "y"],
}


def test_paths_parse_into_names_indexes_and_every() -> None:
    assert parse_path("id") == ("id",)
    assert parse_path("a.b.c") == ("a", "b", "c")
    assert parse_path("a[0].b") == ("a", 0, "b")
    assert parse_path("a.b[*].c[12]") == ("a", "b", EVERY, "c", 12)
    assert parse_path("@id") == ("@id",)
    assert sql_path("a[0].b") == ["a", "0", "b"]


@pytest.mark.parametrize("path", ["", "a..b", "a[", "a[x]", "a[-1]", "[0]", "a.[0]", "a b", "*"])
def test_malformed_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="not a field path"):
        parse_path(path)


def test_a_column_path_cannot_pick_many() -> None:
    with pytest.raises(ValueError, match=r"\[\*\] picks many values"):
        sql_path("players[*].id")


def test_names_dotted_paths_and_indexes() -> None:
    assert get_value(RECORD, "id") == 7
    assert get_value(RECORD, "meta.source.name") == "ladder"
    assert get_value(RECORD, "players[0].id") == "p1"
    assert get_value(RECORD, "players[1].pokemon[0].species") == "c"
    assert get_value(RECORD, "tags[1]") == "y"
    assert get_value(RECORD, "players[9].id") is None  # past the end: missing
    assert get_value(RECORD, "meta[0]") is None  # an index into an object: missing
    assert get_value(RECORD, "id.x", "d") == "d"
    assert compile_path("nope")(RECORD) is MISSING


def test_every_gives_a_list_without_the_items_that_lack_the_rest() -> None:
    assert get_value(RECORD, "players[*].id") == ["p1", "p2"]
    assert get_value(RECORD, "players[*].team.name") == ["red"]
    assert get_value(RECORD, "tags[*]") == ["x", "y"]
    assert get_value(RECORD, "players[*].pokemon[*].species") == ["a", "b", "c"]  # flattened
    assert get_value(RECORD, "players[*].pokemon[0].species") == ["a", "c"]
    assert get_value(RECORD, "players[*].nothing") == []
    assert get_value(RECORD, "meta[*].x") is None  # not a list: missing
    assert get_value(RECORD, "absent[*].x") is None


def test_lists_at_every_are_flattened_for_records_and_targets() -> None:
    body = {"groups": [{"items": [1, 2]}, {"items": [3]}, {"other": 0}]}
    assert list_at(body, "groups[*].items") == [1, 2, 3]
    assert list_at(body, "groups[0].items") == [1, 2]
    assert flat([1, [2, 3], 4]) == [1, 2, 3, 4]


def test_get_path_keeps_its_fast_paths_and_reads_the_new_forms() -> None:
    assert get_path(RECORD, "id") == 7
    assert get_path(RECORD, "meta.source.name") == "ladder"
    assert get_path(RECORD, "players[1].id") == "p2"
    assert get_path(RECORD, "players[*].id") == ["p1", "p2"]
    assert get_path(RECORD, "players[5].id", "d") == "d"
    assert compile_path("a.b") is compile_path("a.b")  # compiled once


def _spec(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
    mutate(raw["entities"]["replays"])
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_spec_with_nested_paths_loads(tmp_path: Path) -> None:
    def nested(entity: dict[str, Any]) -> None:
        entity["records_path"] = "data[*].replays"
        entity["key"] = "meta.ids[0]"
        entity["table"]["columns"]["first_player"] = {"field": "players[0].userid"}
        entity["graph"]["relationships"][0]["field"] = "sides[*].players"
        entity["graph"]["properties"]["species"] = "players[*].pokemon[*].species"

    spec = load_spec(_spec(tmp_path, nested))
    replays = spec.entities["replays"]
    assert replays.records_path == "data[*].replays" and replays.key == "meta.ids[0]"
    assert replays.graph is not None
    assert replays.graph.relationships[0].field == "sides[*].players"


@pytest.mark.parametrize(
    ("where", "field"),
    [
        (lambda e: e.update(key="players[*].userid"), "entities.replays.key"),
        (
            lambda e: e["table"]["columns"]["format"].update(field="players[*].name"),
            "entities.replays.table.columns.format.field",
        ),
        (
            lambda e: e["paginator"].update(field="items[*].uploadtime"),
            "entities.replays.paginator.field",
        ),
        (
            lambda e: e["graph"]["relationships"][0].update(key="ids[*]"),
            "entities.replays.graph.relationships.0.key",
        ),
    ],
)
def test_every_is_refused_where_one_value_is_needed(
    tmp_path: Path, where: Callable[[dict[str, Any]], None], field: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec(tmp_path, where))
    assert caught.value.field == field
    assert "[*] picks many values; this field needs one" in caught.value.reason


def test_a_malformed_path_is_refused_with_its_field(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec(tmp_path, lambda e: e.update(records_path="items[x]")))
    assert caught.value.field == "entities.replays.records_path"
    assert caught.value.reason == "'items[x]' is not a field path (a.b, a[0].b or a[*].b)"
