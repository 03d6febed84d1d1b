"""The ledger on the real PostgreSQL: leases, checkpoints, job transitions, shared limit."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from common.settings import ExtractorSettings, PostgresSettings
from common.spec import load_spec
from extractor.ledger.leases import Progress, SliceLeases
from extractor.ledger.schema import create_ledger
from extractor.ledger.slices import Slice, Window
from extractor.ledger.store import Ledger, NewJob, open_ledger
from extractor.pacing.ratelimit import RatePolicy
from extractor.pacing.shared_limit import LEASE, THROTTLE, SharedRateLimiter
from tableinator.sink import prepare_database

POLICY = RatePolicy(initial=10, maximum=1000)


@pytest.fixture
async def ledger(namespace: str, pg: psycopg.AsyncConnection[Any]) -> AsyncIterator[Ledger]:
    async with open_ledger(ExtractorSettings(extractor_ledger_schema=namespace)) as opened:
        yield opened


async def new_job(ledger: Ledger, job_id: str = "j1", slices: int = 2, **policy: Any) -> None:
    planned = [Slice("e", f"e:{i}", Window(i * 100, (i + 1) * 100)) for i in range(slices)]
    job = NewJob(job_id, "d", "spec.yaml", {}, {}, None)
    await ledger.create_job(job, planned, RatePolicy(**{"initial": 10, "maximum": 1000, **policy}))


def progress(page: int, done: bool = False) -> Progress:
    return Progress({"position": 1000 - page}, page, page, page * 10, {"timeout": 1}, done)


async def test_ddl_is_idempotent_and_safe_concurrently(
    ledger: Ledger, pg: psycopg.AsyncConnection[Any]
) -> None:
    async def create() -> None:
        async with ledger.pool.connection() as conn:
            await create_ledger(conn, ledger.schema)

    await asyncio.gather(create(), create(), create())


async def test_the_ledger_and_tableinator_create_one_schema_at_the_same_moment(
    namespace: str, pg: psycopg.AsyncConnection[Any], demo_spec_file: Any
) -> None:
    """One DDL lock for both: CREATE SCHEMA IF NOT EXISTS from two services at once would
    otherwise collide in the catalog (a unique violation)."""
    spec = load_spec(demo_spec_file)
    conninfo = PostgresSettings().conninfo
    for _ in range(5):
        await pg.execute(f'DROP SCHEMA IF EXISTS "{namespace}" CASCADE')
        async with (
            await psycopg.AsyncConnection.connect(conninfo) as one,
            await psycopg.AsyncConnection.connect(conninfo) as two,
        ):
            await asyncio.gather(
                create_ledger(one, namespace), prepare_database(two, spec, namespace)
            )
    found = await pg.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s"
        " AND table_name IN ('jobs', 'replays')",
        (namespace,),
    )
    assert await found.fetchone() == (2,)


async def test_a_live_lease_excludes_others_and_expiry_fences_the_old_holder(
    ledger: Ledger,
) -> None:
    await new_job(ledger)
    first = SliceLeases(ledger, "w1", lease_seconds=0.5)
    second = SliceLeases(ledger, "w2", lease_seconds=0.5)
    claimed = await first.claim("j1", "e:0")
    assert claimed is not None and claimed.window == Window(0, 100) and claimed.attempts == 1
    assert claimed.cursor is None and claimed.next_page == 0
    assert await second.claim("j1", "e:0") is None
    state = await second.state("j1", "e:0")
    assert state is not None and state.worker == "w1" and state.status == "running"
    assert await first.checkpoint("j1", "e:0", progress(1)) == "running"
    await asyncio.sleep(0.6)  # w1 stops renewing: its lease ends
    taken = await second.claim("j1", "e:0")
    assert taken is not None and taken.attempts == 2
    assert (taken.cursor, taken.next_page, taken.records) == ({"position": 999}, 1, 10)
    assert taken.errors == {"timeout": 1}
    assert await first.checkpoint("j1", "e:0", progress(2)) is None  # fenced off
    assert await second.checkpoint("j1", "e:0", progress(2, done=True)) == "running"
    assert await second.claim("j1", "e:0") is None  # done is done


async def test_job_completes_once_when_every_slice_is_terminal(ledger: Ledger) -> None:
    await new_job(ledger)
    leases = SliceLeases(ledger, "w1", lease_seconds=30)
    await leases.claim("j1", "e:0")
    await leases.checkpoint("j1", "e:0", progress(1, done=True))
    assert await ledger.complete_job("j1") is None  # e:1 is pending
    await leases.claim("j1", "e:1")
    assert await leases.finish("j1", "e:1", "failed", {"malformed": 1}, ("malformed", "bad"))
    assert await ledger.complete_job("j1") == "failed"
    assert await ledger.complete_job("j1") is None  # only one caller ends a job
    assert await ledger.reopen("j1", retry_failed=False) == []
    assert await ledger.reopen("j1", retry_failed=True) == ["e:1"]
    job = await ledger.require_job("j1")
    assert job.status == "running" and job.end_published_at is None
    again = await leases.claim("j1", "e:1")
    assert again is not None and again.attempts == 2 and again.errors == {"malformed": 1}


async def test_cancel_stops_pending_slices_and_claims(ledger: Ledger) -> None:
    await new_job(ledger, slices=3)
    leases = SliceLeases(ledger, "w1", lease_seconds=30)
    await leases.claim("j1", "e:0")
    assert await ledger.request_cancel("j1") == "cancelling"
    assert await leases.claim("j1", "e:1") is None
    assert await leases.checkpoint("j1", "e:0", progress(1)) == "cancelling"
    assert await leases.finish("j1", "e:0", "cancelled", {})
    assert await ledger.complete_job("j1") == "cancelled"
    assert await ledger.reopen("j1", retry_failed=False) == ["e:0", "e:1", "e:2"]


async def test_heartbeat_extends_every_lease_of_a_worker(ledger: Ledger) -> None:
    await new_job(ledger)
    leases = SliceLeases(ledger, "w1", lease_seconds=30)
    await leases.claim("j1", "e:0")
    await leases.claim("j1", "e:1")
    assert await leases.heartbeat() == 2


async def test_shared_limit_lease_follows_the_policy(ledger: Ledger) -> None:
    await new_job(ledger, initial=40)
    limiter = SharedRateLimiter(ledger, "j1", max_chunk=5)
    grant = await limiter.lease()
    assert grant.rate == 40 and grant.granted >= 1  # the bucket starts with one token
    for _ in range(45):
        limiter.on_success()
    grant = await limiter.lease()
    assert grant.rate == pytest.approx(POLICY.increased(40, 2))  # 45 successes: two steps
    for _ in range(30):
        limiter.on_success(hold=True)
    assert (await limiter.lease()).rate == pytest.approx(POLICY.increased(40, 2))


async def test_a_rate_at_the_floor_earns_an_increase_per_half_second_of_responses(
    ledger: Ledger,
) -> None:
    await new_job(ledger, initial=1)
    limiter = SharedRateLimiter(ledger, "j1")
    await limiter.lease()
    limiter.on_success()  # at 1/s, half a second's worth is one response
    assert (await limiter.lease()).rate == pytest.approx(POLICY.increased(1, 1))
    for _ in range(4):  # 2.1/s: two responses a step
        limiter.on_success()
    assert (await limiter.lease()).rate == pytest.approx(POLICY.increased(1, 3))


async def test_concurrent_throttles_halve_once_and_pause_everyone(ledger: Ledger) -> None:
    await new_job(ledger, initial=40)
    one, two = SharedRateLimiter(ledger, "j1"), SharedRateLimiter(ledger, "j1")
    await one.lease()
    await two.lease()
    await asyncio.gather(one.on_throttled(0.4, 0.5, 0), two.on_throttled(0.4, 0.5, 0))
    assert one.rate == two.rate == 20  # both requests were sent under epoch 0: one halving
    grant = await one.lease()
    assert grant.granted == 0 and 0.2 < grant.wait <= 0.4


async def test_a_response_to_a_request_sent_before_a_decrease_does_not_lower_again(
    ledger: Ledger,
) -> None:
    await new_job(ledger, initial=40)
    limiter = SharedRateLimiter(ledger, "j1")
    sent_under = await limiter.acquire()
    await limiter.on_throttled(None, 0.5, sent_under)  # the first 429 of a burst
    assert limiter.rate == 20
    await limiter.on_throttled(None, 0.8, sent_under)  # a late answer to the same burst
    assert limiter.rate == 20
    await limiter.on_throttled(None, 0.5, limiter.epoch)  # sent after the decrease: counts
    assert limiter.rate == 10


async def test_two_processes_share_one_rate(ledger: Ledger) -> None:
    await new_job(ledger, initial=50, maximum=50)
    limiters = [SharedRateLimiter(ledger, "j1") for _ in range(2)]

    async def take(limiter: SharedRateLimiter) -> None:
        for _ in range(30):
            await limiter.acquire()

    started = time.monotonic()
    await asyncio.gather(*(take(limiter) for limiter in limiters))
    elapsed = time.monotonic() - started
    # 60 requests at 50/s with a one-token start: at least 1.1 s whoever asks.
    assert 1.1 <= elapsed < 2.5


async def test_claim_and_finish_are_safe_to_run_twice(ledger: Ledger) -> None:
    """The ledger retries a statement after a reconnect; the first may have committed."""
    await new_job(ledger)
    leases = SliceLeases(ledger, "w1", lease_seconds=5)
    first = await leases.claim("j1", "e:0")
    again = await leases.claim("j1", "e:0")  # as if the first answer was lost
    assert first is not None and again is not None
    assert (first.attempts, again.attempts) == (1, 1)
    assert await SliceLeases(ledger, "w2", lease_seconds=5).claim("j1", "e:0") is None
    assert await leases.finish("j1", "e:0", "pending", {})
    assert await leases.finish("j1", "e:0", "pending", {})  # not "lost"
    assert not await SliceLeases(ledger, "w2", lease_seconds=5).finish("j1", "e:1", "failed", {})
    reclaimed = await leases.claim("j1", "e:0")
    assert reclaimed is not None and reclaimed.attempts == 2  # a new run counts


async def test_a_throttle_or_lease_retried_after_a_lost_answer_applies_once(
    ledger: Ledger,
) -> None:
    """``throttled + 1`` and a lease's grant and earned increase are increments: the retry
    of one whose first attempt committed (its answer lost) must apply nothing."""
    await new_job(ledger, initial=40)
    throttle = {"j": "j1", "seen": 0, "factor": 0.5, "pause": 0.0}
    token = uuid.uuid4()
    first = await ledger.rows_once(THROTTLE, throttle, token=token)
    assert first is not None and first[0]["rate"] == 20
    assert await ledger.rows_once(THROTTLE, throttle, token=token) is None
    lease = {"j": "j1", "want": 1, "ok": 3, "hold": False, "isec": 0.5}
    token = uuid.uuid4()
    attempts = await asyncio.gather(*(ledger.rows_once(LEASE, lease, token=token) for _ in "ab"))
    assert sorted(found is None for found in attempts) == [False, True]  # one waited, then saw
    state = await ledger.row(
        "SELECT throttled, healthy, rate FROM {s}.rate_limits WHERE job_id = 'j1'"
    )
    assert state == {"throttled": 1, "healthy": 3, "rate": 20}
