"""The CSV dump reader: rows keyed by the header, strings as written, bad rows skipped."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from extractor.sources.dumps import DumpFormatError, DumpStats, DumpTruncatedError
from extractor.sources.dumps.csv import iter_pages, iter_records, parse_stream

TEXT = (
    "\ufeffid,name,notes\r\n"
    '1,Alice,"tab\there, newline\nthere"\r\n'
    "\r\n"
    "2,Bob,\r\n"
    "3,too,many,fields\r\n"
    '4,"Dan ""the man""",é\r\n'
)


def rows(text: str, stats: DumpStats | None = None) -> list[dict[str, str]]:
    return list(parse_stream(io.BytesIO(text.encode()), name="t.csv", stats=stats))


def test_rows_keyed_by_the_header_with_bad_rows_skipped_and_counted() -> None:
    stats = DumpStats()
    assert rows(TEXT, stats) == [
        {"id": "1", "name": "Alice", "notes": "tab\there, newline\nthere"},
        {"id": "2", "name": "Bob", "notes": ""},
        {"id": "4", "name": 'Dan "the man"', "notes": "é"},
    ]
    assert (stats.records, stats.skipped) == (3, 1)
    assert stats.skip_samples == ["line 6: 4 fields, the header has 3"]


def test_gzip_and_plain_files_read_the_same(tmp_path: Path) -> None:
    plain, packed = tmp_path / "t.csv", tmp_path / "t.csv.gz"
    plain.write_text(TEXT, encoding="utf-8", newline="")
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    stats = DumpStats()
    assert list(iter_records(packed, stats=stats)) == list(iter_records(plain)) == rows(TEXT)
    assert stats.bytes_read == stats.bytes_total == packed.stat().st_size
    assert [len(page) for page in iter_pages(plain, 2)] == [2, 1]


def test_a_cut_off_last_row_or_open_quote_is_truncation() -> None:
    seen: list[dict[str, str]] = []
    with pytest.raises(DumpTruncatedError, match=r"t\.csv: line 3.*last row is cut off"):
        seen.extend(parse_stream(io.BytesIO(b"id,name\n1,a\n2"), name="t.csv"))
    assert seen == [{"id": "1", "name": "a"}]
    with pytest.raises(DumpTruncatedError, match="quoted field is still open"):
        rows('id,name\n1,"a\n')
    assert rows("id,name\n1,a") == [{"id": "1", "name": "a"}]  # no final newline, complete


def test_bytes_that_are_not_utf8_or_a_doubled_header_are_format_errors() -> None:
    with pytest.raises(DumpFormatError, match=r"t\.csv: line 2, column 0: not UTF-8"):
        list(parse_stream(io.BytesIO(b"id\n\xff\n"), name="t.csv"))
    with pytest.raises(DumpFormatError, match="names a field twice"):
        rows("id,id\n1,2\n")
    assert rows("") == [] and rows("id,name\n") == []
