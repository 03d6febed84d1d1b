"""Spec validation: a bad spec is refused with the file, the field and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from common.errors import SpecError
from common.spec import BUNDLED_DIR, bundled_specs, load_spec


def write_spec(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load((BUNDLED_DIR / "demo.yaml").read_text())
    mutate(raw)  # type: ignore[operator]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_bundled_specs_load() -> None:
    for name in bundled_specs():
        assert load_spec(name).entities


def test_unknown_field_is_named(tmp_path: Path) -> None:
    path = write_spec(tmp_path, lambda raw: raw["entities"]["replays"]["table"].update(colums={}))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.path == str(path)
    assert caught.value.field == "entities.replays.table.colums"
    assert "unknown field" in str(caught.value)


def test_missing_key_is_named(tmp_path: Path) -> None:
    path = write_spec(tmp_path, lambda raw: raw["entities"]["replays"].pop("key"))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert str(caught.value) == f"{path}: entities.replays.key: required field is missing"


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("graph", "label"), "Replay) DETACH DELETE (n"),
        (("graph", "relationships", 0, "type"), "PLAYED_BY]->() DELETE x//"),
        (("table", "name"), 'replays"; DROP TABLE users; --'),
    ],
)
def test_injected_names_are_refused(tmp_path: Path, where: tuple[object, ...], value: str) -> None:
    def mutate(raw: dict[str, object]) -> None:
        node: object = raw["entities"]["replays"]  # type: ignore[index]
        for part in where[:-1]:
            node = node[part]  # type: ignore[index]
        node[where[-1]] = value  # type: ignore[index]

    with pytest.raises(SpecError) as caught:
        load_spec(write_spec(tmp_path, mutate))
    assert caught.value.field == "entities.replays." + ".".join(map(str, where))
    assert "pattern" in caught.value.reason


def test_yaml_syntax_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match=r"broken\.yaml"):
        load_spec(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"nope\.yaml: \(file\): cannot read"):
        load_spec(tmp_path / "nope.yaml")
