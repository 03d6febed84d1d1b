"""Generate the Grafana dashboard of the backfill pipeline (plain JSON, kept as code).

    python deploy/grafana/build_dashboard.py          # writes dashboards/backfill.json
    python deploy/grafana/build_dashboard.py --check  # exits 1 if the JSON is out of date

Edit the panels here, not the JSON. tests/ops/test_promql.py runs every query below against
a real Prometheus after a job and fails on one that is invalid, names a metric no service
exports, or (per panel) returns nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards" / "backfill.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DS = 'dataset=~"$dataset"'
RATE = "[$__rate_interval]"
CONSUMER_QUEUES = 'queue=~"(tableinator|graphinator)[.]($dataset)[.].+"'
DEAD_LETTER_QUEUES = 'queue=~"(tableinator|graphinator)[.]($dataset)[.].+[.]dlq"'


@dataclass(frozen=True)
class Panel:
    """One panel: its title, what it shows, and its queries as (PromQL, legend)."""

    title: str
    description: str
    queries: list[tuple[str, str]]
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 12
    options: dict[str, Any] = field(default_factory=dict)


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Job",
        [
            Panel(
                "Progress",
                "Share of the job done: bytes of dump files read, else records of the estimate.",
                [(f"backfill_job_progress_ratio{{{DS}}} >= 0", "{{dataset}}")],
                unit="percentunit",
                kind="bargauge",
                width=6,
                options={"min": 0, "max": 1},
            ),
            Panel(
                "ETA",
                "Seconds left at the job's pace so far (nothing while unknown).",
                [(f"backfill_job_eta_seconds{{{DS}}} >= 0", "{{dataset}}")],
                unit="s",
                kind="stat",
                width=6,
            ),
            Panel(
                "Records published vs estimate",
                "Records the job has published (ledger) against the dry run's estimate.",
                [
                    (f"backfill_job_records{{{DS}}}", "published {{dataset}}"),
                    (f"backfill_job_records_estimated{{{DS}}} >= 0", "estimated {{dataset}}"),
                ],
                width=6,
            ),
            Panel(
                "Slices by status",
                "The job's slices: pending, running, done, failed, cancelled.",
                [(f"sum by (status) (backfill_job_slices{{{DS}}})", "{{status}}")],
                width=6,
            ),
        ],
    ),
    (
        "Throughput",
        [
            Panel(
                "Records/s per store",
                "Records committed (new or changed) and skipped unchanged per consumer, and "
                "records the extractor published.",
                [
                    (
                        f"sum by (service) (rate(backfill_records_written_total{{{DS}}}{RATE}))",
                        "{{service}} written",
                    ),
                    (
                        f"sum by (service) (rate(backfill_records_unchanged_total{{{DS}}}{RATE}))",
                        "{{service}} unchanged",
                    ),
                    (
                        f"sum(rate(backfill_extractor_records_published_total{{{DS}}}{RATE}))",
                        "extractor published",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "Batch flush latency",
                "Time to write and commit one batch, p50 and p95 per consumer.",
                [
                    (
                        f"histogram_quantile({q}, sum by (service, le) "
                        f"(rate(backfill_flush_duration_seconds_bucket{{{DS}}}{RATE})))",
                        f"{{{{service}}}} p{int(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ],
                unit="s",
            ),
            Panel(
                "Batch size",
                "Records per flushed batch (mean) per consumer: below the batch size means "
                "the flush interval, not the size, ends batches.",
                [
                    (
                        f"sum by (service) (rate(backfill_batch_size_records_sum{{{DS}}}{RATE}))"
                        " / sum by (service) "
                        f"(rate(backfill_batch_size_records_count{{{DS}}}{RATE}))",
                        "{{service}}",
                    )
                ],
            ),
            Panel(
                "Pages/s published",
                "Pages the extractor published and the broker confirmed.",
                [
                    (
                        "sum by (entity) "
                        f"(rate(backfill_extractor_pages_published_total{{{DS}}}{RATE}))",
                        "{{entity}}",
                    )
                ],
                unit="ops",
            ),
        ],
    ),
    (
        "Broker",
        [
            Panel(
                "Queue depth",
                "Messages ready in the consumers' queues (rabbitmq_prometheus).",
                [
                    (
                        "sum by (queue) (rabbitmq_queue_messages_ready"
                        f'{{{CONSUMER_QUEUES}, queue!~".+[.]dlq"}})',
                        "{{queue}}",
                    )
                ],
            ),
            Panel(
                "Fetching held back",
                "Seconds the extractor's fetching has waited for each consumer queue to drain"
                " below EXTRACTOR_MAX_QUEUE_DEPTH (0: not held). A line that keeps rising: is"
                " that queue's consumer running?",
                [
                    (
                        "max by (queue) (backfill_extractor_queue_held_back_seconds"
                        f"{{{CONSUMER_QUEUES}}})",
                        "{{queue}}",
                    )
                ],
                unit="s",
            ),
            Panel(
                "Dead letters",
                "Messages waiting in the dead-letter queues, and records dead-lettered by "
                "reason (see `extractor dlq list`).",
                [
                    (
                        f"sum by (queue) (rabbitmq_queue_messages{{{DEAD_LETTER_QUEUES}}})",
                        "{{queue}}",
                    ),
                    (
                        "sum by (service, reason) "
                        f"(increase(backfill_records_dead_lettered_total{{{DS}}}{RATE}))",
                        "{{service}} {{reason}}",
                    ),
                ],
            ),
            Panel(
                "In flight",
                "Messages delivered and not yet acked, records held for a batch, pages "
                "fetched and not yet confirmed, publishes waiting for a confirm.",
                [
                    ("sum by (service) (backfill_messages_in_flight)", "{{service}} messages"),
                    ("sum by (service) (backfill_pending_records)", "{{service}} records"),
                    ("sum(backfill_extractor_pages_in_flight)", "extractor pages"),
                    ("sum(backfill_extractor_publish_confirms_pending)", "extractor confirms"),
                ],
            ),
            Panel(
                "Store connections",
                "Connection pool: its limit, open, in use, and callers waiting.",
                [("sum by (service, state) (backfill_pool_connections)", "{{service}} {{state}}")],
            ),
        ],
    ),
    (
        "Source",
        [
            Panel(
                "Allowed rate vs requests and 429s",
                "The job's shared adaptive rate limit, the requests sent, and the 429s "
                "the source answered.",
                [
                    (
                        f"max(backfill_extractor_rate_limit_requests_per_second{{{DS}}})",
                        "allowed",
                    ),
                    (f"sum(rate(backfill_extractor_requests_total{{{DS}}}{RATE}))", "requests"),
                    (
                        "sum(rate(backfill_extractor_requests_total"
                        f'{{{DS}, outcome="http_429"}}{RATE}))',
                        "429s",
                    ),
                ],
                unit="reqps",
            ),
            Panel(
                "Retries",
                "Source requests retried, by the kind of failure.",
                [
                    (
                        f"sum by (kind) (rate(backfill_extractor_retries_total{{{DS}}}{RATE}))",
                        "{{kind}}",
                    )
                ],
                unit="reqps",
                width=6,
            ),
            Panel(
                "Circuit breaker",
                "The source's breaker in the extractor processes (1: the current state).",
                [
                    (
                        f"max by (state) (backfill_extractor_breaker_state{{{DS}}})",
                        "{{state}}",
                    )
                ],
                width=6,
            ),
        ],
    ),
    (
        "Errors",
        [
            Panel(
                "Errors/s",
                "Failed source requests by outcome, store errors by kind (transient ones "
                "are retried), batches the store rejected.",
                [
                    (
                        "sum by (outcome) (rate(backfill_extractor_requests_total"
                        f'{{{DS}, outcome!="ok"}}{RATE}))',
                        "source {{outcome}}",
                    ),
                    (
                        f"sum by (service, kind) (rate(backfill_store_errors_total{{{DS}}}{RATE}))",
                        "{{service}} {{kind}}",
                    ),
                    (
                        f"sum by (service) (rate(backfill_store_rejections_total{{{DS}}}{RATE}))",
                        "{{service}} rejected batches",
                    ),
                ],
                unit="ops",
            ),
            Panel(
                "Services up",
                "Whether Prometheus can scrape each process (the extractor exits after a job).",
                [('up{job=~"extractor|tableinator|graphinator"}', "{{job}} {{instance}}")],
            ),
        ],
    ),
]


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    """One Grafana panel with its targets."""
    targets = [
        {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
        for i, (expr, legend) in enumerate(panel.queries)
    ]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit, **panel.options}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": targets,
    }


def panels() -> list[dict[str, Any]]:
    """Rows and their panels, laid out left to right, 24 columns wide."""
    out: list[dict[str, Any]] = []
    y = 0
    for title, row in ROWS:
        out.append(_row(title, len(out) + 1, y))
        y += 1
        x = 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            out.append(panel_json(panel, len(out) + 1, x, y))
            x += panel.width
        y += 8
    return out


def _row(title: str, panel_id: int, y: int) -> dict[str, Any]:
    grid = {"h": 1, "w": 24, "x": 0, "y": y}
    return {"id": panel_id, "type": "row", "title": title, "collapsed": False, "gridPos": grid}


def dashboard() -> dict[str, Any]:
    """The whole dashboard, with a dataset variable (all datasets by default)."""
    dataset_variable = {
        "name": "dataset",
        "label": "dataset",
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"query": "label_values(backfill_records_consumed_total, dataset)"},
        "definition": "label_values(backfill_records_consumed_total, dataset)",
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".+",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }
    return {
        "uid": "backfill",
        "title": "Backfill pipeline",
        "description": (
            "Generated by deploy/grafana/build_dashboard.py; runbooks: docs/operations.md"
        ),
        "tags": ["backfill"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [dataset_variable]},
        "annotations": {"list": []},
        "panels": panels(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the JSON is out of date")
    args = parser.parse_args()
    text = render()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is out of date: run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
