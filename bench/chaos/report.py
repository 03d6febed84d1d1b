"""The suite's table: one row per scenario, and the totals."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

COLUMNS = (
    ("scenario", "scenario", "left"),
    ("faults", "faults", "right"),
    ("lost", "lost", "right"),
    ("duplicated", "duplicated", "right"),
    ("differing", "differing rows", "right"),
    ("dead_letters", "dead letters", "right"),
    ("recovery_median_s", "recovery median s", "right"),
    ("recovery_max_s", "recovery max s", "right"),
    ("finished_without_person", "finished alone", "center"),
)


def cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def print_results(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ref = result["reference"]
    title = (
        f"chaos: {result['records']:,} records, reference run "
        f"{ref['rows_nodes_relationships']} rows/nodes/relationships in {ref['seconds']} s"
    )
    table = Table(title=title)
    for _, header, justify in COLUMNS:
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for row in result["scenarios"]:
        table.add_row(*(cell(row[key]) for key, _, _ in COLUMNS))
    total = result["totals"]
    table.add_row(
        "total",
        *(cell(total.get(key, "")) for key, _, _ in COLUMNS[1:6]),
        "",
        "",
        cell(total["all_finished_without_person"]),
    )
    console.print(table)
    for row in result["scenarios"]:
        if row["figures"]:
            console.print(f"{row['scenario']}: {row['figures']}")


def markdown(result: dict[str, Any]) -> str:
    """The same table in Markdown, for docs/reliability.md."""
    lines = [
        "| " + " | ".join(header for _, header, _ in COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in result["scenarios"]:
        lines.append("| " + " | ".join(cell(row[key]) for key, _, _ in COLUMNS) + " |")
    return "\n".join(lines)
