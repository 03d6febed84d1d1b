"""The extractor's Prometheus metrics, served on /metrics with the other services' ones."""

from __future__ import annotations

from prometheus_client import Counter, Enum, Gauge

REQUESTS = Counter(
    "backfill_extractor_requests_total",
    "Source requests by outcome: ok, or the kind of failure (http_429, http_503, timeout, ...).",
    ("dataset", "outcome"),
)
RETRIES = Counter(
    "backfill_extractor_retries_total",
    "Source requests retried after a transient failure, by its kind.",
    ("dataset", "kind"),
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
DETAILS_MISSING = Counter(
    "backfill_extractor_details_missing_total",
    "Details (records fetched again by id) that answered 404, in checkpointed pages.",
    ("dataset", "entity"),
)
SLICES = Counter(
    "backfill_extractor_slice_runs_total",
    "Slice runs in this process by how they ended (done, failed, cancelled, released, lost).",
    ("dataset", "status"),
)
RATE_LIMIT = Gauge(
    "backfill_extractor_rate_limit_requests_per_second",
    "The job's shared adaptive rate limit: requests/s the source is allowed to get.",
    ("dataset",),
)
BREAKER = Enum(
    "backfill_extractor_breaker_state",
    "The source's circuit breaker in this process (1 for the current state).",
    ("dataset",),
    states=["closed", "open", "half_open"],
)
IN_FLIGHT = Gauge(
    "backfill_extractor_pages_in_flight", "Pages fetched and not yet confirmed, this process."
)
QUEUE_DEPTH_WAITS = Counter(
    "backfill_extractor_queue_depth_waits_total",
    "Times fetching waited because a consumer queue was over EXTRACTOR_MAX_QUEUE_DEPTH.",
)
HELD_BACK_SECONDS = Gauge(
    "backfill_extractor_queue_held_back_seconds",
    "Seconds fetching has been held back by this consumer queue being over"
    " EXTRACTOR_MAX_QUEUE_DEPTH (0 while it is not).",
    ("queue",),
)
CONFIRMS_PENDING = Gauge(
    "backfill_extractor_publish_confirms_pending",
    "Pages published and waiting for the broker's confirm, this process.",
)
JOB_RECORDS = Gauge(
    "backfill_job_records", "Records the running job has published (ledger).", ("dataset",)
)
JOB_ESTIMATE = Gauge(
    "backfill_job_records_estimated", "Records the running job is estimated to hold.", ("dataset",)
)
JOB_PROGRESS = Gauge(
    "backfill_job_progress_ratio",
    "Share of the running job done, 0 to 1 (-1: unknown, no estimate).",
    ("dataset",),
)
JOB_ETA = Gauge(
    "backfill_job_eta_seconds", "Seconds left at the job's rate so far (-1: unknown).", ("dataset",)
)
JOB_SLICES = Gauge(
    "backfill_job_slices", "The running job's slices by status (ledger).", ("dataset", "status")
)
JOB_LAST_PROGRESS = Gauge(
    "backfill_job_last_progress_timestamp_seconds",
    "Unix time the running job's published record count last grew (or the job started).",
    ("dataset",),
)


def observe_breaker(dataset: str, state: str) -> None:
    """The breaker's state after a request was admitted or its outcome recorded."""
    BREAKER.labels(dataset).state(state)


def start_fetching(dataset: str) -> None:
    """Series an alert or a panel compares against exist (at 0) before the first failure."""
    REQUESTS.labels(dataset, "http_429")
    RETRIES.labels(dataset, "http_429")
    observe_breaker(dataset, "closed")
