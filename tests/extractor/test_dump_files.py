"""Planning and sizing dump jobs (pure; files on disk only)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from common.errors import ConfigError
from common.spec import load_spec
from extractor.backfill import JobOptions, plan, plan_dump
from extractor.ledger.slices import Slice, Window
from extractor.sources.dump_estimate import estimate_files, sample_head
from extractor.sources.dump_files import dump_date, newest_dump
from tests.extractor.dump_support import discogs_spec
from tests.extractor.dumps.samples import ENTITIES, gzipped_copy, sample, write_releases


@pytest.fixture
def two_months(tmp_path: Path) -> Path:
    files = tmp_path / "discogs"
    files.mkdir()
    for entity in ENTITIES:
        gzipped_copy(sample(entity), files)
        shutil.copy(sample(entity), files / f"discogs_20981201_{entity}.xml")
        (files / f"discogs_20981201_{entity}.xml.gz").write_bytes(b"")
    return files


def test_newest_dump_date_unless_all_files(tmp_path: Path, two_months: Path) -> None:
    spec = load_spec(discogs_spec(tmp_path / "d.yaml", "d", two_months))
    newest = plan_dump(spec, JobOptions(), dump_path=None)
    assert [s.slice_id for s in newest.slices] == [
        f"{e}:discogs_20990101_{e}.xml.gz" for e in ENTITIES
    ]
    assert all(s.file_size and s.file == s.slice_id.split(":")[1] for s in newest.slices)
    assert newest.notes[0] == (
        "artists: discogs_20990101_artists.xml.gz "
        "(the newest of dump dates 20990101, 20981201; see --all-files)"
    )
    every = plan(spec, JobOptions(all_files=True))
    assert [s.file for s in every if s.entity == "labels"] == [
        "discogs_20981201_labels.xml.gz",
        "discogs_20990101_labels.xml.gz",
    ]


def test_base_path_override_and_clear_errors(tmp_path: Path, two_months: Path) -> None:
    spec = load_spec(discogs_spec(tmp_path / "d.yaml", "d", tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"dump directory .*nowhere \(from the spec's"):
        plan(spec, JobOptions())
    assert len(plan(spec, JobOptions(), dump_path=str(two_months))) == 4
    (two_months / "discogs_20990101_masters.xml.gz").unlink()
    older = plan(spec, JobOptions(), dump_path=str(two_months))
    assert "masters:discogs_20981201_masters.xml.gz" in {s.slice_id for s in older}
    (two_months / "discogs_20981201_masters.xml.gz").unlink()
    with pytest.raises(ConfigError, match=r"masters\.path: no file matches .* in .*discogs"):
        plan(spec, JobOptions(), dump_path=str(two_months))


def test_dump_dates_in_names() -> None:
    names = [Path(n) for n in ("discogs_20250101_x.xml.gz", "discogs_20250201_x.xml.gz")]
    assert dump_date(names[0]) == "20250101" and dump_date(Path("x.xml")) is None
    assert newest_dump(names) == names[1:]
    assert newest_dump([Path("a.jsonl"), Path("b.jsonl")]) == [Path("a.jsonl"), Path("b.jsonl")]


def slices_of(base: Path, *names: str) -> list[Slice]:
    return [Slice("releases", f"releases:{n}", Window(), file=n) for n in names]


def test_a_small_file_is_counted_exactly(tmp_path: Path) -> None:
    gzipped_copy(sample("releases"), tmp_path)
    sized = estimate_files(
        "discogs_xml", tmp_path, slices_of(tmp_path, "discogs_20990101_releases.xml.gz"), 2
    )
    assert (sized.records, sized.pages, sized.method) == (3, 2, "counted every file")
    assert sized.files[0].exact and sized.records_per_second


@pytest.mark.parametrize("gzipped", [True, False], ids=["gzip", "plain"])
def test_a_large_file_is_estimated_from_its_head(tmp_path: Path, gzipped: bool) -> None:
    name = "r.xml.gz" if gzipped else "r.xml"
    write_releases(tmp_path / name, 30_000, gzipped=gzipped)
    sized = estimate_files("discogs_xml", tmp_path, slices_of(tmp_path, name), 500)
    assert sized.method.startswith("sampled the first 2 MiB")
    assert sized.records is not None and abs(sized.records - 30_000) < 30_000 * 0.02
    assert not sized.files[0].exact and sized.seconds and sized.seconds > 0
    head = sample_head(tmp_path / name)
    assert len(head.data) == 2 * 1024 * 1024 and not head.whole


def test_jsonl_estimate_and_a_broken_file(tmp_path: Path) -> None:
    lines = "".join(json.dumps({"id": i, "pad": "x" * (i % 50)}) + "\n" for i in range(100_000))
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    (tmp_path / "b.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    sized = estimate_files("jsonl", tmp_path, slices_of(tmp_path, "a.jsonl.gz", "b.jsonl.gz"), 10)
    first, broken = sized.files
    assert first.records is not None and abs(first.records - 100_000) < 2_000
    assert broken.records is None and broken.error and sized.records is None


def test_the_plan_command_names_the_files_it_chose(
    tmp_path: Path, two_months: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from extractor.__main__ import main

    spec = str(discogs_spec(tmp_path / "d.yaml", "d", tmp_path / "elsewhere"))
    with pytest.raises(SystemExit) as done:
        main(["plan", "--spec", spec, "--base-path", str(two_months), "--all-files", "--json"])
    assert done.value.code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["base_path"] == str(two_months.resolve()) and len(body["slices"]) == 8
    sized = body["estimate"]
    assert sized["records"] is None  # an empty older file cannot be counted
    assert [f["error"] is not None for f in sized["files"]] == [True, False] * 4
    with pytest.raises(SystemExit) as done:
        main(["plan", "--spec", spec, "--base-path", str(two_months)])
    out = " ".join(capsys.readouterr().out.split())  # as one line, however rich wrapped it
    assert "4 files in" in out and "(the newest of dump dates 20990101, 20981201" in out
    assert "estimate (counted every file): 12 records, 4 pages of 500" in out
