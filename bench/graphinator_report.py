"""Printing the graphinator benchmark's results as tables (rich), the figures ``--json`` writes."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table


def _ratio(value: float, reference: float | None) -> str:
    return f"{value / reference:,.1f}x" if reference else "-"


def results_table(result: dict[str, Any]) -> Table:
    """One row per measured path, with its ratios to the baseline the targets use."""
    summary = result["summary"]
    by_name = {m["name"]: m for m in result["measurements"]}
    base = by_name.get(summary.get("baseline", ""))
    base_items = base["graph_items_per_second"] if base else None
    base_records = base["records_per_second"] if base else None
    table = Table(title=f"graphinator benchmark, {result['date']}")
    columns = ("path", "records", "nodes", "rels", "seconds", "records/s", "nodes+rels/s")
    for column in (*columns, "vs baseline", "vs baseline (records/s)", "peak RSS MiB"):
        table.add_column(column, justify="left" if column == "path" else "right")
    table.add_column("notes")
    for m in result["measurements"]:
        details = m["details"]
        items = m["graph_items_per_second"]
        table.add_row(
            m["label"],
            f"{m['records']:,}",
            f"{details['nodes']:,}",
            f"{details['relationships']:,}",
            f"{m['seconds']:.2f}",
            f"{m['records_per_second']:,.0f}",
            f"{items:,.0f}",
            _ratio(items, base_items) if items else "-",
            _ratio(m["records_per_second"], base_records),
            f"{m['peak_rss_mib']:,.0f}" if m["peak_rss_mib"] is not None else "-",
            "; ".join(_notes(details)),
        )
    return table


def _notes(details: dict[str, Any]) -> list[str]:
    notes = []
    if details.get("records_skipped"):
        notes.append(f"{details['records_skipped']:,} skipped by hash")
    if details.get("relationships_deleted"):
        notes.append(f"{details['relationships_deleted']:,} rels replaced")
    if "statements_per_record" in details:
        notes.append(f"{details['statements_per_record']} statements per tx, prefetch 1")
    if details.get("batches_written"):
        notes.append(
            f"{details['batches_written']:,} batches of {details['mean_batch_records']:,.0f},"
            f" {details['flush_seconds']:.1f} s writing"
        )
    if "process_cpu_share" in details:
        notes.append(f"consumer CPU {details['process_cpu_share']:.0%}")
    if details.get("neo4j_cpu_share") is not None:
        notes.append(f"Neo4j CPU {details['neo4j_cpu_share']:.0%}")
    if "load_average_1m" in details:
        notes.append(f"load {details['load_average_1m']:.2f}")
    foreign = details.get("foreign_neo4j_work", {}).get("share", 0)
    if foreign:
        notes.append(f"other Neo4j clients busy in {foreign:.0%} of samples")
    return notes


def targets_table(summary: dict[str, Any]) -> Table:
    """Each target of the issue and DESIGN.md beside the measured figure."""
    table = Table(title="targets (2 cores)")
    for column in ("figure", "measured", "issue floor", "met", "DESIGN.md", "met"):
        table.add_column(column)

    def verdict(met: bool | None) -> str:
        return "-" if met is None else ("yes" if met else "MISSED")

    table.add_row(
        "first load records/s (each with its relationships)",
        f"{summary['first_load_records_per_second']:,.0f}",
        f">= {summary['target_records_per_second']:,.0f}",
        verdict(summary["rate_target_met"]),
        f">= {summary['design_records_per_second']:,.0f}",
        verdict(summary["design_rate_met"]),
    )
    if "vs_baseline" in summary:
        table.add_row(
            f"nodes+rels/s vs {summary['baseline'].removeprefix('baseline_')} baseline",
            f"{summary['vs_baseline']:,.1f}x",
            f">= {summary['target_vs_baseline']:.0f}x",
            verdict(summary["baseline_target_met"]),
            f">= {summary['design_vs_baseline']:.0f}x",
            verdict(summary["design_baseline_met"]),
        )
    if "graph_rate_target_met" in summary:
        table.add_row(
            "first load nodes+rels/s (the other reading)",
            f"{summary['first_load_graph_items_per_second']:,.0f}",
            f">= {summary['target_records_per_second']:,.0f}",
            verdict(summary["graph_rate_target_met"]),
            f">= {summary['design_records_per_second']:,.0f}",
            verdict(summary["design_graph_rate_met"]),
        )
    table.add_row(
        "unchanged re-run vs first load",
        f"{summary['rerun_speedup']:.2f}x ({summary['rerun_records_per_second']:,.0f} rec/s)",
        "(reported)",
        "-",
        "-",
        "-",
    )
    table.add_row(
        "vs discogsography (960 rec/s, DESIGN.md)",
        f"{summary['vs_discogsography_anchor']:,.1f}x",
        "(anchor)",
        "-",
        "-",
        "-",
    )
    if "consumer_startup_seconds" in summary:
        startup = f"{summary['consumer_startup_seconds']:.2f} s"
        table.add_row("consumer start-up (in every run)", startup, "-", "-", "-", "-")
    return table


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """nodes+rels/s and records/s of the first load, and the re-run, per batch size."""
    table = Table(title="sweep: NEO4J_BATCH_SIZE")
    columns = ("batch size", "nodes+rels/s", "records/s", "unchanged re-run rec/s", "mean batch")
    for column in (*columns, "consumer CPU", "Neo4j CPU"):
        table.add_column(column, justify="right")
    for row in rows:
        neo4j_cpu = row["first_neo4j_cpu_share"]
        table.add_row(
            f"{row['batch_size']:,}",
            f"{row['first_graph_items_per_second']:,.0f}",
            f"{row['first_records_per_second']:,.0f}",
            f"{row['unchanged_records_per_second']:,.0f}",
            f"{row['first_mean_batch_records']:,.0f}",
            f"{row['first_process_cpu_share']:.0%}",
            f"{neo4j_cpu:.0%}" if neo4j_cpu is not None else "-",
        )
    return table


def print_results(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    console.print(results_table(result))
    console.print(targets_table(result["summary"]))
    if result.get("sweep"):
        console.print(sweep_table(result["sweep"]))
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    machine = result["machine"]
    load = result["load_average"]
    expected = result["expected_graph"]
    console.print(
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; {versions}; graph of the first load: "
        f"{expected['nodes']} nodes, {expected['relationships']} relationships; "
        f"process peak RSS {result['peak_rss_mib']:,.0f} MiB; "
        f"load average {load['start'][0]} at start, {load['end'][0]} at end"
    )
    if result.get("git"):
        dirty = " with uncommitted changes" if result["git"]["dirty"] else ""
        console.print(f"measured at commit {result['git']['commit']}{dirty}")
