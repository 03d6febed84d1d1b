"""The graphinator batch size sweep as a PNG (needs the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.plot import batch_axis, pyplot, save


def plot_graph_sweep(result: dict[str, Any], out: Path) -> Path:
    """nodes+rels/s of the first load, and records/s of both runs, against batch size."""
    rows = sorted(result["sweep"], key=lambda row: int(row["batch_size"]))
    if not rows:
        raise ValueError("the results hold no sweep (run with --sweep)")
    sizes = [row["batch_size"] for row in rows]
    figure, axes = pyplot().subplots(1, 2, figsize=(10, 4))
    _items_panel(axes[0], sizes, rows)
    _records_panel(axes[1], sizes, rows, result["summary"].get("target_records_per_second"))
    for axis in axes:
        batch_axis(axis, sizes, "NEO4J_BATCH_SIZE (records)", "thousands per second")
    machine = result["machine"]
    figure.suptitle(
        f"graphinator, {rows[0]['records']:,} replays in pages of 100 "
        f"({rows[0]['nodes']:,} nodes, {rows[0]['relationships']:,} relationships), "
        f"{machine['cores']} cores, {result['date'][:10]}"
    )
    return save(figure, out)


def _items_panel(axis: Any, sizes: list[int], rows: list[dict[str, Any]]) -> None:
    """The median nodes+rels/s of each batch size, every round's figure as a grey dot."""
    median = [row["first_graph_items_per_second"] / 1000 for row in rows]
    axis.plot(sizes, median, marker="o", label="median")
    for index in range(len(rows[0]["first_rounds_graph_items_per_second"])):
        axis.scatter(
            sizes,
            [row["first_rounds_graph_items_per_second"][index] / 1000 for row in rows],
            color="grey",
            s=12,
            label="each round" if index == 0 else None,
        )
    axis.set_title("first load: nodes + relationships / s")


def _records_panel(
    axis: Any, sizes: list[int], rows: list[dict[str, Any]], floor: float | None
) -> None:
    """records/s of the first load and the unchanged re-run, and the issue's floor."""
    for field, marker, label in (
        ("first_records_per_second", "o", "first load"),
        ("unchanged_records_per_second", "s", "re-run, unchanged"),
    ):
        axis.plot(sizes, [row[field] / 1000 for row in rows], marker=marker, label=label)
    if floor:
        label = f"issue floor, {floor:,.0f} records/s"
        axis.axhline(floor / 1000, color="red", linestyle="--", linewidth=1, label=label)
    axis.set_title("records / s")
