"""Printing a benchmark's results as tables (rich), the same figures ``--json`` writes."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:,.1f}x" if reference else "-"


def results_table(result: dict[str, Any]) -> Table:
    """One row per measured path, with its ratios to the baselines and the ceiling."""
    rates = {m["name"]: m["records_per_second"] for m in result["measurements"]}
    base_a = rates.get("baseline_per_message")
    base_b = rates.get("baseline_executemany")
    ceiling = rates.get("ceiling_copy")
    table = Table(title=f"tableinator benchmark, {result['date']}")
    for column in ("path", "records", "seconds", "records/s", "vs (a)", "vs (b)", "of ceiling"):
        table.add_column(column, justify="left" if column == "path" else "right")
    # The process's RSS high-water mark during the row: memory an earlier row freed is not
    # always returned to the OS, so a row can show more than it used itself.
    table.add_column("peak RSS MiB", justify="right")
    table.add_column("notes")
    for m in result["measurements"]:
        rate = m["records_per_second"]
        details = m["details"]
        notes = []
        if "rows_written" in details:
            notes.append(f"{details['rows_written']:,} rows written")
        if "publish_records_per_second" in details:
            notes.append(f"published at {details['publish_records_per_second']:,.0f}/s")
        if "prefetch" in details:
            notes.append(f"prefetch {details['prefetch']}, batch {details['batch_size']}")
        if details.get("batches_written"):
            notes.append(
                f"{details['batches_written']:,} flushes of {details['mean_batch_records']:,.0f}"
                f" on average, {details['flush_seconds']:.1f} s writing"
            )
        if "process_cpu_share" in details:
            notes.append(f"consumer on CPU {details['process_cpu_share']:.0%} of the time")
        table.add_row(
            m["label"],
            f"{m['records']:,}",
            f"{m['seconds']:.2f}",
            f"{rate:,.0f}",
            _ratio(rate, base_a),
            _ratio(rate, base_b),
            f"{rate / ceiling:.0%}" if ceiling else "-",
            f"{m['peak_rss_mib']:,.0f}" if m["peak_rss_mib"] is not None else "-",
            "; ".join(notes),
        )
    return table


def targets_table(summary: dict[str, Any]) -> Table:
    """Each target of DESIGN.md beside the measured figure."""
    table = Table(title="targets (2 cores)")
    for column in ("figure", "measured", "target", "met"):
        table.add_column(column)

    def verdict(met: bool | None) -> str:
        return "-" if met is None else ("yes" if met else "MISSED")

    table.add_row(
        "first load records/s",
        f"{summary['first_load_records_per_second']:,.0f}",
        f">= {summary['target_records_per_second']:,.0f}",
        verdict(summary["rate_target_met"]),
    )
    if "vs_baseline_a" in summary:
        table.add_row(
            "vs baseline (a)",
            f"{summary['vs_baseline_a']:,.1f}x",
            f">= {summary['target_vs_baseline']:.0f}x",
            verdict(summary["baseline_target_met"]),
        )
    if "vs_baseline_b" in summary:
        table.add_row("vs baseline (b)", f"{summary['vs_baseline_b']:,.1f}x", "(reported)", "-")
    table.add_row(
        "unchanged re-run vs first load",
        f"{summary['rerun_speedup']:.2f}x faster",
        f">= {summary['target_rerun_speedup']:.0f}x",
        verdict(summary["rerun_target_met"]),
    )
    if "consumer_startup_seconds" in summary:
        table.add_row(
            "consumer start-up (in every run)",
            f"{summary['consumer_startup_seconds']:.2f} s",
            "-",
            "-",
        )
    if "share_of_ceiling" in summary:
        table.add_row("share of plain COPY", f"{summary['share_of_ceiling']:.0%}", "-", "-")
    return table


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """records/s of the first load and the unchanged re-run per batch size and prefetch."""
    table = Table(title="sweep: batch size x prefetch (records/s)")
    columns = ("batch size", "prefetch", "first load", "unchanged re-run", "mean flush")
    for column in (*columns, "consumer CPU"):
        table.add_column(column, justify="right")
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
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    console.print(results_table(result))
    console.print(targets_table(result["summary"]))
    if result.get("sweep"):
        console.print(sweep_table(result["sweep"]))
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    machine = result["machine"]
    load = result["load_average"]
    console.print(
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; {versions}; records {result['record_bytes']['mean']:.0f} "
        f"bytes of JSON on average; process peak RSS {result['peak_rss_mib']:,.0f} MiB; "
        f"load average {load['start'][0]} at start, {load['end'][0]} at end"
    )
    if result.get("git"):
        dirty = " with uncommitted changes" if result["git"]["dirty"] else ""
        console.print(f"measured at commit {result['git']['commit']}{dirty}")
