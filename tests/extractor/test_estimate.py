"""Estimates: the arithmetic (pure) and both methods against the demo API."""

from __future__ import annotations

from pathlib import Path

import yaml

from common.spec import load_spec
from demoapi import Dataset, serve_demo_api
from extractor.backfill import JobOptions, estimate, largest_first, plan
from extractor.ledger.slices import Slice, Window
from extractor.sources.estimate import (
    JobEstimate,
    count_params,
    extrapolate,
    local_density,
    pages_for,
    requests_for,
    sample_points,
)
from tests.support.pipeline import extractor_settings


def test_pages_and_requests() -> None:
    assert pages_for(0, 50) == 0 and requests_for(0, 50) == 1
    assert pages_for(50, 50) == 1 and requests_for(50, 50) == 2
    assert pages_for(101, 50) == 3 and requests_for(101, 50) == 3


def test_count_params_fill_the_window() -> None:
    from common.spec import EstimateSpec

    spec = EstimateSpec(path="/count", params={"after": "{start}", "before": "{end}", "x": 1})
    assert count_params(spec, Window(10, 20)) == {"after": 10, "before": 20, "x": 1}
    assert count_params(spec, Window(None, 20)) == {"before": 20, "x": 1}


def test_density_from_one_page() -> None:
    full = [998 - 2 * i for i in range(50)]  # one record every 2 s below 1000
    assert local_density(full, 1000, 0, more=True) == 0.5
    assert local_density([990, 980], 1000, 900, more=False) == 0.02  # reached the start
    assert sample_points(Window(0, 1000), 4) == [1000, 750, 500, 250]


def test_extrapolate_by_mean_density() -> None:
    slices = [Slice("a", f"a:{i}", Window(i * 100, (i + 1) * 100)) for i in range(4)]
    filled = extrapolate(slices, {"a:0": 10, "a:3": 30})
    assert filled == {"a:0": 10, "a:1": 20, "a:2": 20, "a:3": 30}


async def test_count_endpoint_is_exact(demo_spec_file: Path) -> None:
    dataset = Dataset(size=2_000)
    async with serve_demo_api(dataset) as url:
        settings = extractor_settings(demo_spec_file, url)
        spec = load_spec(demo_spec_file)
        slices = plan(spec, JobOptions())
        sized = await estimate(settings, spec, slices)
    assert sized.method == "count endpoint"
    assert sized.records == 2_000
    assert sized.requests is not None and sized.pages is not None
    assert sized.pages <= sized.requests <= sized.pages + len(slices)
    assert sized.seconds_at_maximum == sized.requests / 2000
    assert sized.seconds_at_initial == sized.requests / 200


async def test_sampling_without_a_count_endpoint(demo_spec_file: Path) -> None:
    raw = yaml.safe_load(demo_spec_file.read_text())
    del raw["entities"]["replays"]["estimate"]
    demo_spec_file.write_text(yaml.safe_dump(raw))
    dataset = Dataset(size=20_000)
    async with serve_demo_api(dataset) as url:
        settings = extractor_settings(demo_spec_file, url)
        spec = load_spec(demo_spec_file)
        sized = await estimate(settings, spec, plan(spec, JobOptions()))
    assert sized.method == "sampled 5 of 30 slices"
    assert sized.records is not None
    assert 0.85 * 20_000 <= sized.records <= 1.15 * 20_000


def test_the_largest_slices_are_queued_first() -> None:
    window = Window(0, 86_400)
    slices = [Slice("replays", f"s{i}", window) for i in range(4)]
    sized = JobEstimate("count", 4, 60, 6, 10, None, None, {"s0": 5, "s1": 30, "s3": 25})
    assert largest_first(slices, sized) == ["s1", "s3", "s0", "s2"]
    assert largest_first(slices, None) == ["s0", "s1", "s2", "s3"]
