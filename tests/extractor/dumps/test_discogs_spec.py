"""The bundled Discogs spec against the records the dump reader produces."""

from __future__ import annotations

from typing import Any

import yaml

from common.records import get_path, prepare
from common.spec import BUNDLED_DIR, DatasetSpec, parse_spec
from extractor.sources.dumps.discogs import iter_records
from graphinator.rows import node_row, relationship_rows
from tests.extractor.dumps.samples import ENTITIES, sample

SPEC_FILE = BUNDLED_DIR / "discogs.yaml"


def raw_spec() -> dict[str, Any]:
    raw = yaml.safe_load(SPEC_FILE.read_text())
    assert isinstance(raw, dict)
    return raw


def mapping_only() -> DatasetSpec:
    """The bundled spec, validated."""
    return parse_spec(raw_spec(), str(SPEC_FILE))


def edges(entity: str, record_id: int, rel_index: int) -> dict[Any, dict[str, Any]]:
    """The relationship rows one sample record yields for one of its entity's relationships."""
    spec = mapping_only().entities[entity]
    assert spec.graph is not None
    record = next(r for r in iter_records(sample(entity)) if r["id"] == record_id)
    prepared = prepare(record, spec.key, spec.key_type)
    return {
        row["dst"]: row["props"] | row["target_props"]
        for row in relationship_rows(spec.graph.relationships[rel_index], prepared)
    }


def test_the_spec_validates() -> None:
    spec = parse_spec(raw_spec(), str(SPEC_FILE))
    assert spec.source.kind == "dump" and spec.source.format == "discogs_xml"


def test_relationship_types_survive_yaml() -> None:
    types = {
        rel.type
        for entity in mapping_only().entities.values()
        if entity.graph
        for rel in entity.graph.relationships
    }
    assert types == {"MEMBER_OF", "ALIAS_OF", "SUBLABEL_OF", "BY", "ON", "DERIVED_FROM", "IS"}


def test_every_column_and_property_is_a_field_of_the_records() -> None:
    for name, entity in mapping_only().entities.items():
        record = next(iter_records(sample(name)))
        paths = [column.field for column in entity.table.columns.values()] if entity.table else []
        paths += list(entity.graph.properties.values()) if entity.graph else []
        for path in paths:
            head = path.split(".")[0]
            assert head in record, f"{name}: {path}"


def test_artist_relationships() -> None:
    members = edges("artists", 2, 0)
    assert members == {26: {"name": "Alexi Delano"}, 27: {"name": "Cari Lekebusch"}}
    assert set(edges("artists", 22387, 0)) == {716506}  # a member without an id points nowhere
    assert set(edges("artists", 27, 1)) == {89, 1294}


def test_label_relationships() -> None:
    assert edges("labels", 1, 0) == {4711: {"name": "Goldhead Music"}}
    assert edges("labels", 5, 0) == {}


def test_release_relationships_use_main_artists_only() -> None:
    assert edges("releases", 3, 0) == {3: {"name": "Josh Wink"}}
    assert set(edges("releases", 4497890, 0)) == {194}
    # Two catalogue numbers on one label make one edge (the last wins); id 0 makes none.
    assert edges("releases", 4497890, 1) == {26126: {"catno": "NOW 7 (alt)", "name": "EMI"}}
    assert set(edges("releases", 4497890, 2)) == {96559}
    assert set(edges("releases", 1000001, 2)) == set()
    assert set(edges("releases", 4497890, 3)) == {"Pop", "Rock"}
    assert set(edges("releases", 4497890, 4)) == {"Synth-pop"}


def test_master_relationships() -> None:
    assert edges("masters", 713738, 0) == {
        4: {"anv": "J. Heil", "join": "Vs.", "name": "Johannes Heil"},
        5: {"name": "Heiko Laux"},
    }
    assert set(edges("masters", 122, 1)) == {"Electronic"}
    assert set(edges("masters", 122, 2)) == {"Breakbeat", "Hardcore", "Jungle"}


def test_nodes_carry_their_properties() -> None:
    spec = mapping_only()
    for name in ENTITIES:
        entity = spec.entities[name]
        assert entity.graph is not None
        for record in iter_records(sample(name)):
            row = node_row(entity.graph, prepare(record, entity.key, entity.key_type))
            assert row["key"] == record["id"]
            for prop, path in entity.graph.properties.items():
                assert row["props"].get(prop) == get_path(record, path)
