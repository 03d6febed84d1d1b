"""``extractor run --since-last`` / ``plan --since-last`` on the real services: jobs run into
the ledger (RabbitMQ, PostgreSQL through tableinator) against the demo API, then the
incremental window is read back from the ledger, and a real incremental run lands the rest.
The pure rules (durations, rounding, gaps) are in test_incremental.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
import yaml
from aiohttp import web

from demoapi import Dataset, serve_demo_api
from demoapi.dataset import DEFAULT_END
from extractor.backfill import JobOptions, NothingToDo, retry_failed, run_backfill
from extractor.reporting.report import JobReport
from tests.extractor.support import (
    delete_queue,
    extractor_env,
    extractor_settings,
    ledger_row,
    running_tableinator,
    serving,
    table_counts,
    work_queue,
)

DAY = dt.timedelta(days=1)
D1 = dt.datetime.fromtimestamp(DEFAULT_END, dt.UTC) - 6 * DAY  # the demo data's first day
SIZE = 600


def day(n: int) -> dt.datetime:
    return D1 + (n - 1) * DAY


@pytest.fixture
async def work_queue_deleted(namespace: str) -> AsyncIterator[None]:
    yield
    await delete_queue(work_queue(namespace))


@pytest.fixture
def spec(demo_spec_file: Path) -> Path:
    """The demo spec sliced daily, paged by page number with the window as after/before."""
    raw = yaml.safe_load(demo_spec_file.read_text())
    raw["source"]["slicing"] = {"kind": "daily"}
    raw["entities"]["replays"].update(
        path="/pages.json",
        params={"after": "{start}", "before": "{end}"},
        paginator={"kind": "page_number", "page_size": 50},
    )
    demo_spec_file.write_text(yaml.safe_dump(raw))
    return demo_spec_file


@asynccontextmanager
async def failing_on(upstream: str, after: dt.datetime) -> AsyncIterator[str]:
    """The demo API, except that pages of the window starting at ``after`` answer 400."""

    async def forward(request: web.Request) -> web.Response:
        if request.path == "/pages.json" and request.query.get("after") == str(
            int(after.timestamp())
        ):
            return web.json_response({"error": "this day is broken"}, status=400)
        async with session.get(upstream + request.path_qs) as response:
            body = await response.read()
            return web.Response(body=body, status=response.status, content_type="application/json")

    async with aiohttp.ClientSession() as session, serving(forward) as url:
        yield url


async def run_window(
    spec: Path, url: str, namespace: str, job_id: str, start: dt.datetime, end: dt.datetime
) -> JobReport:
    settings = extractor_settings(spec, url, namespace, extractor_max_retries=0)
    options = JobOptions(start=start, end=end, job_id=job_id, estimate=False, wait_timeout=60)
    return await run_backfill(settings, options)


def extractor_cli(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    done = subprocess.run(
        [sys.executable, "-m", "extractor", *args],
        env={**env, "LOG_LEVEL": "WARNING"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout, done.stderr


def since_last_plan(spec: Path, url: str, namespace: str, cwd: Path, *extra: str) -> Any:
    """``plan --since-last --json`` (bounded by --end day 8, no estimate): its JSON."""
    args = ["plan", "--since-last", "--end", day(8).isoformat(), "--no-estimate", "--json"]
    code, out, err = extractor_cli([*args, *extra], extractor_env(spec, url, namespace), cwd)
    assert code == 0, err
    return orjson.loads(out)


async def test_since_last_starts_at_a_gap_never_past_it_and_lookback_moves_it_back(
    spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    dataset = Dataset(size=SIZE, days=6)
    async with (
        serve_demo_api(dataset) as upstream,
        failing_on(upstream, day(4)) as url,
        running_tableinator(spec, namespace),
    ):
        a = await run_window(spec, url, namespace, f"{namespace}-a", day(1), day(3))
        plan = await asyncio.to_thread(since_last_plan, spec, url, namespace, tmp_path)
        assert plan["since_last"]["start"] == day(3).isoformat()
        assert plan["since_last"]["reason"] == f"the end of job {namespace}-a"
        b = await run_window(spec, url, namespace, f"{namespace}-b", day(3), day(5))
        c = await run_window(spec, url, namespace, f"{namespace}-c", day(5), day(6))
        assert (a.ok, b.status, list(b.failed_slices), c.ok) == (
            True,
            "failed",
            [f"replays:{day(4):%Y-%m-%d}"],
            True,
        )
        gap = await asyncio.to_thread(since_last_plan, spec, url, namespace, tmp_path)
        back = await asyncio.to_thread(
            since_last_plan, spec, url, namespace, tmp_path, "--lookback", "2h"
        )
        # The failed day fetched again: since-last now starts where job c ended.
        settings = extractor_settings(spec, upstream, namespace)
        retried = await retry_failed(settings, f"{namespace}-b", JobOptions(wait_timeout=60))
        healed = await asyncio.to_thread(since_last_plan, spec, url, namespace, tmp_path)
    assert gap["since_last"]["start"] == day(4).isoformat()
    assert gap["since_last"]["reason"] == (
        f"slice replays:{day(4):%Y-%m-%d} of job {namespace}-b failed"
    )
    assert gap["slices"] == 4  # days 4..7, to --end day 8
    assert gap["requests"][-1]["params"] == {
        "after": int(day(4).timestamp()),
        "before": int(day(5).timestamp()),
        "page": 1,
        "per_page": 50,
    }
    # 2 hours back from midnight of day 4, rounded down to the day.
    assert back["since_last"]["start"] == day(3).isoformat()
    assert back["since_last"]["reason"].endswith(", 2:00:00 back")
    assert retried.ok, retried.as_dict()
    assert healed["since_last"]["start"] == day(6).isoformat()
    up_to_day_6 = dataset.count(int(day(6).timestamp()), None)
    assert await table_counts(pg, namespace) == (up_to_day_6, up_to_day_6)


async def test_a_job_whose_stores_did_not_report_is_fetched_again(
    spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    async with (
        serve_demo_api(Dataset(size=SIZE, days=6)) as url,
        running_tableinator(spec, namespace),
    ):
        await run_window(spec, url, namespace, f"{namespace}-a", day(1), day(3))
        settings = extractor_settings(spec, url, namespace)
        unwaited = JobOptions(
            start=day(3), end=day(5), job_id=f"{namespace}-b", estimate=False, wait=False
        )
        b = await run_backfill(settings, unwaited)
        await run_window(spec, url, namespace, f"{namespace}-c", day(5), day(6))
        plan = await asyncio.to_thread(since_last_plan, spec, url, namespace, tmp_path)
    assert b.status == "done"
    assert plan["since_last"]["start"] == day(3).isoformat()
    assert plan["since_last"]["reason"] == (
        f"job {namespace}-b (done) not finalised by tableinator"
    )


async def test_run_since_last_lands_the_rest_from_the_last_end_to_now(
    spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    dataset = Dataset(size=SIZE, days=3, end=int(today.timestamp()))  # up to midnight
    async with serve_demo_api(dataset) as url, running_tableinator(spec, namespace):
        first = await run_window(
            spec, url, namespace, f"{namespace}-a", today - 3 * DAY, today - DAY
        )
        env = extractor_env(spec, url, namespace)
        run = ["run", "--since-last", "--no-estimate", "--job-id", f"{namespace}-next"]
        code, out, err = await asyncio.to_thread(extractor_cli, run, env, tmp_path)
        landed = await table_counts(pg, namespace)
    assert first.ok and code == 0, err
    assert f"since last: {today - DAY:%Y-%m-%d} 00:00 .. " in out
    assert f"(start: the end of job {namespace}-a)" in out
    window = await ledger_row(
        pg,
        namespace,
        "SELECT min(window_start), max(window_end), count(*), sum(records)::bigint"
        " FROM {s}.slices WHERE job_id = %s",
        f"{namespace}-next",
    )
    assert window[0] == today - DAY
    assert today < window[1] <= dt.datetime.now(dt.UTC)
    assert window[2] == 2  # yesterday, and today up to now
    assert window[3] == dataset.count(None, int((today - DAY).timestamp()))
    assert landed == (SIZE, SIZE)


async def test_nothing_to_do_exits_0_and_plans_no_job(
    spec: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: Any,
    work_queue_deleted: None,
    tmp_path: Path,
) -> None:
    tomorrow = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) + DAY
    async with (
        serve_demo_api(Dataset(size=SIZE, days=6)) as url,
        running_tableinator(spec, namespace),
    ):
        ahead = await run_window(spec, url, namespace, f"{namespace}-a", tomorrow, tomorrow + DAY)
        env = extractor_env(spec, url, namespace)
        code, out, err = await asyncio.to_thread(
            extractor_cli, ["run", "--since-last", "--no-estimate"], env, tmp_path
        )
        settings = extractor_settings(spec, url, namespace)
        with pytest.raises(NothingToDo, match=r"^since last: nothing to do: "):
            await run_backfill(settings, JobOptions(since_last=True, estimate=False))
    assert ahead.ok
    assert code == 0, err
    assert out.strip().startswith(f"since last: nothing to do: the start {tomorrow + DAY:%Y-%m-%d}")
    jobs = await ledger_row(pg, namespace, "SELECT count(*) FROM {s}.jobs")
    assert jobs == (1,)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "--since-last", "--start", "2025-12-01"],
            "--since-last and --start exclude each other: the ledger sets the start",
        ),
        (
            ["plan", "--since-last", "--lookback", "2x"],
            "--lookback: not a duration: '2x' (e.g. 30m, 2h, 1d, 1h30m, PT2H)",
        ),
        (["run", "--lookback", "1d"], "--lookback goes with --since-last"),
        (
            ["run", "--since-last"],
            "no complete earlier job for dataset {namespace}: run with --start/--end first",
        ),
    ],
    ids=["with-start", "bad-lookback", "lookback-alone", "no-earlier-job"],
)
def test_a_wrong_since_last_is_one_line_and_exit_2(
    args: list[str], message: str, spec: Path, namespace: str, tmp_path: Path
) -> None:
    env = extractor_env(spec, "http://127.0.0.1:9", namespace)  # never asked
    code, _, err = extractor_cli(args, env, tmp_path)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["extractor: " + message.format(namespace=namespace)]


@pytest.mark.parametrize("command", ["run", "plan"])
def test_help_explains_the_flags(command: str, tmp_path: Path) -> None:
    code, out, _ = extractor_cli([command, "--help"], {**os.environ, "COLUMNS": "100"}, tmp_path)
    assert code == 0
    text = " ".join(out.split())
    assert "--since-last incremental: start where the ledger's complete coverage" in text
    assert "--lookback DURATION with --since-last: start this much earlier, e.g. 30m, 2h" in text
