"""``python -m bench plot``: the batch size x prefetch sweep as a PNG (needs the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.plot import batch_axis, pyplot, save

PANELS = (
    ("first_records_per_second", "first load, empty tables"),
    ("unchanged_records_per_second", "re-run, unchanged records"),
)


def plot_sweep(result: dict[str, Any], out: Path) -> Path:
    """records/s against batch size, one line per prefetch, first load and unchanged re-run."""
    rows = result["sweep"]
    if not rows:
        raise ValueError("the results hold no sweep (run with --sweep)")
    figure, axes = pyplot().subplots(1, 2, figsize=(10, 4), sharey=False)
    for axis, (field, title) in zip(axes, PANELS, strict=True):
        for prefetch in sorted({row["prefetch"] for row in rows}):
            line = sorted((r for r in rows if r["prefetch"] == prefetch), key=_batch)
            axis.plot(
                [r["batch_size"] for r in line],
                [r[field] / 1000 for r in line],
                marker="o",
                label=f"prefetch {prefetch}",
            )
        axis.set_title(title)
        sizes = {row["batch_size"] for row in rows}
        batch_axis(axis, sizes, "POSTGRES_BATCH_SIZE (records)", "thousand records/s")
    machine = result["machine"]
    figure.suptitle(
        f"tableinator, {rows[0]['records']:,} records in pages of 100, "
        f"{machine['cores']} cores, {result['date'][:10]}"
    )
    return save(figure, out)


def _batch(row: dict[str, Any]) -> int:
    return int(row["batch_size"])
