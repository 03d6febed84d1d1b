"""A real Prometheus scrapes a small job: every service's series exist and move, and every
query of the dashboard and of the alert rules is valid and names metrics the services export."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.ops.conftest import ScrapedJob
from tests.ops.promql import (
    ALERTS,
    REPO,
    Prometheus,
    PromQLError,
    alert_rules,
    dashboard_panels,
    metric_names,
    with_variables,
)

# A counter per service that must grow while the job runs.
MOVING = {
    "extractor": "backfill_extractor_records_published_total",
    "tableinator": 'backfill_records_written_total{service="tableinator"}',
    "graphinator": 'backfill_records_written_total{service="graphinator"}',
}


def _selector(series: str, job: str, dataset: str) -> str:
    name, _, labels = series.partition("{")
    extra = f", {labels.rstrip('}')}" if labels else ""
    return f'{name}{{job="{job}", dataset="{dataset}"{extra}}}'


async def test_every_service_is_scraped_and_its_series_move(
    scraped_job: ScrapedJob, prometheus: Prometheus
) -> None:
    at = scraped_job.ended_at
    for service, address in scraped_job.addresses.items():
        up = await prometheus.scalar_values(f'up{{job="{service}", instance="{address}"}}', at)
        assert up == [1.0], f"{service} at {address} was not scraped: up={up}"
        series = _selector(MOVING[service], service, scraped_job.dataset)
        # the highest 5 s rate over the job: > 0 only if Prometheus saw the counter move
        peak = await prometheus.scalar_values(f"max_over_time(rate({series}[5s])[2m:1s])", at)
        assert peak and max(peak) > 0, f"{series} did not move while the job ran"
        total = await prometheus.scalar_values(
            f"sum(max_over_time({series}[2m]))", scraped_job.settled_at
        )
        assert total == [float(scraped_job.records)], f"{series} ended at {total}"


async def test_the_job_gauges_reach_the_end(
    scraped_job: ScrapedJob, prometheus: Prometheus
) -> None:
    dataset, at = scraped_job.dataset, scraped_job.ended_at
    progress = await prometheus.scalar_values(
        f'backfill_job_progress_ratio{{dataset="{dataset}"}}', at
    )
    assert progress == [1.0]
    estimate = await prometheus.scalar_values(
        f'backfill_job_records_estimated{{dataset="{dataset}"}}', at
    )
    assert estimate == [float(scraped_job.records)]
    throttled = await prometheus.scalar_values(
        f'sum(max_over_time(backfill_extractor_requests_total{{dataset="{dataset}", '
        f'outcome="http_429"}}[2m]))',
        at,
    )
    assert throttled and throttled[0] > 0, "the throttling demo API answered no 429"


async def test_every_dashboard_query_is_valid_exported_and_returns_data(
    scraped_job: ScrapedJob, prometheus: Prometheus
) -> None:
    known = await prometheus.known_names()
    problems = []
    for title, exprs in dashboard_panels():
        returned = False
        for expr in exprs:
            query = with_variables(expr, scraped_job.dataset)
            unknown = metric_names(query) - known
            if unknown:
                problems.append(f"{title}: {sorted(unknown)} not exported: {expr}")
            try:
                returned |= bool(await prometheus.query(query, scraped_job.ended_at))
            except PromQLError as exc:
                problems.append(f"{title}: invalid: {exc}")
        if not returned:
            problems.append(f"{title}: no query returned data")
    assert not problems, "\n".join(problems)


async def test_every_alert_expression_is_valid_and_names_exported_metrics(
    scraped_job: ScrapedJob, prometheus: Prometheus
) -> None:
    known = await prometheus.known_names()
    problems = []
    for alert, expr in alert_rules():
        unknown = metric_names(expr) - known
        if unknown:
            problems.append(f"{alert}: {sorted(unknown)} not exported")
        try:
            await prometheus.query(expr, scraped_job.ended_at)
        except PromQLError as exc:
            problems.append(f"{alert}: invalid: {exc}")
    assert not problems, "\n".join(problems)
    loaded = await prometheus.get("/api/v1/rules")
    names = {rule["name"] for group in loaded["groups"] for rule in group["rules"]}
    assert names >= {alert for alert, _ in alert_rules()}, "Prometheus did not load alerts.yml"


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("no promtool: scripts/services.sh start prometheus installs it")
    for args in (
        ["check", "rules", str(ALERTS)],
        ["test", "rules", str(ALERTS.with_name("alerts_test.yml"))],
        ["check", "config", str(ALERTS.with_name("local.yml"))],
        ["check", "config", str(ALERTS.with_name("prometheus.yml"))],
    ):
        done = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


def test_the_committed_dashboard_is_what_the_generator_builds() -> None:
    script = REPO / "deploy" / "grafana" / "build_dashboard.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
