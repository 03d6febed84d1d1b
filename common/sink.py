"""What a consumer's store must do for the shared batch processor (common.batch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from common.envelope import EndOfJob
from common.errors import BadMessageError
from common.outcomes import Outcome
from common.records import PreparedRecord


@dataclass(frozen=True)
class WriteResult:
    """What a sink did with a batch: records written, records it already held unchanged, and
    records it can never hold (left out; the processor dead-letters them with the reason)."""

    written: int
    unchanged: int = 0
    rejected: tuple[tuple[PreparedRecord, BadMessageError], ...] = ()


class Sink(Protocol):
    """A store the processor writes to: tableinator's PostgreSQL, graphinator's Neo4j."""

    reads_docs: bool  # whether write() reads records' documents (else only key, hash, JSON)

    async def begin_job(self, entity: str, job_id: str) -> None:
        """The first page of a job arrived (e.g. drop indexes for a bulk load)."""

    async def write(self, entity: str, records: list[PreparedRecord]) -> WriteResult:
        """Write and commit a batch (keys unique); raise on failure. A record the store can
        never hold is left out and returned in ``rejected``."""

    async def finalise(self, entity: str, end: EndOfJob) -> dict[str, Any]:
        """Everything of the job is committed: finish up, return what landed."""

    def classify(self, exc: BaseException) -> Outcome:
        """What a write's error decides: retry, dead-letter the record, or stop."""

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the error means "store unavailable, retry" (``classify`` says RETRY)."""
