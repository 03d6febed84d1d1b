"""The extractor's Prometheus metrics, served on /metrics with the other services' ones."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from extractor.snapshot import JobSnapshot

REQUESTS = Counter(
    "backfill_extractor_requests_total",
    "Source requests by outcome: ok, or the kind of failure.",
    ("dataset", "outcome"),
)
PAGES = Counter(
    "backfill_extractor_pages_published_total",
    "Pages published and confirmed by the broker.",
    ("dataset", "entity"),
)
RECORDS = Counter(
    "backfill_extractor_records_published_total",
    "Records in pages published and confirmed.",
    ("dataset", "entity"),
)
SLICES = Counter(
    "backfill_extractor_slice_runs_total",
    "Slice runs in this process by how they ended (done, failed, cancelled, released, lost).",
    ("dataset", "status"),
)
RATE_LIMIT = Gauge(
    "backfill_extractor_rate_limit", "The job's shared rate limit, requests/s.", ("dataset",)
)
IN_FLIGHT = Gauge(
    "backfill_extractor_pages_in_flight", "Pages fetched and not yet confirmed, this process."
)
JOB_RECORDS = Gauge(
    "backfill_job_records", "Records the running job has published (ledger).", ("dataset",)
)
JOB_ESTIMATE = Gauge(
    "backfill_job_records_estimated", "Records the running job is estimated to hold.", ("dataset",)
)
JOB_ETA = Gauge(
    "backfill_job_eta_seconds", "Seconds left at the job's rate so far (-1: unknown).", ("dataset",)
)


def observe_job(snapshot: JobSnapshot) -> None:
    """The driver's view of the whole job (every worker), for dashboards and alerts."""
    dataset = snapshot.job.dataset
    JOB_RECORDS.labels(dataset).set(snapshot.records)
    estimate = snapshot.estimated_records
    JOB_ESTIMATE.labels(dataset).set(estimate if estimate is not None else -1)
    eta = snapshot.eta_seconds
    JOB_ETA.labels(dataset).set(-1.0 if eta is None else eta)
