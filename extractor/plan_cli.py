"""``extractor plan``: a dry run. The slices a job would run, the paginator and the first
request of each (its window as query params), the estimate; for dumps, the files chosen."""

from __future__ import annotations

import argparse

import orjson
from rich.console import Console

from common.settings import ExtractorSettings
from common.spec import DatasetSpec, load_spec
from common.spec_source import DumpSourceSpec
from extractor import backfill
from extractor.incremental import SinceLast
from extractor.options import JobOptions
from extractor.pacing.ratelimit import rate_policy
from extractor.reporting.views import first_requests, print_dump_plan, print_plan
from extractor.sources.dump_estimate import DumpEstimate
from extractor.sources.estimate import JobEstimate
from extractor.sources.preflight import check_source


async def run(args: argparse.Namespace, settings: ExtractorSettings, options: JobOptions) -> int:
    """``extractor plan``: print what a run would do (``--json``: as JSON); 0."""
    spec = load_spec(settings.dataset.dataset_spec)
    if options.since_last:  # a dump dataset is refused here: it has no windows
        window = await backfill.since_last(settings, options)
        if args.json and window.nothing_to_do:
            print(orjson.dumps({"dataset": spec.name, "since_last": window.as_dict()}).decode())
        elif not args.json:
            print(window.describe())  # one line, unwrapped: cron logs grep it
        if window.nothing_to_do:
            return 0
        return await _plan_http(args, settings, spec, window.options(options), window)
    if isinstance(spec.source, DumpSourceSpec):
        return await _plan_dump(args, settings, spec, options)
    return await _plan_http(args, settings, spec, options, None)


async def _plan_http(
    args: argparse.Namespace,
    settings: ExtractorSettings,
    spec: DatasetSpec,
    options: JobOptions,
    window: SinceLast | None,
) -> int:
    """The slices of an HTTP job, the first request each sends, and the job's estimate."""
    slices = backfill.plan(spec, options)
    if not args.no_estimate:
        await check_source(settings, spec)  # a dry run checks the source: fail in seconds
    sized = None if args.no_estimate else await backfill.estimate(settings, spec, slices)
    base_url = settings.extractor_source_url or backfill.http_source(spec).base_url
    if args.json:
        body = {
            "dataset": spec.name,
            "slices": len(slices),
            "since_last": window and window.as_dict(),
            "requests": first_requests(spec, slices, base_url),
            "estimate": sized and sized.as_dict(),
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        policy = rate_policy(spec)
        assert isinstance(sized, JobEstimate | None) and policy is not None
        print_plan(Console(), spec, slices, sized, policy, base_url)
    return 0


async def _plan_dump(
    args: argparse.Namespace, settings: ExtractorSettings, spec: DatasetSpec, options: JobOptions
) -> int:
    """The files of a dump job, which were chosen, and their estimated size."""
    plan = backfill.plan_dump(spec, options, dump_path=settings.extractor_dump_path)
    sized = None if args.no_estimate else await backfill.estimate(settings, spec, plan.slices)
    assert isinstance(sized, DumpEstimate | None)
    if args.json:
        body = {
            "dataset": spec.name,
            "base_path": str(plan.base_path),
            "slices": [
                {"slice_id": s.slice_id, "file": s.file, "size": s.file_size} for s in plan.slices
            ],
            "files_chosen": plan.notes,
            "estimate": sized and sized.as_dict(with_slices=True),
        }
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
    else:
        print_dump_plan(Console(), spec, plan, sized)
    return 0
