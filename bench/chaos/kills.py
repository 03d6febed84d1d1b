"""Scenarios 1, 2 and 6: processes killed (-9) or stopped (SIGTERM) mid-job."""

from __future__ import annotations

import asyncio
import time

from bench.chaos.harness import Chaos, job_status, ledger_pages
from bench.chaos.processes import GRACE_SECONDS


async def kill_consumer_replicas(chaos: Chaos) -> None:
    """kill -9 of a random tableinator or graphinator replica at random moments, each
    restarted at once by the runner; the other replicas go on, the victim's unacked pages
    are redelivered and upserted again."""
    run = chaos.run
    await chaos.until(0.02)
    while len(chaos.monitor.faults) < chaos.faults and not chaos.complete():
        await chaos.pause(0.2, 1.0)
        victim = chaos.rng.choice(run.consumers)
        if not victim.alive:
            continue
        victim.kill()
        chaos.monitor.fault("kill -9", victim.name)
        victim.start()
    chaos.figures["kills_by_service"] = {s.name: s.exit_codes.count(-9) for s in run.consumers}


async def kill_extractor_and_resume(chaos: Chaos) -> None:
    """kill -9 of the extractor at random moments while it fetches, then ``extractor resume``:
    every slice goes on from its last confirmed page, so the source is asked again for at
    most the pages in flight at each kill."""
    run = chaos.run
    extractor = run.extractor
    assert extractor is not None
    before = await run.ctx.demo_requests()
    while len(chaos.monitor.faults) < chaos.faults:
        pages = await ledger_pages(run)
        await _wait_pages(chaos, pages + chaos.rng.randint(5, 40))
        if not extractor.alive or await job_status(run) == "done":
            break
        extractor.kill()
        chaos.monitor.fault("kill -9", "extractor")
        extractor.start(run.resume_args())
    code = await extractor.wait(900)
    after = await run.ctx.demo_requests()
    served = after.get("200", 0) - before.get("200", 0)
    in_flight = int(run.settings.get("EXTRACTOR_MAX_IN_FLIGHT", "64"))
    kills = len(chaos.monitor.faults)
    chaos.figures.update(
        requests=served,
        reference_requests=chaos.reference.requests,
        refetched=served - chaos.reference.requests,
        refetch_bound=kills * in_flight,
        resume_exit=code,
    )


async def _wait_pages(chaos: Chaos, target: int) -> None:
    """Until the ledger has confirmed ``target`` pages (or the extractor is gone)."""
    extractor = chaos.run.extractor
    assert extractor is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 120
    while extractor.alive and loop.time() < deadline:  # the ledger is polled: no event to wait on
        if await ledger_pages(chaos.run) >= target:
            return
        await asyncio.sleep(0.05)


async def sigterm_everything(chaos: Chaos) -> None:
    """SIGTERM to every service at once, mid-job: each must drain (flush, ack what
    committed, hand back its slices) and exit 0 within its grace period; then all are
    started again and the job completes. The extractor here is ``extractor worker``."""
    run = chaos.run
    rounds, codes, drain_seconds = 0, [], []
    per_round = len(run.services)
    while rounds == 0 or len(chaos.monitor.faults) + per_round <= chaos.faults:
        await chaos.until(0.15 + 0.3 * rounds)
        if chaos.complete():
            break
        services = run.services
        started = time.monotonic()
        results = await asyncio.gather(*(s.terminate(GRACE_SECONDS) for s in services))
        drain_seconds.append(round(time.monotonic() - started, 2))
        for service, code in zip(services, results, strict=True):
            chaos.monitor.fault("SIGTERM", service.name, started)
            codes.append({"service": service.name, "exit": code})
        for service in services:
            service.start()
        rounds += 1
    chaos.figures.update(
        rounds=rounds,
        exits=codes,
        all_exited_0=all(c["exit"] == 0 for c in codes),
        drain_seconds=drain_seconds,
    )
