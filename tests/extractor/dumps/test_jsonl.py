"""The JSON Lines dump reader: objects line by line, bad lines skipped, cut files refused."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest

from extractor.sources.dumps import DumpStats, DumpTruncatedError
from extractor.sources.dumps.jsonl import iter_pages, iter_records, parse_stream
from tests.extractor.dumps.samples import DATA, gzipped_copy

SAMPLE = DATA / "replays.jsonl"


def test_objects_in_order_with_bad_lines_skipped_and_counted() -> None:
    stats = DumpStats()
    records = list(iter_records(SAMPLE, stats=stats))
    assert [r["id"] for r in records] == ["gen9ou-1", "gen9ou-2", "gen9ou-3"]
    assert records[1]["notes"] == "tab\there, newline\nthere, é"
    assert (stats.records, stats.skipped) == (3, 2)
    assert stats.skip_samples[0].startswith("line 4: not JSON")
    assert stats.skip_samples[1] == "line 5: a JSON list, not an object"
    assert stats.bytes_read == stats.bytes_total


def test_gzip_reads_the_same(tmp_path: Path) -> None:
    assert list(iter_records(gzipped_copy(SAMPLE, tmp_path))) == list(iter_records(SAMPLE))


def test_pages() -> None:
    assert [len(page) for page in iter_pages(SAMPLE, 2)] == [2, 1]


def test_cut_gzip_yields_complete_lines_then_names_the_file(tmp_path: Path) -> None:
    lines = b"".join(b'{"n": %d}\n' % n for n in range(5000))
    compressor = zlib.compressobj(wbits=31)
    data = compressor.compress(lines) + compressor.flush(zlib.Z_SYNC_FLUSH)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    available = zlib.decompressobj(wbits=31).decompress(path.read_bytes())
    seen: list[int] = []
    with pytest.raises(DumpTruncatedError, match=r"cut\.jsonl\.gz: .*cut short"):
        seen.extend(r["n"] for r in iter_records(path))
    assert seen == list(range(available.count(b"\n")))


def test_cut_off_last_line_of_a_plain_file() -> None:
    stream = io.BytesIO(b'{"n": 1}\n{"n": 2}\n{"n": ')
    seen: list[int] = []
    with pytest.raises(DumpTruncatedError, match=r"cut\.jsonl: line 3.*cut off"):
        seen.extend(r["n"] for r in parse_stream(stream, name="cut.jsonl"))
    assert seen == [1, 2]
    assert list(parse_stream(io.BytesIO(b'{"n": 1}\n{"n": 2}'))) == [{"n": 1}, {"n": 2}]


def test_whole_gzip_file_of_objects(tmp_path: Path) -> None:
    path = tmp_path / "many.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"n": %d}\n' % n for n in range(3000))))
    stats = DumpStats()
    assert sum(1 for _ in iter_records(path, stats=stats)) == 3000
    assert stats.bytes_read == stats.bytes_total
