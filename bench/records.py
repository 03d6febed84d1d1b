"""Realistic benchmark records, rebuilt deterministically from their index.

The demo API's replays (~350 bytes of JSON) plus the link to the replay's log, a field the
real search API returns as well, bring a record to ~400 bytes. Records are built on demand,
page by page, so the benchmark's own memory does not hide the consumer's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from common.envelope import PageBatch
from common.records import record_keys
from demoapi import Dataset

PAGE_SIZE = 100
KEY = "id"  # the demo spec's key of a replay
CHANGED_EVERY = 10  # "10% changed": every 10th record gets one more view


class BenchRecords:
    """``count`` replay records; ``record(i)`` is the same on every call."""

    def __init__(self, count: int, seed: int = 7) -> None:
        self.count = count
        self._dataset = Dataset(size=count, seed=seed)

    def record(self, index: int, *, changed: bool = False) -> dict[str, Any]:
        """Record ``index``; with ``changed``, every 10th record has one more view."""
        record: dict[str, Any] = dict(self._dataset.record(index))
        record["log_url"] = f"/replays/{record['id']}.log"
        if changed and index % CHANGED_EVERY == 0:
            record["views"] += 1
        return record

    def records(
        self, start: int = 0, stop: int | None = None, *, changed: bool = False
    ) -> Iterator[dict[str, Any]]:
        for index in range(start, self.count if stop is None else min(stop, self.count)):
            yield self.record(index, changed=changed)

    def pages(
        self, *, job_id: str, dataset: str, entity: str, changed: bool = False
    ) -> Iterator[PageBatch]:
        """The records as page batches of ``PAGE_SIZE``, keyed as the extractor publishes them."""
        for page, start in enumerate(range(0, self.count, PAGE_SIZE)):
            records = list(self.records(start, start + PAGE_SIZE, changed=changed))
            yield PageBatch(
                job_id=job_id,
                dataset=dataset,
                entity=entity,
                slice_id=f"{entity}:bench",
                page=page,
                records=records,
                keys=record_keys(records, KEY, "text"),
            )

    @property
    def page_count(self) -> int:
        return -(-self.count // PAGE_SIZE)
