"""The report's PNG: records confirmed per second over the job, with its phases marked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from extractor.reporting.report_data import FullReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def per_second(timeline: list[tuple[float, int]]) -> tuple[list[int], list[int]]:
    """Seconds since the job was created and records in each, gaps filled with zeros."""
    if not timeline:
        return [], []
    counts: dict[int, int] = {}
    for at, records in timeline:
        second = max(int(at), 0)
        counts[second] = counts.get(second, 0) + records
    seconds = list(range(min(counts), max(counts) + 1))
    return seconds, [counts.get(second, 0) for second in seconds]


def write_chart(report: FullReport, path: Path) -> bool:
    """Plot throughput over time to ``path``; False (nothing written) without a timeline."""
    seconds, records = per_second(report.timeline)
    if not seconds:
        return False
    from matplotlib.figure import Figure  # 0.6 s to import: only when a chart is drawn

    figure = Figure(figsize=(9, 4), dpi=100)  # no pyplot: no global state, any thread
    axes = figure.add_subplot()
    axes.bar(seconds, records, width=1.0, align="edge", color="#4c72b0", label="records/s")
    axes.set_xlabel("seconds since the job was created")
    axes.set_ylabel("records confirmed per second")
    total = axes.twinx()
    running = [0]
    for count in records:
        running.append(running[-1] + count)
    ends = [seconds[0]] + [second + 1 for second in seconds]  # each bucket's total at its end
    total.plot(ends, running, color="#dd8452", label="records in all")
    total.set_ylabel("records in all")
    total.set_ylim(bottom=0)
    _mark_phases(report, axes)
    axes.legend(loc="upper left", fontsize="small")
    job = report.snapshot.job
    axes.set_title(f"{job.job_id}: {report.snapshot.records:,} records, {job.status}")
    figure.tight_layout()
    figure.savefig(path, format="png")
    return True


def _mark_phases(report: FullReport, axes: Axes) -> None:
    """Dashed lines where fetching ended and where each store finished."""
    fetch = report.phases.get("fetch_and_publish")
    if fetch is not None:
        axes.axvline(fetch, color="black", linestyle="--", linewidth=1, label="last slice ended")
    created = report.snapshot.job.created_at
    for store in report.stores:
        at = (store.finalised_at - created).total_seconds()
        axes.axvline(at, color="#55a868", linestyle=":", linewidth=1)
        axes.annotate(
            f"{store.service} done",
            (at, 0),
            xytext=(2, 12),
            textcoords="offset points",
            rotation=90,
            fontsize="x-small",
        )
