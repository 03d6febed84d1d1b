"""The job report: what was fetched and published, and what landed in each store."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from extractor.job import JobStats


@dataclass
class JobReport:
    """Everything a person (or a scheduler) wants to know when a job ends."""

    job_id: str
    dataset: str
    pages: int
    records: int
    fetch_seconds: float
    total_seconds: float
    failed_slices: dict[str, str]
    entities: dict[str, dict[str, int]]
    landed: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = True

    @property
    def ok(self) -> bool:
        return self.complete and not self.failed_slices

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "dataset": self.dataset,
            "pages": self.pages,
            "records": self.records,
            "fetch_seconds": round(self.fetch_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "records_per_second": round(self.records / max(self.total_seconds, 1e-9), 1),
            "failed_slices": self.failed_slices,
            "entities": self.entities,
            "landed": self.landed,
            "complete": self.complete,
            "ok": self.ok,
        }


def build_report(
    stats: JobStats, events: dict[tuple[str, str], dict[str, Any]], complete: bool
) -> JobReport:
    now = time.monotonic()
    fetched = stats.fetched_at or now
    landed: dict[str, dict[str, Any]] = {}
    for (service, entity), event in sorted(events.items()):
        seconds = event["received_at"] - stats.started
        landed.setdefault(service, {})[entity] = {
            **event["landed"],
            "seconds": round(seconds, 3),
            "records_per_second": round(event["published_records"] / max(seconds, 1e-9), 1),
        }
    return JobReport(
        job_id=stats.job_id,
        dataset=stats.dataset,
        pages=stats.pages,
        records=stats.records,
        fetch_seconds=fetched - stats.started,
        total_seconds=now - stats.started,
        failed_slices=dict(stats.errors),
        entities={
            name: {
                "pages": e.pages,
                "records": e.records,
                "slices_done": e.slices_done,
                "slices_failed": e.slices_failed,
            }
            for name, e in sorted(stats.entities.items())
        },
        landed=landed,
        complete=complete,
    )


def print_report(report: JobReport, console: Console) -> None:
    """A readable summary: published per entity, landed per store, rates."""
    published = Table(title=f"job {report.job_id}: published")
    for column in ("entity", "slices ok", "slices failed", "pages", "records"):
        published.add_column(column, justify="right" if column != "entity" else "left")
    for name, e in report.entities.items():
        published.add_row(
            name,
            str(e["slices_done"]),
            str(e["slices_failed"]),
            f"{e['pages']:,}",
            f"{e['records']:,}",
        )
    console.print(published)
    landed = Table(title="landed (totals now in each store)")
    for column in ("store", "entity", "what the store holds", "done after", "records/s"):
        landed.add_column(
            column, justify="right" if column in ("done after", "records/s") else "left"
        )
    for service, entities in report.landed.items():
        for entity, what in entities.items():
            landed.add_row(
                service,
                entity,
                _describe(what),
                f"{what['seconds']:.1f} s",
                f"{what['records_per_second']:,.0f}",
            )
    console.print(landed)
    rate = report.records / max(report.total_seconds, 1e-9)
    console.print(
        f"{report.records:,} records in {report.total_seconds:.1f} s end to end "
        f"({rate:,.0f} records/s; fetch and publish took {report.fetch_seconds:.1f} s)"
    )
    for slice_id, error in report.failed_slices.items():
        console.print(f"[red]failed slice {slice_id}: {error}[/red]")
    if not report.complete:
        console.print("[red]not every consumer reported the job finalised[/red]")


def _describe(landed: dict[str, Any]) -> str:
    if "rows" in landed:
        return f"{landed['rows']:,} rows in {landed.get('table', '?')}"
    rels = ", ".join(f"{count:,} {name}" for name, count in landed.get("relationships", {}).items())
    return f"{landed.get('nodes', 0):,} :{landed.get('label', '?')} nodes" + (
        f"; {rels}" if rels else ""
    )
