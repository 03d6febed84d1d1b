"""Talking to the real Prometheus of scripts/services.sh, and the metric names of a PromQL query."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_URL = os.environ.get("PROMETHEUS_URL", "http://127.0.0.1:9090")
TARGETS_DIR = Path(
    os.environ.get("PROMETHEUS_TARGETS_DIR", REPO / ".local" / "prometheus" / "targets")
)
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "backfill.json"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end"}
_GROUPING = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = re.sub(_GROUPING, " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word, before = match.group(), text[: match.start()]
        if before and (before[-1].isdigit() or before[-1] == "."):
            continue  # a number's exponent or a duration's unit: 1e3, 10m
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if word.lower() not in _KEYWORDS:
            names.add(word)
    return names


def dashboard_panels() -> list[tuple[str, list[str]]]:
    """(title, expressions) of every panel of the committed dashboard."""
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [
        (panel["title"], [target["expr"] for target in panel["targets"]])
        for panel in board["panels"]
        if panel.get("targets")
    ]


def alert_rules() -> list[tuple[str, str]]:
    """(alert name, expression) of every rule in alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [(rule["alert"], rule["expr"]) for group in groups for rule in group["rules"]]


def with_variables(expr: str, dataset: str, rate_interval: str = "30s") -> str:
    """A dashboard query as Grafana sends it, for one dataset."""
    return expr.replace("$__rate_interval", rate_interval).replace("$dataset", dataset)


class Prometheus:
    """The HTTP API of one Prometheus server."""

    def __init__(self, session: aiohttp.ClientSession, url: str = PROMETHEUS_URL) -> None:
        self.session = session
        self.url = url.rstrip("/")

    async def get(self, path: str, **params: str) -> Any:
        """The ``data`` of an API answer; raises on an error answer (with Prometheus's reason)."""
        async with self.session.get(f"{self.url}{path}", params=params) as response:
            body = await response.json()
        if body.get("status") != "success":
            raise PromQLError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    async def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = await self.get("/api/v1/query", query=expr, time=f"{at:.3f}")
        result: list[dict[str, Any]] = data["result"]
        return result

    async def scalar_values(self, expr: str, at: float) -> list[float]:
        return [float(sample["value"][1]) for sample in await self.query(expr, at)]

    async def known_names(self) -> set[str]:
        """Metric names Prometheus has stored, and those its targets announce (# HELP/TYPE)
        even with no series yet (a labelled counter nothing has incremented)."""
        names = set(await self.get("/api/v1/label/__name__/values"))
        for name, entries in (await self.get("/api/v1/metadata")).items():
            names.add(name)
            if any(entry["type"] == "histogram" for entry in entries):
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        return names


class PromQLError(Exception):
    """Prometheus refused a request (a query that does not parse, a bad parameter)."""


@contextmanager
def scrape_targets(name: str, targets: dict[str, str]) -> Iterator[Path]:
    """A file_sd targets file: ``{job: "host:port"}``, removed when the block ends."""
    TARGETS_DIR.mkdir(parents=True, exist_ok=True)
    path = TARGETS_DIR / f"{name}.json"
    groups = [{"targets": [address], "labels": {"job": job}} for job, address in targets.items()]
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(groups), encoding="utf-8")
    temporary.rename(path)  # Prometheus never reads half a file
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)
