"""Printing the extractor benchmark's results (rich), the same figures ``--json`` writes."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

LABELS = {
    "baseline": "baseline: sequential, sleep(0.5)",
    "project_configured": "extractor, maximum = R",
    "project_discovering": "extractor, R/2 .. 2R (discovers R)",
}


def label(name: str, window: dict[str, Any]) -> str:
    base, _, variant = name.partition("@")
    text = LABELS.get(base, name)
    concurrency = window["details"].get("concurrency")
    if variant:
        text += f", concurrency {variant}"
    elif concurrency is not None:
        text += f" (concurrency {concurrency})"
    return text


def rates_table(result: dict[str, Any]) -> Table:
    """One row per measured path and rate limit."""
    table = Table(title=f"extractor against a rate-limited API, {result['date']}")
    columns = (
        "path",
        "R/s",
        "pages",
        "records",
        "seconds",
        "pages/s",
        "records/s",
        "of allowed",
        "steady",
        "vs baseline",
        "429s",
        "peak RSS MiB",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "path" else "right")
    baselines = {
        w["rate_limit"]: w["pages_per_second"]
        for w in result["measurements"]
        if w["name"] == "baseline"
    }
    for w in result["measurements"]:
        base = baselines.get(w["rate_limit"])
        rss = w["peak_rss_mib"]
        table.add_row(
            label(w["name"], w),
            f"{w['rate_limit']:g}",
            f"{w['pages']:,}",
            f"{w['records']:,}",
            f"{w['seconds']:.1f}",
            f"{w['pages_per_second']:,.1f}",
            f"{w['records_per_second']:,.0f}",
            f"{w['share_of_allowed']:.1%}",
            f"{w['steady_share_of_rate']:.1%}",
            f"{w['pages_per_second'] / base:,.1f}x" if base else "-",
            f"{w['requests_throttled']:,}",
            "-" if rss is None else f"{rss:,.0f}",
        )
    return table


def memory_table(memory: list[dict[str, Any]]) -> Table:
    table = Table(title="peak RSS of `python -m extractor run --no-wait` (no rate limit)")
    columns = ("job", "slices", "pages", "records", "seconds", "pages/s", "CPU s", "peak RSS MiB")
    for column in columns:
        table.add_column(column, justify="left" if column == "job" else "right")
    for run in memory:
        table.add_row(
            run["label"],
            f"{run['slices']:,}",
            f"{run['pages']:,}",
            f"{run['records']:,}",
            f"{run['seconds']:.1f}",
            f"{run['pages_per_second']:,.0f}",
            f"{run['cpu_seconds']:.1f}",
            f"{run['peak_rss_mib']:,.1f}",
        )
    return table


def targets_table(summary: dict[str, Any]) -> Table:
    table = Table(title="targets")
    for column in ("figure", "measured", "target", "met"):
        table.add_column(column)

    def verdict(met: bool) -> str:
        return "yes" if met else "MISSED"

    target = summary["target_share_of_allowed"]
    for rate, runs in summary["rates"].items():
        for name, entry in runs.items():
            measured = f"{entry['share_of_allowed']:.1%}"
            if "vs_baseline" in entry:
                measured += f" ({entry['vs_baseline']:,.1f}x baseline)"
            base, _, variant = name.partition("@")
            table.add_row(
                f"R={rate}: {LABELS.get(base, name)}"
                + (f", concurrency {variant}" if variant else ""),
                measured,
                f">= {target:.0%} of allowed",
                verdict(entry["met"]),
            )
    for job, growth in summary.get("rss_growth", {}).items():
        table.add_row(
            f"peak RSS, {job} vs 1x",
            f"{growth:.2f}x",
            f"<= {summary['target_rss_growth']:.1f}x",
            verdict(growth <= summary["target_rss_growth"]),
        )
    return table


def print_results(result: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=None if sys.stdout.isatty() else 180)
    if result["measurements"]:
        console.print(rates_table(result))
    if result["memory"]:
        console.print(memory_table(result["memory"]))
    console.print(targets_table(result["summary"]))
    machine, load = result["machine"], result["load_average"]
    versions = ", ".join(f"{k} {v}" for k, v in result["versions"].items())
    console.print(
        f"{machine['cores']} cores ({machine['cpu']}), {machine['memory_gib']} GiB, "
        f"Python {machine['python']}; {versions}; demo API {result['options']['latency_ms']:g} ms "
        f"per page; load average {load['start'][0]} at start, {load['end'][0]} at end"
    )
    if result.get("git"):
        dirty = " with uncommitted changes" if result["git"]["dirty"] else ""
        console.print(f"measured at commit {result['git']['commit']}{dirty}")
