"""Detail entities in the spec: a ``parent`` that exists and is paged, one ``{field}`` path;
each mistake refused naming the entity, the field and the reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from common.errors import SpecError
from common.spec import BUNDLED_DIR, load_spec
from common.spec_details import detail_of, placeholder, sliced_entities

Raw = dict[str, Any]


def write_spec(tmp_path: Path, mutate: Callable[[Raw], None]) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "demo_details.yaml").read_text())
    mutate(raw)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def refused(tmp_path: Path, mutate: Callable[[Raw], None]) -> SpecError:
    path = write_spec(tmp_path, mutate)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.path == str(path)
    return caught.value


def child(raw: Raw) -> Raw:
    entity: Raw = raw["entities"]["replay_logs"]
    return entity


def test_the_bundled_spec_has_one_detail_entity_and_plans_only_its_parent() -> None:
    spec = load_spec("demo_details")
    assert sliced_entities(spec) == ["replays"]
    assert detail_of(spec, "replays") == "replay_logs"
    assert detail_of(spec, "replay_logs") is None
    parent = spec.entities["replay_logs"].parent
    assert parent is not None and placeholder(parent) == "{id}"


def test_a_parent_that_does_not_exist_is_named(tmp_path: Path) -> None:
    error = refused(tmp_path, lambda raw: child(raw)["parent"].update(entity="matches"))
    assert error.field == "entities.replay_logs.parent.entity"
    assert "no entity 'matches'" in error.reason


def test_a_parent_that_is_itself_a_detail_is_refused(tmp_path: Path) -> None:
    def mutate(raw: Raw) -> None:
        raw["entities"]["replay_events"] = {
            **child(raw),
            "parent": {"entity": "replay_logs"},
            "table": {"name": "replay_events"},
        }

    error = refused(tmp_path, mutate)
    assert error.field == "entities.replay_events.parent.entity"
    assert "'replay_logs' is itself a detail entity" in error.reason


def test_a_second_detail_of_one_parent_is_refused(tmp_path: Path) -> None:
    def mutate(raw: Raw) -> None:
        raw["entities"]["replay_notes"] = {**child(raw), "table": {"name": "replay_notes"}}

    error = refused(tmp_path, mutate)
    assert error.field == "entities.replay_notes.parent.entity"
    assert "already has detail entity 'replay_logs'" in error.reason


def test_an_entity_cannot_be_its_own_parent(tmp_path: Path) -> None:
    error = refused(tmp_path, lambda raw: child(raw)["parent"].update(entity="replay_logs"))
    assert error.field == "entities.replay_logs.parent.entity"


@pytest.mark.parametrize(
    "path",
    ["/replays/detail.json", "/replays/{uid}.json", "/replays/{id}/{id}.json", "/r/{id}/{x}"],
)
def test_the_path_must_hold_the_parent_fields_placeholder_once(tmp_path: Path, path: str) -> None:
    error = refused(tmp_path, lambda raw: child(raw).update(path=path))
    assert error.field == "entities.replay_logs.path"
    assert "must hold {id} (from parent.field id) once" in error.reason


def test_the_placeholder_is_the_last_segment_of_a_nested_field(tmp_path: Path) -> None:
    def mutate(raw: Raw) -> None:
        child(raw)["parent"]["field"] = "meta.replay_id"
        child(raw)["path"] = "/replays/{replay_id}.json"

    spec = load_spec(write_spec(tmp_path, mutate))
    parent = spec.entities["replay_logs"].parent
    assert parent is not None and placeholder(parent) == "{replay_id}"


def test_a_detail_entity_has_no_paginator(tmp_path: Path) -> None:
    error = refused(tmp_path, lambda raw: child(raw).update(paginator={"kind": "page_number"}))
    assert error.field == "entities.replay_logs.paginator"
    assert "fetched by its parent's pages" in error.reason


def test_detail_entities_need_an_http_source(tmp_path: Path) -> None:
    def mutate(raw: Raw) -> None:
        raw["source"] = {"kind": "dump", "format": "jsonl"}
        for entity in raw["entities"].values():
            entity.pop("paginator", None)
            entity.pop("estimate", None)

    error = refused(tmp_path, mutate)
    assert error.field == "entities.replay_logs.parent"


@pytest.mark.parametrize(("field", "value"), [("concurrency", 0), ("entity", "Replays")])
def test_bad_parent_values_are_named(tmp_path: Path, field: str, value: object) -> None:
    error = refused(tmp_path, lambda raw: child(raw)["parent"].update({field: value}))
    assert error.field == f"entities.replay_logs.parent.{field}"
