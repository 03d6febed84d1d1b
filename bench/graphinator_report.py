"""Printing the graphinator benchmark's results as tables (rich), the figures ``--json`` writes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness import report as shared

COLUMNS = ("path", "records", "nodes", "rels", "seconds", "records/s", "nodes+rels/s")
TARGET_COLUMNS = ("figure", "measured", "issue floor", "met", "DESIGN.md", "met")


def results_table(result: dict[str, Any]) -> Table:
    """One row per measured path, with its ratios to the baseline the targets use."""
    summary = result["summary"]
    by_name = {m["name"]: m for m in result["measurements"]}
    base = by_name.get(summary.get("baseline", ""))
    base_items = base["graph_items_per_second"] if base else None
    base_records = base["records_per_second"] if base else None

    def figures(m: dict[str, Any]) -> tuple[str, ...]:
        details, items = m["details"], m["graph_items_per_second"]
        graph = (f"{details['nodes']:,}", f"{details['relationships']:,}", f"{m['seconds']:.2f}")
        rates = (f"{m['records_per_second']:,.0f}", f"{items:,.0f}")
        vs_items = shared.ratio(items, base_items) if items else "-"
        return (*graph, *rates, vs_items, shared.ratio(m["records_per_second"], base_records))

    columns = (*COLUMNS, "vs baseline", "vs baseline (records/s)")
    title = f"graphinator benchmark, {result['date']}"
    return shared.measurements_table(title, columns, result, figures, _notes)


NOTES: list[shared.Note] = [
    ("records_skipped", "nonzero", "{records_skipped:,} skipped by hash"),
    ("relationships_deleted", "nonzero", "{relationships_deleted:,} rels replaced"),
    ("statements_per_record", "present", "{statements_per_record} statements per tx, prefetch 1"),
    (
        "batches_written",
        "nonzero",
        "{batches_written:,} batches of {mean_batch_records:,.0f}, {flush_seconds:.1f} s writing",
    ),
    ("process_cpu_share", "present", "consumer CPU {process_cpu_share:.0%}"),
    ("neo4j_cpu_share", "set", "Neo4j CPU {neo4j_cpu_share:.0%}"),
    ("load_average_1m", "present", "load {load_average_1m:.2f}"),
]


def _notes(details: dict[str, Any]) -> list[str]:
    shown = shared.notes(details, NOTES)
    foreign = details.get("foreign_neo4j_work", {}).get("share", 0)
    if foreign:
        shown.append(f"other Neo4j clients busy in {foreign:.0%} of samples")
    return shown


def targets_table(summary: dict[str, Any]) -> Table:
    """Each target of the issue and DESIGN.md beside the measured figure."""
    table = shared.plain_table("targets (2 cores)", TARGET_COLUMNS)
    for row in _target_rows(summary):
        table.add_row(*row)
    return table


# The judged rows: the figure, the summary's measured key and its form, the keys of the
# issue's floor, its verdict, DESIGN.md's target and its verdict, and the targets' form. A
# row is shown when its verdict is in the summary.
JUDGED = (
    (
        "first load records/s (each with its relationships)",
        "first_load_records_per_second {:,.0f}",
        "target_records_per_second rate_target_met design_records_per_second design_rate_met",
        "{:,.0f}",
    ),
    (
        "nodes+rels/s vs {baseline} baseline",
        "vs_baseline {:,.1f}x",
        "target_vs_baseline baseline_target_met design_vs_baseline design_baseline_met",
        "{:.0f}x",
    ),
    (
        "first load nodes+rels/s (the other reading)",
        "first_load_graph_items_per_second {:,.0f}",
        "target_records_per_second graph_rate_target_met design_records_per_second"
        " design_graph_rate_met",
        "{:,.0f}",
    ),
)


def _target_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    baseline = str(summary.get("baseline", "")).removeprefix("baseline_")
    rows = []
    for figure, measured, keys, form in JUDGED:
        floor, floor_met, design, design_met = keys.split()
        if floor_met not in summary:
            continue
        key, measured_form = measured.split(" ", 1)
        rows.append(
            (
                figure.format(baseline=baseline),
                shared.figure(summary, key, measured_form),
                ">= " + form.format(summary[floor]),
                shared.verdict(summary[floor_met]),
                ">= " + form.format(summary[design]),
                shared.verdict(summary[design_met]),
            )
        )
    return rows + _reported_rows(summary)


def _reported_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """Figures shown beside the targets, judged by none."""
    rerun = f"{summary['rerun_speedup']:.2f}x ({summary['rerun_records_per_second']:,.0f} rec/s)"
    rows = [
        ("unchanged re-run vs first load", rerun, "(reported)"),
        (
            "vs discogsography (960 rec/s, DESIGN.md)",
            f"{summary['vs_discogsography_anchor']:,.1f}x",
            "(anchor)",
        ),
    ]
    if "consumer_startup_seconds" in summary:
        startup = f"{summary['consumer_startup_seconds']:.2f} s"
        rows.append(("consumer start-up (in every run)", startup, "-"))
    return [(*row, "-", "-", "-") for row in rows]


def sweep_table(rows: list[dict[str, Any]]) -> Table:
    """nodes+rels/s and records/s of the first load, and the re-run, per batch size."""
    columns = ("batch size", "nodes+rels/s", "records/s", "unchanged re-run rec/s", "mean batch")
    table = shared.new_table("sweep: NEO4J_BATCH_SIZE", (*columns, "consumer CPU", "Neo4j CPU"))
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
    expected = result["expected_graph"]
    sweep = (lambda r: sweep_table(r["sweep"])) if result.get("sweep") else None
    tables = (results_table, lambda r: targets_table(r["summary"]), sweep)
    middle = (
        f"graph of the first load: {expected['nodes']} nodes, "
        f"{expected['relationships']} relationships; "
        f"process peak RSS {result['peak_rss_mib']:,.0f} MiB; "
    )
    shared.print_tables(console or shared.console(200), result, tables, middle)
