"""``python -m bench plot``: the batch size x prefetch sweep as a PNG (needs the bench extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_sweep(result: dict[str, Any], out: Path) -> Path:
    """records/s against batch size, one line per prefetch, first load and unchanged re-run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["sweep"]
    if not rows:
        raise ValueError("the results hold no sweep (run with --sweep)")
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    panels = (
        ("first_records_per_second", "first load, empty tables"),
        ("unchanged_records_per_second", "re-run, unchanged records"),
    )
    for axis, (field, title) in zip(axes, panels, strict=True):
        for prefetch in sorted({row["prefetch"] for row in rows}):
            line = sorted((r for r in rows if r["prefetch"] == prefetch), key=_batch)
            axis.plot(
                [r["batch_size"] for r in line],
                [r[field] / 1000 for r in line],
                marker="o",
                label=f"prefetch {prefetch}",
            )
        axis.set_xscale("log")
        axis.set_xticks(sorted({row["batch_size"] for row in rows}))
        axis.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.get_xaxis().set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_xlabel("POSTGRES_BATCH_SIZE (records)")
        axis.set_ylabel("thousand records/s")
        axis.set_ylim(bottom=0)
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
        axis.legend()
    records = rows[0]["records"]
    machine = result["machine"]
    figure.suptitle(
        f"tableinator, {records:,} records in pages of 100, "
        f"{machine['cores']} cores, {result['date'][:10]}"
    )
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)
    return out


def _batch(row: dict[str, Any]) -> int:
    return int(row["batch_size"])
