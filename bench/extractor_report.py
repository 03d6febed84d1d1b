"""Printing the extractor benchmark's results (rich), the same figures ``--json`` writes."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.harness.report import console as piped_console
from bench.harness.report import new_table, plain_table, print_tables, verdict

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
    table = new_table(f"extractor against a rate-limited API, {result['date']}", columns, ["path"])
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
    columns = ("job", "slices", "pages", "records", "seconds", "pages/s", "CPU s", "peak RSS MiB")
    title = "peak RSS of `python -m extractor run --no-wait` (no rate limit)"
    table = new_table(title, columns, ["job"])
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
    table = plain_table("targets", ("figure", "measured", "target", "met"))
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
    tables = (
        rates_table if result["measurements"] else None,
        (lambda r: memory_table(r["memory"])) if result["memory"] else None,
        lambda r: targets_table(r["summary"]),
    )
    latency = result["options"]["latency_ms"]
    print_tables(
        console or piped_console(180), result, tables, f"demo API {latency:g} ms per page; "
    )
