"""A dump file's pages: from any record position, a break after its last complete page,
skipped records counted, and a run that stops while skipping to its checkpoint."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from extractor.sources.dump_pages import DumpPages
from extractor.sources.fetch import SourceError
from extractor.sources.paginators import Page
from tests.extractor.dumps.samples import gzipped_copy, sample, write_releases


async def all_pages(path: Path, page_size: int, start: int = 0, **kw: Any) -> list[Page]:
    pages: list[Page] = []
    errors: Counter[str] = Counter()
    async with DumpPages(path, "discogs_xml", "releases", page_size) as source:
        position: int | None = start
        while position is not None:
            page = await source.page(position, errors)
            pages.append(page)
            position = page.next_position
    return pages


def ids(pages: list[Page]) -> list[list[int]]:
    return [[r["id"] for r in page.records] for page in pages]


async def test_resuming_at_a_position_gives_the_same_pages(tmp_path: Path) -> None:
    path = write_releases(tmp_path / "r.xml.gz", 1_050)
    whole = await all_pages(path, 100)
    assert [len(p.records) for p in whole] == [100] * 10 + [50]
    assert [p.next_position for p in whole] == [*range(100, 1001, 100), None]
    assert ids(await all_pages(path, 100, start=700)) == ids(whole)[7:]
    last = whole[-1].file_stats
    assert last and last["bytes_read"] == last["bytes_total"] == path.stat().st_size
    assert last["records"] == 1_050


async def test_a_file_of_whole_pages_ends_with_an_empty_page(tmp_path: Path) -> None:
    path = write_releases(tmp_path / "r.xml", 300, gzipped=False)
    pages = await all_pages(path, 100)
    assert [(len(p.records), p.next_position) for p in pages] == [
        (100, 100),
        (100, 200),
        (100, 300),
        (0, None),
    ]


async def test_a_cut_gzip_gives_its_complete_records_then_fails(tmp_path: Path) -> None:
    whole = write_releases(tmp_path / "whole.xml.gz", 2_000)
    cut = tmp_path / "cut.xml.gz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    errors: Counter[str] = Counter()
    seen = 0
    async with DumpPages(cut, "discogs_xml", "releases", 300) as source:
        with pytest.raises(SourceError, match=r"cut\.xml\.gz: the gzip stream ends") as failed:
            while True:
                page = await source.page(seen, errors)
                assert page.next_position is not None  # never "done"
                seen += len(page.records)
    assert failed.value.kind == "dump_truncated" and errors == {"dump_truncated": 1}
    assert 0 < seen < 2_000 and seen % 300 != 0  # the last page was a partial one


async def test_skipped_records_are_set_not_added(tmp_path: Path) -> None:
    path = gzipped_copy(sample("artists"), tmp_path)
    errors: Counter[str] = Counter({"skipped_record": 2})  # from the run before a resume
    async with DumpPages(path, "discogs_xml", "artists", 2) as source:
        page = await source.page(2, errors)
    assert [r["id"] for r in page.records] == [22387, 194]
    assert errors == {"skipped_record": 2}
    assert page.file_stats and page.file_stats["skip_samples"][0].startswith("record 4: ")


@pytest.mark.parametrize(
    ("name", "position", "kind"),
    [("r.xml.gz", 500, "dump_changed"), ("missing.xml.gz", 0, "dump_file")],
)
async def test_a_changed_or_missing_file(
    tmp_path: Path, name: str, position: int, kind: str
) -> None:
    write_releases(tmp_path / "r.xml.gz", 100)
    errors: Counter[str] = Counter()
    async with DumpPages(tmp_path / name, "discogs_xml", "releases", 10) as source:
        with pytest.raises(SourceError) as failed:
            await source.page(position, errors)
    assert failed.value.kind == kind and errors == {kind: 1}


async def test_stopping_while_skipping_to_a_checkpoint_is_prompt(tmp_path: Path) -> None:
    path = write_releases(tmp_path / "r.xml.gz", 30_000)
    source = DumpPages(path, "discogs_xml", "releases", 100)
    async with source:
        reading = asyncio.ensure_future(source.page(29_000, Counter()))
        await asyncio.sleep(0.2)
        reading.cancel()
        started = time.monotonic()
    assert time.monotonic() - started < 1.0  # not the ~3 s the whole skip takes
    assert reading.cancelled()
