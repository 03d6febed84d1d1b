"""The bulk load's files as pure logic: a crash's torn lines vanish on recovery, a replayed
batch adds nothing, a record's last version wins with only its own edges, a stub is kept
only where no record came, and each CSV holds one type per column."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from common.records import PreparedRecord, prepare
from common.spec import load_spec
from graphinator.bulk import BulkSink
from graphinator.bulk_files import COMMITS, recover
from graphinator.bulk_import import ImportPlan, build_import
from graphinator.cypher import node_keys
from tests.graphinator.test_graph import ARTISTS, RELEASES, music_spec

__all__ = ["music_spec"]  # the fixture, used by name


def prepared(rows: list[dict[str, Any]]) -> list[PreparedRecord]:
    return [prepare(row, "id", "bigint") for row in rows]


def read_csvs(plan: ImportPlan, kind: str) -> dict[str, list[dict[str, str]]]:
    """Each --nodes / --relationships group's rows, by label or type."""
    groups: dict[str, list[dict[str, str]]] = {}
    for name, path in plan.node_files if kind == "nodes" else plan.rel_files:
        with (plan.directory / path).open(newline="", encoding="utf-8") as handle:
            groups.setdefault(name, []).extend(csv.DictReader(handle))
    return groups


async def test_a_torn_write_is_cut_back_and_the_load_resumes_exactly(
    music_spec: Path, tmp_path: Path
) -> None:
    spec = load_spec(str(music_spec))
    staging = tmp_path / "staging"
    sink = BulkSink(spec, staging)
    assert (await sink.write("artists", prepared(ARTISTS[:2]))).written == 2
    sink.close()
    committed = {path: path.stat().st_size for path in staging.rglob("*.tsv")}
    with (staging / "nodes" / "Artist.tsv").open("ab") as torn:
        torn.write(b'r\t4\t"abc')  # kill -9 in the middle of the next batch
    with (staging / COMMITS).open("ab") as torn:
        torn.write(b'{"nodes/Artist.tsv": 9')

    again = BulkSink(spec, staging)  # recovers, then rebuilds its state from the files
    assert {path: path.stat().st_size for path in staging.rglob("*.tsv")} == committed
    assert (await again.write("artists", prepared(ARTISTS[:2]))).written == 0  # redelivered
    assert (await again.write("artists", prepared(ARTISTS[2:]))).written == 1
    again.close()
    assert recover(staging) == {
        str(path.relative_to(staging)): path.stat().st_size for path in staging.rglob("*.tsv")
    }


async def test_the_import_keeps_last_versions_their_edges_and_needed_stubs(
    music_spec: Path, tmp_path: Path
) -> None:
    spec = load_spec(str(music_spec))
    sink = BulkSink(spec, tmp_path / "staging")
    await sink.write("releases", prepared(RELEASES))  # artists 1, 4, 5 are stubs
    await sink.write("artists", prepared(ARTISTS))  # 1 and 4 filled in, 2 created
    changed = dict(RELEASES[0], genres=["Jazz"], year="1999?")  # a string where ints were
    await sink.write("releases", prepared([changed]))
    sink.close()

    plan = build_import(tmp_path, sorted(node_keys(spec)), "neo4j")
    nodes, rels = read_csvs(plan, "nodes"), read_csvs(plan, "relationships")
    artists = {row[":ID(Artist)"]: row for row in nodes["Artist"]}
    assert sorted(artists) == ["1", "2", "3", "4", "5"]
    assert artists["1"]["_hash:string"]  # the record, not its stub
    assert "_hash:string" not in artists["5"] or not artists["5"]["_hash:string"]
    releases = {row[":ID(Release)"]: row for row in nodes["Release"]}
    assert releases["10"]["year:string"] == "1999?" and releases["11"]["year:long"] == "2001"
    genres = sorted((row[":START_ID(Release)"], row[":END_ID(Genre)"]) for row in rels["IS"])
    assert genres == [("10", '"Jazz"'), ("11", '"Rock"')]  # release 10's old genres are gone
    assert sorted(row[":ID(Genre)"] for row in nodes["Genre"]) == ['"Jazz"', '"Pop"', '"Rock"']
    assert plan.total() == (5 + 3 + 2 + 3, 2 + 4 + 3 + 2)
    assert (plan.directory / "import.args").read_text().splitlines()[:4] == [
        "database",
        "import",
        "full",
        "neo4j",
    ]
