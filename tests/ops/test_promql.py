"""The metric names of a PromQL expression (pure logic: what the scrape tests check against)."""

from __future__ import annotations

import pytest

from tests.ops.promql import alert_rules, dashboard_panels, metric_names, with_variables


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('up{job=~"tableinator|graphinator"} == 0', {"up"}),
        (
            "histogram_quantile(0.95, sum by (service, le) "
            '(rate(backfill_flush_duration_seconds_bucket{dataset=~"a|b"}[5m])))',
            {"backfill_flush_duration_seconds_bucket"},
        ),
        (
            "time() - backfill_job_last_progress_timestamp_seconds > 300 and on (dataset) "
            'sum by (dataset) (backfill_job_slices{status=~"pending|running"}) > 0',
            {"backfill_job_last_progress_timestamp_seconds", "backfill_job_slices"},
        ),
        (
            "min_over_time(deriv(q_ready[2m])[10m:1m]) > 1e3 and q_ready offset 10m",
            {"q_ready"},
        ),
        ('sum(x) by (a) / ignoring (b) group_left (c) y unless z{l="and or (f)"}', {"x", "y", "z"}),
        ("sum without (instance) (rate(a_total[1m])) * 2.5e-3", {"a_total"}),
    ],
)
def test_names_not_functions_labels_keywords_or_numbers(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_misspelt_metric_is_a_name_the_check_will_not_know() -> None:
    assert metric_names("rate(backfill_records_writen_total[1m])") == {
        "backfill_records_writen_total"
    }


def test_every_panel_and_rule_selects_at_least_one_metric() -> None:
    exprs = [e for _, panel in dashboard_panels() for e in panel] + [e for _, e in alert_rules()]
    assert len(exprs) > 20
    for expr in exprs:
        assert metric_names(with_variables(expr, "demo")), expr
