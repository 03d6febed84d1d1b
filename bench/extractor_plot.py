"""The extractor benchmark's plots (need the bench extra): requests/s against the allowed
rate over each job, and the extractor's RSS over the 1x and 10x jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.harness.plot import pyplot, save

MODES = (
    ("project_configured", "maximum = R"),
    ("project_discovering", "from R/2, maximum 2R: finds R itself"),
)
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red")


def plot_rates(result: dict[str, Any], out: Path) -> Path:
    """A panel per rate limit (columns) and per spec limit (rows): answers 200 per second of
    the baseline and of the extractor at each concurrency, R, and the shared limiter's rate."""
    windows = result["measurements"]
    rates = sorted({w["rate_limit"] for w in windows})
    if not rates:
        raise ValueError("the results hold no rate-limited runs")
    figure, axes = pyplot().subplots(
        len(MODES), len(rates), figsize=(6.5 * len(rates), 8), squeeze=False
    )
    concurrencies = sorted({_concurrency(w) for w in windows if w["name"] != "baseline"})
    for column, rate in enumerate(rates):
        at_rate = [w for w in windows if w["rate_limit"] == rate]
        for row, mode in enumerate(MODES):
            _panel(axes[row][column], rate, mode, at_rate, concurrencies)
    latency = result["options"]["latency_ms"]
    figure.suptitle(
        f"extractor vs sequential fetch + sleep(0.5): demo API at {latency:g} ms per page, "
        f"{result['machine']['cores']} cores, {result['date'][:10]}"
    )
    return save(figure, out)


def _panel(
    axis: Any,
    rate: float,
    mode: tuple[str, str],
    windows: list[dict[str, Any]],
    concurrencies: list[int],
) -> None:
    """One rate limit and one spec limit: the baseline, each concurrency, R."""
    name, title = mode
    for w in windows:
        if w["name"] == "baseline":
            _line(axis, w, "baseline, sleep(0.5)", "tab:gray")
        elif w["name"].partition("@")[0] == name:
            concurrency = _concurrency(w)
            color = COLORS[concurrencies.index(concurrency) % len(COLORS)]
            _line(axis, w, f"extractor, concurrency {concurrency}", color)
            limiter = w["details"].get("limiter") or []
            if name == "project_discovering" and limiter:
                axis.plot(
                    [t for t, _ in limiter],
                    [r for _, r in limiter],
                    linestyle=":",
                    linewidth=1,
                    color=color,
                    label="  its shared limiter's rate",
                )
    axis.axhline(rate, color="black", linewidth=0.8, linestyle="--", label=f"R = {rate:g}/s")
    axis.set_title(f"API limited to {rate:g}/s; spec {title}", fontsize=10)
    axis.set_xlabel("seconds since the job started (x: a 429)")
    axis.set_ylabel("requests answered 200 per second")
    axis.set_ylim(bottom=-0.05 * rate * 2.2, top=rate * 2.2)
    axis.grid(True, alpha=0.3)
    axis.legend(fontsize=7, loc="upper right")


def _concurrency(window: dict[str, Any]) -> int:
    return int(window["details"].get("concurrency", 0))


def _line(axis: Any, w: dict[str, Any], name: str, color: str) -> None:
    """Answers 200 per second of one run, its 429s as crosses on the x axis."""
    ok = w["ok_per_second"]
    axis.plot(
        [s + 0.5 for s in range(len(ok))],
        ok,
        drawstyle="steps-mid",
        color=color,
        label=f"{name}: {w['share_of_allowed']:.1%} of allowed",
    )
    throttled = [s + 0.5 for s, n in enumerate(w["throttled_per_second"]) if n]
    if throttled:
        axis.scatter(throttled, [0] * len(throttled), marker="x", color=color, zorder=5)


def plot_rss(result: dict[str, Any], out: Path) -> Path:
    """RSS of the extractor process over the 1x and the 10x job."""
    runs = result["memory"]
    if not runs:
        raise ValueError("the results hold no memory runs")
    figure, axis = pyplot().subplots(figsize=(7, 4))
    for run in runs:
        series = run["rss_series"]
        axis.plot(
            [t for t, _ in series],
            [m for _, m in series],
            label=f"{run['label']}: {run['slices']} slices, {run['pages']:,} pages, "
            f"peak {run['peak_rss_mib']:.1f} MiB",
        )
    axis.set_xlabel("seconds since the process started")
    axis.set_ylabel("RSS (MiB)")
    axis.set_ylim(bottom=0)
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right")
    axis.set_title("RSS of `python -m extractor run --no-wait`, no rate limit")
    return save(figure, out)
