"""Printing a benchmark's results as tables (rich), the same figures ``--json`` writes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import report as shared

# Notes shown when their detail is there (the flushes: when there were any).
PRESENT_NOTES = {
    "rows_written": "{rows_written:,} rows written",
    "publish_records_per_second": "published at {publish_records_per_second:,.0f}/s",
    "prefetch": "prefetch {prefetch}, batch {batch_size}",
    "batches_written": "{batches_written:,} flushes of {mean_batch_records:,.0f} on average,"
    " {flush_seconds:.1f} s writing",
    "process_cpu_share": "consumer on CPU {process_cpu_share:.0%} of the time",
}
NOTES: list[shared.Note] = [
    (key, "nonzero" if key == "batches_written" else "present", text)
    for key, text in PRESENT_NOTES.items()
]
COLUMNS = ("path", "records", "seconds", "records/s", "vs (a)", "vs (b)", "of ceiling")


def results_table(result: dict[str, Any]) -> Table:
    """One row per measured path, with its ratios to the baselines and the ceiling."""
    rates = {m["name"]: m["records_per_second"] for m in result["measurements"]}
    base_a = rates.get("baseline_per_message")
    base_b = rates.get("baseline_executemany")
    ceiling = rates.get("ceiling_copy")

    def figures(m: dict[str, Any]) -> tuple[str, ...]:
        rate = m["records_per_second"]
        of_ceiling = f"{rate / ceiling:.0%}" if ceiling else "-"
        vs = (shared.ratio(rate, base_a), shared.ratio(rate, base_b), of_ceiling)
        return (f"{m['seconds']:.2f}", f"{rate:,.0f}", *vs)

    # The peak RSS column is the process's high-water mark during the row: memory an earlier
    # row freed is not always returned to the OS, so a row can show more than it used itself.
    title = f"tableinator benchmark, {result['date']}"
    return shared.measurements_table(
        title, COLUMNS, result, figures, lambda details: shared.notes(details, NOTES)
    )


def targets_table(summary: dict[str, Any]) -> Table:
    """Each target of DESIGN.md beside the measured figure."""
    table = shared.plain_table("targets (2 cores)", ("figure", "measured", "target", "met"))
    for row in _target_rows(summary):
        table.add_row(*row)
    return table


def _target_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = [
        (
            "first load records/s",
            shared.figure(summary, "first_load_records_per_second", "{:,.0f}"),
            f">= {summary['target_records_per_second']:,.0f}",
            shared.verdict(summary["rate_target_met"]),
        )
    ]
    if "vs_baseline_a" in summary:
        target = f">= {summary['target_vs_baseline']:.0f}x"
        met = shared.verdict(summary["baseline_target_met"])
        measured = shared.figure(summary, "vs_baseline_a", "{:,.1f}x")
        rows.append(("vs baseline (a)", measured, target, met))
    if "vs_baseline_b" in summary:
        rows.append(("vs baseline (b)", f"{summary['vs_baseline_b']:,.1f}x", "(reported)", "-"))
    target = f">= {summary['target_rerun_speedup']:.0f}x"
    met = shared.verdict(summary["rerun_target_met"])
    rerun = shared.figure(summary, "rerun_speedup", "{:.2f}x faster")
    rows.append(("unchanged re-run vs first load", rerun, target, met))
    if "consumer_startup_seconds" in summary:
        startup = f"{summary['consumer_startup_seconds']:.2f} s"
        rows.append(("consumer start-up (in every run)", startup, "-", "-"))
    if "share_of_ceiling" in summary:
        rows.append(("share of plain COPY", f"{summary['share_of_ceiling']:.0%}", "-", "-"))
    return rows


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """records/s of the first load and the unchanged re-run per batch size and prefetch."""
    columns = ("batch size", "prefetch", "first load", "unchanged re-run", "mean flush")
    table = shared.new_table("sweep: batch size x prefetch (records/s)", (*columns, "consumer CPU"))
    for row in rows:
        table.add_row(
            f"{row['batch_size']:,}",
            f"{row['prefetch']:,}",
            f"{row['first_records_per_second']:,.0f}",
            f"{row['unchanged_records_per_second']:,.0f}",
            f"{row['first_mean_batch_records']:,.0f}",
            f"{row['first_process_cpu_share']:.0%}",
        )
    return table


def print_results(result: dict[str, Any], console: Console | None = None) -> None:
    sweep = (lambda r: sweep_table(r["sweep"])) if result.get("sweep") else None
    tables = (results_table, lambda r: targets_table(r["summary"]), sweep)
    middle = (
        f"records {result['record_bytes']['mean']:.0f} bytes of JSON on average; "
        f"process peak RSS {result['peak_rss_mib']:,.0f} MiB; "
    )
    shared.print_tables(console or shared.console(160), result, tables, middle)
