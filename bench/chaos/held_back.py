"""Scenario 7: a consumer stopped until its queue holds the extractor back, then SIGTERM to
the held-back extractor."""

from __future__ import annotations

import asyncio
import time

import psycopg
from psycopg import sql

from bench.chaos.harness import Chaos
from bench.chaos.run import JobRun

STOP_SECONDS = 10.0  # a held-back extractor must exit within this of its SIGTERM
HOLD_SECONDS = 60.0  # how long graphinator's queue may take to fill past the limit


async def sigterm_while_held_back(chaos: Chaos) -> None:
    """graphinator stopped mid-job, so its queue fills past EXTRACTOR_MAX_QUEUE_DEPTH and
    holds fetching back; then SIGTERM to the waiting extractor, which must checkpoint and
    exit 130 within 10 s; graphinator is started again and ``extractor resume`` finishes
    the job exactly."""
    run = chaos.run
    extractor = run.extractor
    assert extractor is not None
    graph = [s for s in run.consumers if s.name.startswith("graphinator")]
    rounds: list[dict[str, object]] = []
    while len(chaos.monitor.faults) < chaos.faults and not chaos.complete():
        await chaos.until(0.05 + 0.25 * len(rounds))
        if chaos.complete() or not extractor.alive:
            break
        started = time.monotonic()
        await asyncio.gather(*(service.terminate() for service in graph))
        held = await _until_held(run, HOLD_SECONDS)
        if not held:  # too little of the job was left to fill the queue past the limit
            for service in graph:
                service.start()
            break
        signalled = time.monotonic()
        code = await extractor.terminate(STOP_SECONDS)
        chaos.monitor.fault("SIGTERM held back", "extractor", started)
        rounds.append(
            {"held": held, "exit": code, "exit_seconds": round(time.monotonic() - signalled, 2)}
        )
        for service in graph:
            service.start()
        extractor.start(run.resume_args())
    chaos.figures.update(
        rounds=rounds,
        all_held_then_exited_130=bool(rounds) and all(r["exit"] == 130 for r in rounds),
        resume_exit=await extractor.wait(900),
    )


async def _until_held(run: JobRun, seconds: float) -> bool:
    """Until the ledger shows the job held back by a graphinator queue (False: it was not)."""
    query = sql.SQL(
        "SELECT count(*) FROM {}.holds WHERE job_id = %s AND consumer = 'graphinator'"
        " AND seen_at > clock_timestamp() - interval '5 seconds'"
    ).format(sql.Identifier(run.name))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:  # the ledger is polled: no event to wait on
        try:
            async with await run.ctx.pg() as conn:
                row = await (await conn.execute(query, (run.job_id,))).fetchone()
        except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
            row = None
        if row and row[0]:
            return True
        await asyncio.sleep(0.2)
    return False
