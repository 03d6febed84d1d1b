"""The full report of a job as a Markdown file with its PNG chart, and its terminal sections."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from extractor.reporting.report_chart import per_second, write_chart
from extractor.reporting.report_data import FullReport, StoreFigures

DEFAULT_DIRECTORY = Path("reports")


def default_path(job_id: str) -> Path:
    """Where a run leaves its report when not told: ``reports/<job>.md`` (and ``.png``)."""
    return DEFAULT_DIRECTORY / f"{job_id}.md"


def write_report(report: FullReport, path: Path) -> Path | None:
    """Write ``path`` (Markdown) and the chart beside it (same name, ``.png``); the chart's
    path, or None when there was nothing to plot."""
    path.parent.mkdir(parents=True, exist_ok=True)
    chart = path.with_suffix(".png")
    drawn = write_chart(report, chart)
    path.write_text(markdown(report, chart.name if drawn else None))
    return chart if drawn else None


def markdown(report: FullReport, chart: str | None) -> str:
    sections = [
        _heading(report),
        _published(report),
        _stores(report),
        _dead_letters(report),
        _failed(report),
        _phases(report),
        _throughput(report, chart),
        _next(report),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns)
    body = ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join([head, *body])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _heading(report: FullReport) -> str:
    data = report.snapshot.as_dict()
    finished = data["finished_at"] or "not yet"
    return (
        f"# Job {report.job_id}: {data['status']}\n\n"
        f"Dataset `{data['dataset']}` (spec `{data['spec']}`), created {data['created_at']}, "
        f"finished {finished}. {data['records']:,} records in {data['pages']:,} pages."
        + "".join(f"\n\n_{note}_" for note in report.notes)
    )


def _published(report: FullReport) -> str:
    rows = [
        [name, e.slices.get("done", 0), e.slices.get("failed", 0), e.pages, e.records]
        for name, e in report.snapshot.entities.items()
    ]
    columns = ["entity", "slices done", "slices failed", "pages", "records"]
    rows += [
        [f"{name} (details of {d.parent})", "-", "-", d.pages, d.records]
        for name, d in report.snapshot.details.items()
    ]
    text = "## Published\n\n" + _table(columns, rows)
    if report.snapshot.detail_missing:
        text += f"\n\ndetail_missing: {report.snapshot.detail_missing:,} details answered 404."
    if report.snapshot.errors:
        errors = ", ".join(f"{kind} {n:,}" for kind, n in report.snapshot.errors.items())
        text += f"\n\nFailed requests and skipped records by kind: {errors}."
    return text


STORE_COLUMNS = [
    "store",
    "entity",
    "the store holds",
    "published",
    "written by this job",
    "unchanged, skipped",
    "dead-lettered",
    "done after",
]


def store_rows(report: FullReport) -> list[list[Any]]:
    created = report.snapshot.job.created_at
    return [
        [
            s.service,
            s.entity,
            holds(s),
            s.published,
            s.written,
            s.unchanged,
            s.dead_lettered,
            seconds((s.finalised_at - created).total_seconds()),
        ]
        for s in report.stores
    ]


def holds(store: StoreFigures) -> str:
    landed = store.landed
    if "rows" in landed:
        return f"{landed['rows']:,} rows in {landed.get('table', '?')}"
    rels = ", ".join(f"{n:,} {name}" for name, n in landed.get("relationships", {}).items())
    nodes = f"{landed.get('nodes', 0):,} :{landed.get('label', '?')} nodes"
    return nodes + (f"; {rels}" if rels else "")


def _stores(report: FullReport) -> str:
    if not report.stores:
        return ""
    return (
        "## Records per store\n\n"
        "What each consumer reported when it finalised the job (totals the store holds), "
        "rows this job wrote (PostgreSQL: `updated_at` inside the job's window), and what "
        "was unchanged and skipped (published - written - dead-lettered).\n\n"
        + _table(STORE_COLUMNS, store_rows(report))
    )


DEAD_COLUMNS = ["consumer", "entity", "code", "count", "first seen", "last seen", "reason"]


def dead_rows(report: FullReport) -> list[list[Any]]:
    keys = ("consumer", "entity", "code", "count", "first_seen", "last_seen")
    return [[*(g[key] for key in keys), g["reason"][:200]] for g in report.dead_letters or []]


def _dead_letters(report: FullReport) -> str:
    if report.dead_letters is None:
        return "## Dead letters\n\nUnknown: the broker could not be asked."
    if not report.dead_letters:
        return "## Dead letters\n\nNone of this job's messages or records is dead-lettered."
    return "## Dead letters (still in the queues)\n\n" + _table(DEAD_COLUMNS, dead_rows(report))


def _failed(report: FullReport) -> str:
    if not report.snapshot.failed:
        return ""
    rows = [
        [f.slice_id, f.attempts, f.error_kind, (f.last_error or "")[:200]]
        for f in report.snapshot.failed
    ]
    return "## Failed slices\n\n" + _table(["slice", "attempts", "kind", "last error"], rows)


PHASES = {
    "plan": "plan (slices and estimate)",
    "fetch_and_publish": "fetch and publish",
    "drain_to_stores": "drain to the stores",
    "total": "total",
}


def _phases(report: FullReport) -> str:
    rows = [[label, seconds(report.phases.get(key))] for key, label in PHASES.items()]
    return "## Time per phase\n\n" + _table(["phase", "duration"], rows)


def _throughput(report: FullReport, chart: str | None) -> str:
    _, records = per_second(report.timeline)
    if not records:
        return "## Throughput\n\nNo pages were confirmed (nothing to plot)."
    busy = [n for n in records if n]
    return (
        f"## Throughput\n\n![records confirmed per second]({chart})\n\n"
        f"Records confirmed by the broker per second: peak {max(records):,}, "
        f"mean {sum(busy) / len(busy):,.0f} over the {len(busy):,} seconds with pages."
    )


def _next(report: FullReport) -> str:
    steps = report.next_steps()
    if not steps:
        return "## Next\n\nNothing failed: nothing to run."
    return "## Next\n\n" + "\n".join(f"    {step}" for step in steps)


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 120 else str(dt.timedelta(seconds=round(value)))


def print_sections(console: Console, report: FullReport, *, stores: bool = True) -> None:
    """What the terminal report adds: stores, dead letters, phases, what to run next."""
    if stores and report.stores:
        console.print(_rich_table("records per store", STORE_COLUMNS, store_rows(report)))
    elif any(s.written is not None for s in report.stores):
        for s in report.stores:
            if s.written is not None:
                console.print(
                    f"{s.service} {s.entity}: {s.written:,} written by this job, "
                    f"{s.unchanged:,} unchanged and skipped"
                )
    if report.dead_letters:
        table = _rich_table("dead letters (still in the queues)", DEAD_COLUMNS, dead_rows(report))
        console.print(table)
    for note in report.notes:
        console.print(note)
    phases = ", ".join(f"{label} {seconds(report.phases.get(k))}" for k, label in PHASES.items())
    console.print(f"time per phase: {phases}")
    for step in report.next_steps():
        console.print(f"[yellow]next: {step}[/yellow]")


def _rich_table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(_cell(value) for value in row))
    return table
