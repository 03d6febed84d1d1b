"""What the CLI prints for ``plan``, ``status`` and ``report``."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from common.spec import DatasetSpec
from extractor.ledger.slices import Slice
from extractor.ledger.snapshot import JobSnapshot
from extractor.pacing.ratelimit import RatePolicy
from extractor.sources.dump_estimate import DumpEstimate
from extractor.sources.dump_files import FilePlan
from extractor.sources.estimate import JobEstimate
from extractor.sources.page_sources import first_request

PLAN_ROWS = 40


def iso(ts: int | None) -> str:
    return "-" if ts is None else f"{dt.datetime.fromtimestamp(ts, dt.UTC):%Y-%m-%d %H:%M}"


def print_plan(
    console: Console,
    spec: DatasetSpec,
    slices: list[Slice],
    sized: JobEstimate | None,
    policy: RatePolicy,
    base_url: str = "",
) -> None:
    table = Table(title=f"{spec.name}: {len(slices)} slices (dry run, nothing published)")
    for column in ("slice", "from", "to", "records", "pages"):
        table.add_column(column, justify="right" if column in ("records", "pages") else "left")
    per_slice = sized.per_slice if sized else {}
    for item in slices[:PLAN_ROWS]:
        count = per_slice.get(item.slice_id)
        size = spec.entities[item.entity].paginator
        pages = "-" if count is None or size is None else f"{-(-count // size.page_size):,}"
        records = "-" if count is None else f"{count:,}"
        table.add_row(item.slice_id, iso(item.window.start), iso(item.window.end), records, pages)
    if len(slices) > PLAN_ROWS:
        table.add_row(f"... {len(slices) - PLAN_ROWS} more", "", "", "", "")
    console.print(table)
    print_first_requests(console, spec, slices, base_url)
    console.print(describe_estimate(sized, policy))


def print_first_requests(
    console: Console, spec: DatasetSpec, slices: list[Slice], base_url: str
) -> None:
    """One line per slice (the first PLAN_ROWS): its window, paginator and first request."""
    console.print("first request of each slice (credentials are added when it is sent):")
    shown = slices[:PLAN_ROWS]
    for item, request in zip(shown, first_requests(spec, shown, base_url), strict=True):
        line = (
            f"  {iso(item.window.start)} .. {iso(item.window.end)}  {request['paginator']}"
            f"  {request['path']}  params: {json.dumps(request['params'])}"
        )
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    if len(slices) > PLAN_ROWS:
        console.print(f"  ... and {len(slices) - PLAN_ROWS} more slices alike")


def first_requests(spec: DatasetSpec, slices: list[Slice], base_url: str) -> list[dict[str, Any]]:
    """Per slice, its paginator's kind and the path and params of its first request."""
    shown = []
    for item in slices:
        entity = spec.entities[item.entity]
        path, params = first_request(entity, item.window, base_url)
        kind = entity.paginator.kind if entity.paginator else "-"
        shown.append({"slice_id": item.slice_id, "paginator": kind, "path": path, "params": params})
    return shown


def print_dump_plan(
    console: Console, spec: DatasetSpec, plan: FilePlan, sized: DumpEstimate | None
) -> None:
    title = (
        f"{spec.name}: {len(plan.slices)} files in {plan.base_path} (dry run, nothing published)"
    )
    table = Table(title=title)
    for column in ("slice", "size", "records", "pages"):
        table.add_column(column, justify="left" if column == "slice" else "right")
    files = {f.slice_id: f for f in sized.files} if sized else {}
    page_size = getattr(spec.source, "page_size", 1)
    for item in plan.slices[:PLAN_ROWS]:
        known = files.get(item.slice_id)
        count = known.records if known else None
        records = "-" if count is None else f"{'' if known and known.exact else '~'}{count:,}"
        pages = "-" if count is None else f"{-(-count // page_size):,}"
        table.add_row(item.slice_id, size_text(item.file_size), records, pages)
    if len(plan.slices) > PLAN_ROWS:
        table.add_row(f"... {len(plan.slices) - PLAN_ROWS} more", "", "", "")
    console.print(table)
    console.print("files chosen:\n  " + "\n  ".join(plan.notes))
    console.print(describe_dump_estimate(sized, page_size))


def describe_dump_estimate(sized: DumpEstimate | None, page_size: int) -> str:
    if sized is None or sized.records is None:
        unknown = [f"{f.file}: {f.error}" for f in sized.files if f.error] if sized else []
        return "estimate: unknown" + (f" ({'; '.join(unknown)})" if unknown else "")
    about = "" if sized.method == "counted every file" else "~"
    text = (
        f"estimate ({sized.method}): {about}{sized.records:,} records, {about}{sized.pages:,} "
        f"pages of {page_size:,}; {size_text(sized.bytes)} on disk, "
        f"{about}{size_text(sized.decompressed_bytes)} decompressed"
    )
    if sized.seconds is not None and sized.records_per_second:
        text += (
            f"\nduration (an estimate): {_seconds(sized.seconds)} to read and parse at the "
            f"{sized.records_per_second:,.0f} records/s measured on the samples (one core); "
            "publishing and the stores' writes come on top"
        )
    return text


def size_text(value: int | None) -> str:
    """Bytes for people: 1.5 KiB, 3.2 GiB."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} TiB"


def describe_estimate(sized: JobEstimate | None, policy: RatePolicy) -> str:
    if sized is None or sized.records is None or sized.requests is None:
        method = sized.method if sized else "not asked"
        return f"estimate ({method}): unknown"
    return (
        f"estimate ({sized.method}): {sized.records:,} records, {sized.pages:,} pages, "
        f"{sized.requests:,} requests\n"
        f"duration under the rate budget: {_seconds(sized.seconds_at_maximum)} at the maximum "
        f"{policy.maximum:,.0f} req/s; {_seconds(sized.seconds_at_initial)} at the initial "
        f"{policy.start:,.0f} req/s"
    )


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 120:
        return f"{value:.1f} s"
    return str(dt.timedelta(seconds=round(value)))


def print_status(console: Console, snapshot: JobSnapshot) -> None:
    job = snapshot.job
    console.print(
        f"job {job.job_id}: [bold]{job.status}[/bold] (dataset {job.dataset}, "
        f"created {job.created_at:%Y-%m-%d %H:%M:%S %Z}, {_seconds(snapshot.seconds)})"
    )
    counts = ", ".join(f"{status} {n}" for status, n in snapshot.slices.items())
    console.print(f"slices: {snapshot.slices_total} ({counts})")
    console.print(_progress_line(snapshot))
    if snapshot.waiting_for:
        console.print(f"[yellow]{snapshot.waiting_for}[/yellow]")
        for hold in snapshot.holds:
            console.print(f"  {hold.describe()}")
    workers = f"workers holding slices: {snapshot.workers}"
    if snapshot.rate is not None:
        workers += (
            f"; shared rate limit {snapshot.rate:,.1f} req/s (lowered {snapshot.throttled} times)"
        )
    console.print(workers)
    for name, detail in snapshot.details.items():
        console.print(
            f"details {name} (of {detail.parent}): {detail.records:,} records in"
            f" {detail.pages:,} pages; detail_missing {detail.missing:,} (404)"
        )
    if snapshot.errors:
        console.print("errors: " + _errors(snapshot.errors))


def _progress_line(snapshot: JobSnapshot) -> str:
    estimate = snapshot.estimated_records
    line = f"records {snapshot.records:,}"
    if snapshot.bytes_total:
        read, total = snapshot.bytes_read, snapshot.bytes_total
        line = f"files read {size_text(read)} of {size_text(total)} ({read / total:.0%}); " + line
    elif estimate:
        line += f" of ~{estimate:,} ({snapshot.records / estimate:.0%})"
    eta = snapshot.eta_seconds
    if snapshot.job.status == "running" and eta is not None:
        line += f", ETA {_seconds(eta)}"
    return line + f"; pages {snapshot.pages:,}; {snapshot.records_per_second:,.0f} records/s"


def _errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count:,}" for kind, count in errors.items())


def print_ledger_report(console: Console, snapshot: JobSnapshot) -> None:
    data = snapshot.as_dict()
    table = Table(title=f"job {data['job_id']}: {data['status']}")
    statuses = ("done", "failed", "cancelled", "running", "pending")
    for column in ("entity", *statuses, "pages", "records"):
        table.add_column(column, justify="left" if column == "entity" else "right")
    for name, entity in data["entities"].items():
        table.add_row(
            name,
            *(str(entity["slices"].get(status, 0)) for status in statuses),
            f"{entity['pages']:,}",
            f"{entity['records']:,}",
        )
    console.print(table)
    console.print(
        f"{data['records']:,} records, {data['pages']:,} pages in "
        f"{_seconds(data['duration_seconds'])} ({data['records_per_second']:,.0f} records/s, "
        f"{data['pages_per_second']:,.1f} pages/s)"
    )
    if data["detail_missing"]:
        console.print(f"detail_missing {data['detail_missing']:,}: details that answered 404")
    if data["errors"]:
        console.print(_kinds_table(data["errors"]))
    if data.get("files"):
        console.print(_files_table(data["files"]))
    if data["failed_slices"]:
        console.print(_failed_table(data["failed_slices"]))


def _kinds_table(errors: dict[str, int]) -> Table:
    table = Table(title="errors by kind")
    table.add_column("kind")
    table.add_column("count", justify="right")
    for kind, count in errors.items():
        table.add_row(kind, f"{count:,}")
    return table


def _files_table(files: list[dict[str, Any]]) -> Table:
    table = Table(title="dump files")
    for column in ("slice", "status", "read", "records", "skipped", "first reasons skipped"):
        right = column in ("read", "records", "skipped")
        table.add_column(column, justify="right" if right else "left", overflow="fold")
    for item in files:
        total = item["bytes_total"] or 1
        read = item["bytes_total"] if item["status"] == "done" else item["bytes_read"]
        table.add_row(
            item["slice_id"],
            item["status"],
            f"{read / total:.0%} of {size_text(item['bytes_total'])}",
            f"{item['records']:,}",
            f"{item['skipped']:,}",
            "\n".join(reason[:100] for reason in item["skip_samples"][:3]),
        )
    return table


def _failed_table(failed: list[dict[str, Any]]) -> Table:
    table = Table(title="failed slices")
    for column in ("slice", "attempts", "kind", "last error"):
        table.add_column(column)
    for item in failed:
        table.add_row(
            item["slice_id"],
            str(item["attempts"]),
            item["error_kind"] or "-",
            (item["last_error"] or "")[:120],
        )
    return table
