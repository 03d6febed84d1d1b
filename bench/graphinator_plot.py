"""The graphinator batch size sweep as a PNG (needs the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_graph_sweep(result: dict[str, Any], out: Path) -> Path:
    """nodes+rels/s of the first load, and records/s of both runs, against batch size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["sweep"], key=lambda row: int(row["batch_size"]))
    if not rows:
        raise ValueError("the results hold no sweep (run with --sweep)")
    sizes = [row["batch_size"] for row in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    items, records = axes
    items.plot(
        sizes,
        [row["first_graph_items_per_second"] / 1000 for row in rows],
        marker="o",
        label="median",
    )
    for index in range(len(rows[0]["first_rounds_graph_items_per_second"])):
        items.scatter(
            sizes,
            [row["first_rounds_graph_items_per_second"][index] / 1000 for row in rows],
            color="grey",
            s=12,
            label="each round" if index == 0 else None,
        )
    items.set_title("first load: nodes + relationships / s")
    records.plot(
        sizes,
        [row["first_records_per_second"] / 1000 for row in rows],
        marker="o",
        label="first load",
    )
    records.plot(
        sizes,
        [row["unchanged_records_per_second"] / 1000 for row in rows],
        marker="s",
        label="re-run, unchanged",
    )
    floor = result["summary"].get("target_records_per_second")
    if floor:
        label = f"issue floor, {floor:,.0f} records/s"
        records.axhline(floor / 1000, color="red", linestyle="--", linewidth=1, label=label)
    records.set_title("records / s")
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xticks(sizes)
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("NEO4J_BATCH_SIZE (records)")
        axis.set_ylabel("thousands per second")
        axis.set_ylim(bottom=0)
        axis.grid(True, alpha=0.3)
        axis.legend()
    machine = result["machine"]
    figure.suptitle(
        f"graphinator, {rows[0]['records']:,} replays in pages of 100 "
        f"({rows[0]['nodes']:,} nodes, {rows[0]['relationships']:,} relationships), "
        f"{machine['cores']} cores, {result['date'][:10]}"
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out
