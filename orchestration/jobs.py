"""What the scheduler examples share: a run's settings and options, and the dry run."""

from __future__ import annotations

import datetime as dt
from typing import Any

from common.settings import DatasetSettings, ExtractorSettings
from common.spec import load_spec
from extractor.backfill import estimate, plan
from extractor.options import JobOptions


def extractor_settings(spec: str | None = None, source_url: str | None = None) -> ExtractorSettings:
    """The environment's settings (DATASET_SPEC, EXTRACTOR_*, AMQP_*, POSTGRES_*), with a
    run's dataset spec and source URL over them when it names them."""
    settings = ExtractorSettings()
    update: dict[str, Any] = {}
    if spec:
        update["dataset"] = DatasetSettings(dataset_spec=spec)
    if source_url:
        update["extractor_source_url"] = source_url
    return settings.model_copy(update=update)


def job_options(
    start: str | None = None, end: str | None = None, job_id: str | None = None, **more: Any
) -> JobOptions:
    """A run's date range (ISO dates, UTC; default: the spec's) and job id."""
    return JobOptions(start=_instant(start), end=_instant(end), job_id=job_id or None, **more)


def _instant(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def dry_run(settings: ExtractorSettings, options: JobOptions) -> dict[str, Any]:
    """The slices a job would run and the estimate of its size and duration (JSON-ready);
    nothing is published and nothing is written to the ledger."""
    spec = load_spec(settings.dataset.dataset_spec)
    slices = plan(spec, options, dump_path=settings.extractor_dump_path)
    sized = await estimate(settings, spec, slices) if options.estimate else None
    return {
        "dataset": spec.name,
        "slices": len(slices),
        "first_slices": [item.slice_id for item in slices[:5]],
        "estimate": sized.as_dict() if sized is not None else None,
    }
