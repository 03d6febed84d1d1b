"""The job report: what was fetched and published, and what landed in each store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from extractor.ledger.snapshot import JobSnapshot


@dataclass
class JobReport:
    """Everything a person (or a scheduler) wants to know when a job ends."""

    job_id: str
    dataset: str
    status: str
    pages: int
    records: int
    fetch_seconds: float
    total_seconds: float
    failed_slices: dict[str, str]
    entities: dict[str, dict[str, int]]
    errors: dict[str, int] = field(default_factory=dict)
    landed: dict[str, dict[str, Any]] = field(default_factory=dict)
    complete: bool = True
    files: list[dict[str, Any]] = field(default_factory=list)
    detail_missing: int = 0  # details that answered 404: counted, not failures

    @property
    def ok(self) -> bool:
        return self.status == "done" and self.complete and not self.failed_slices

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "dataset": self.dataset,
            "status": self.status,
            "pages": self.pages,
            "records": self.records,
            "fetch_seconds": round(self.fetch_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "records_per_second": round(self.records / max(self.total_seconds, 1e-9), 1),
            "failed_slices": self.failed_slices,
            "entities": self.entities,
            "errors": self.errors,
            "landed": self.landed,
            "complete": self.complete,
            "ok": self.ok,
            "detail_missing": self.detail_missing,
            **({"files": self.files} if self.files else {}),
        }


def build_report(
    snapshot: JobSnapshot,
    events: dict[tuple[str, str], dict[str, Any]],
    complete: bool,
    *,
    started: float,
    fetched: float,
    now: float,
) -> JobReport:
    """The report of one run (monotonic times), from the ledger and the consumers' events."""
    return JobReport(
        job_id=snapshot.job.job_id,
        dataset=snapshot.job.dataset,
        status=snapshot.job.status,
        pages=snapshot.pages,
        records=snapshot.records,
        fetch_seconds=fetched - started,
        total_seconds=now - started,
        failed_slices={f.slice_id: f"{f.error_kind}: {f.last_error}" for f in snapshot.failed},
        entities={
            name: {
                "pages": e.pages,
                "records": e.records,
                "slices_done": e.slices.get("done", 0),
                "slices_failed": e.slices.get("failed", 0),
            }
            for name, e in sorted(snapshot.entities.items())
        }
        | _detail_entities(snapshot),
        errors=snapshot.errors,
        landed=_landed(events, started),
        complete=complete,
        files=snapshot.files,
        detail_missing=snapshot.detail_missing,
    )


def _detail_entities(snapshot: JobSnapshot) -> dict[str, dict[str, int]]:
    """The report's rows of detail entities (fetched within their parents' slices)."""
    return {
        name: {
            "pages": d.pages,
            "records": d.records,
            "slices_done": 0,
            "slices_failed": 0,
            "detail_missing": d.missing,
        }
        for name, d in sorted(snapshot.details.items())
    }


def _landed(
    events: dict[tuple[str, str], dict[str, Any]], started: float
) -> dict[str, dict[str, Any]]:
    """Per store and entity: what it holds, and how long after the start it was done."""
    landed: dict[str, dict[str, Any]] = {}
    for (service, entity), event in sorted(events.items()):
        seconds = event["received_at"] - started
        landed.setdefault(service, {})[entity] = {
            **event["landed"],
            "seconds": round(seconds, 3),
            "records_per_second": round(event["published_records"] / max(seconds, 1e-9), 1),
        }
    return landed


def print_report(report: JobReport, console: Console) -> None:
    """A readable summary: published per entity, landed per store, rates."""
    published = Table(title=f"job {report.job_id}: {report.status}")
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
    if report.landed:
        console.print(_landed_table(report))
    rate = report.records / max(report.total_seconds, 1e-9)
    console.print(
        f"{report.records:,} records in {report.total_seconds:.1f} s end to end "
        f"({rate:,.0f} records/s; fetch and publish took {report.fetch_seconds:.1f} s)"
    )
    if report.errors:
        errors = ", ".join(f"{kind} {count:,}" for kind, count in report.errors.items())
        console.print(
            f"errors by kind (failed requests, retried or not; records skipped): {errors}"
        )
    if report.detail_missing:
        console.print(
            f"detail_missing {report.detail_missing:,}: details that answered 404 (or whose"
            " parent record has no value for the path), counted, not failures"
        )
    for item in report.files:
        if item["skipped"]:
            reasons = "; ".join(item["skip_samples"][:3])
            console.print(f"{item['file']}: {item['skipped']:,} records skipped (first: {reasons})")
    for slice_id, error in report.failed_slices.items():
        console.print(f"[red]failed slice {slice_id}: {error}[/red]")
    if not report.complete:
        console.print("[red]not every consumer reported the job finalised[/red]")


def _landed_table(report: JobReport) -> Table:
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
    return landed


def _describe(landed: dict[str, Any]) -> str:
    if "rows" in landed:
        return f"{landed['rows']:,} rows in {landed.get('table', '?')}"
    rels = ", ".join(f"{count:,} {name}" for name, count in landed.get("relationships", {}).items())
    return f"{landed.get('nodes', 0):,} :{landed.get('label', '?')} nodes" + (
        f"; {rels}" if rels else ""
    )
