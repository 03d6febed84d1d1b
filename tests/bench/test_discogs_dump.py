"""The Discogs-shaped dump generator, read back with the project's own dump reader."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.discogs_dump import (
    ENTITIES,
    REAL_MILLIONS,
    existing_dump,
    main,
    split_records,
    write_dump,
)
from bench.discogs_world import Catalogue
from bench.harness.gzip_writer import GzipWriter
from common.records import prepare
from common.spec import BUNDLED_DIR, load_spec
from extractor.backfill import JobOptions, plan_dump
from extractor.sources.dump_estimate import estimate_files
from extractor.sources.dumps import DumpStats
from extractor.sources.dumps.discogs import iter_records
from graphinator.rows import relationship_rows

RECORDS = 2_000
Records = dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="module")
def dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("discogs")
    write_dump(directory, RECORDS, seed=7)
    return directory


@pytest.fixture(scope="module")
def records(dump: Path) -> Records:
    read: Records = {}
    for entity in ENTITIES:
        stats = DumpStats()
        read[entity] = list(iter_records(dump / f"discogs_20990101_{entity}.xml.gz", stats=stats))
        assert (stats.skipped, stats.unknown_tags) == (0, {}), entity
    return read


def ids(items: list[dict[str, Any]]) -> set[int]:
    return {item["id"] for item in items}


def test_counts_follow_a_real_dumps_proportions(tmp_path: Path) -> None:
    summary = write_dump(tmp_path, RECORDS, seed=7)
    assert summary.total == RECORDS and set(summary.files) == set(ENTITIES)
    assert [p.name for p in summary.files.values()] == [
        f"discogs_20990101_{entity}.xml.gz" for entity in ENTITIES
    ]
    whole = sum(REAL_MILLIONS.values())
    for entity in ENTITIES:
        assert len(list(iter_records(summary.files[entity]))) == summary.records[entity]
        share = summary.records[entity] / RECORDS
        assert share == pytest.approx(REAL_MILLIONS[entity] / whole, abs=0.001), entity
        raw = gzip.decompress(summary.files[entity].read_bytes())
        assert len(raw) == summary.bytes_uncompressed[entity]
        assert summary.files[entity].stat().st_size == summary.bytes_compressed[entity]


def test_split_is_exact_and_refuses_too_few() -> None:
    for total in (100, 999, 32_200_000):
        assert sum(split_records(total).values()) == total
    assert split_records(32_200_000) == {
        "artists": 9_500_000,
        "labels": 2_300_000,
        "masters": 2_400_000,
        "releases": 18_000_000,
    }
    with pytest.raises(ValueError, match="at least 100"):
        split_records(99)


def test_ids_run_one_to_n(records: Records) -> None:
    for entity in ENTITIES:
        assert [r["id"] for r in records[entity]] == list(range(1, len(records[entity]) + 1))


def test_every_reference_points_at_a_record(records: Records) -> None:
    artists, labels = ids(records["artists"]), ids(records["labels"])
    masters, releases = ids(records["masters"]), ids(records["releases"])
    for artist in records["artists"]:
        for field in ("aliases", "members", "groups"):
            assert ids(artist[field]) <= artists, artist["id"]
    for label in records["labels"]:
        assert ids(label["sublabels"]) <= labels
        assert label["parent_label"] is None or label["parent_label"]["id"] in labels
    for master in records["masters"]:
        assert ids(master["artists"]) <= artists and master["main_release"] in releases
    for release in records["releases"]:
        credited = release["artists"] + release["extraartists"]
        credited += [c for track in release["tracklist"] for c in track["extraartists"]]
        assert ids(credited) <= artists, release["id"]
        assert ids(release["labels"]) | ids(release["companies"]) <= labels
        assert release["master_id"] is None or release["master_id"] in masters


def test_records_agree_with_each_other(records: Records) -> None:
    """Both sides of a link say the same, and a reference carries the record's name."""
    artists = {a["id"]: a for a in records["artists"]}
    labels = {label["id"]: label for label in records["labels"]}
    releases = {r["id"]: r for r in records["releases"]}
    for artist in artists.values():
        for alias in artist["aliases"]:
            assert artist["id"] in ids(artists[alias["id"]]["aliases"])
            assert alias["name"] == artists[alias["id"]]["name"]
        for member in artist["members"]:
            assert artist["id"] in ids(artists[member["id"]]["groups"])
    for label in labels.values():
        for sub in label["sublabels"]:
            assert labels[sub["id"]]["parent_label"]["id"] == label["id"]
            assert sub["name"] == labels[sub["id"]]["name"]
    main_of = {r["master_id"]: r["id"] for r in releases.values() if r["is_main_release"]}
    for master in records["masters"]:
        main = releases[master["main_release"]]
        assert main_of[master["id"]] == main["id"] and main["master_id"] == master["id"]
        assert main["title"] == master["title"] and main["year"] in (None, master["year"])
        assert main["artists"][0]["name"] == artists[master["artists"][0]["id"]]["name"]
        assert (main["genres"], main["styles"]) == (master["genres"], master["styles"])
    assert len(main_of) == len(records["masters"])


def test_shapes_and_shares_are_realistic(records: Records) -> None:
    releases = records["releases"]
    assert sum(r["master_id"] is not None for r in releases) / len(releases) > 0.8
    assert all(1 <= len(r["artists"]) <= 3 and 1 <= len(r["labels"]) <= 2 for r in releases)
    assert all(8 <= len(r["tracklist"]) <= 12 and r["formats"] for r in releases)
    assert all(1 <= len(r["genres"]) <= 3 and 1 <= len(r["styles"]) <= 4 for r in releases)
    assert all(label["catno"] for r in releases for label in r["labels"])
    durations = [t["duration"] for r in releases for t in r["tracklist"]]
    assert sum(d is not None for d in durations) / len(durations) > 0.8
    assert any(label["parent_label"] is not None for label in records["labels"])
    assert any(a["members"] for a in records["artists"])
    names = [a["name"] for a in records["artists"]] + [g for r in releases for g in r["genres"]]
    assert any("&" in name for name in names) and not any("&amp;" in n for n in names)
    assert Counter(r["country"] for r in releases).most_common(1)[0][1] < len(releases) / 4


def test_releases_have_about_nine_graph_relationships(records: Records) -> None:
    """Counted as the bundled spec maps them (artists, labels, master, genres, styles)."""
    spec = load_spec(BUNDLED_DIR / "discogs.yaml").entities["releases"]
    assert spec.graph is not None
    total = 0
    for record in records["releases"]:
        prepared = prepare(record, spec.key, spec.key_type)
        total += sum(len(relationship_rows(rel, prepared)) for rel in spec.graph.relationships)
    assert 7 <= total / len(records["releases"]) <= 11


def test_record_sizes_are_near_real_ones(dump: Path, records: Records) -> None:
    expected = {"artists": (450, 800), "labels": (350, 700), "masters": (1100, 2000)}
    expected["releases"] = (3000, 4200)
    for entity, (low, high) in expected.items():
        raw = gzip.decompress((dump / f"discogs_20990101_{entity}.xml.gz").read_bytes())
        assert low <= len(raw) / len(records[entity]) <= high, entity


def test_the_same_seed_writes_the_same_bytes(tmp_path: Path, dump: Path) -> None:
    again = write_dump(tmp_path / "again", RECORDS, seed=7)
    other = write_dump(tmp_path / "other", RECORDS, seed=8)
    for entity, path in again.files.items():
        assert path.read_bytes() == (dump / path.name).read_bytes(), entity
        assert other.files[entity].read_bytes() != path.read_bytes(), entity


def test_the_dry_run_planner_sizes_the_four_files(tmp_path: Path, dump: Path) -> None:
    raw = yaml.safe_load((BUNDLED_DIR / "discogs.yaml").read_text())
    raw["source"]["base_path"] = str(dump)
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(raw))
    spec = load_spec(tmp_path / "d.yaml")
    plan = plan_dump(spec, JobOptions(), dump_path=None)
    assert [s.file for s in plan.slices] == [f"discogs_20990101_{e}.xml.gz" for e in ENTITIES]
    sized = estimate_files("discogs_xml", dump, plan.slices, 500)
    assert sized.records == pytest.approx(RECORDS, rel=0.05)


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--records", "300", "--out", str(tmp_path), "--seed", "3", "--date", "20250101"])
    out = capsys.readouterr().out
    assert "releases" in out and "300" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"discogs_20250101_{entity}.xml.gz" for entity in ENTITIES] + ["dump.json"]
    )
    with pytest.raises(SystemExit):
        main(["--date", "2025-01-01", "--out", str(tmp_path)])


def test_a_failed_write_is_raised_not_lost(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="missing"), GzipWriter(tmp_path / "missing" / "x.gz") as out:
        for _ in range(20):
            out.write("<x/>" * 1000)


def test_a_dump_is_reused_only_while_its_files_are_as_written(tmp_path: Path) -> None:
    written = write_dump(tmp_path, 300, seed=3)
    again = existing_dump(tmp_path, 300, seed=3)
    assert again is not None
    assert (again.files, again.records) == (written.files, written.records)
    assert existing_dump(tmp_path, 301, seed=3) is None  # another size
    assert existing_dump(tmp_path, 300, seed=4) is None  # another seed
    with gzip.open(written.files["labels"], "ab") as more:
        more.write(b"<!-- changed -->")
    assert existing_dump(tmp_path, 300, seed=3) is None
    assert existing_dump(tmp_path / "nothing", 300) is None


def test_groups_and_parent_labels_are_spread_through_the_ids() -> None:
    """As in a real dump, whose start the planner samples: a fifth of the labels have a
    parent and a fifth of the artists are in a group, in the first tenth as in the last."""
    n = 20_000
    catalogue = Catalogue(dict.fromkeys(ENTITIES, n), seed=3)
    for ids in (range(1, n // 10 + 1), range(n - n // 10 + 1, n + 1)):
        with_parent = sum(catalogue.parent_label(label) is not None for label in ids)
        in_group = sum(catalogue.group_of(artist) is not None for artist in ids)
        assert with_parent / len(ids) == pytest.approx(0.2, abs=0.03)
        assert in_group / len(ids) == pytest.approx(0.2, abs=0.03)
    for group in (g for g in range(1, n + 1) if catalogue.is_group(g)):
        assert all(catalogue.group_of(member) == group for member in catalogue.members(group))
