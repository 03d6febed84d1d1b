"""What a person chooses per run (the rest comes from settings and the spec)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class JobOptions:
    start: dt.date | dt.datetime | None = None
    end: dt.date | dt.datetime | None = None
    wait: bool = True
    wait_timeout: float = 3600.0
    job_id: str | None = None
    local_workers: bool = True  # False: only enqueue; `extractor worker` processes do the work
    estimate: bool = True  # estimate the job's size first (count endpoint or sampling)
    all_files: bool = False  # dumps: every file a glob matches, not only the newest dump date
    stores: tuple[str, ...] | None = None  # consumers to publish to (None: the spec's or all)
    since_last: bool = False  # start where the ledger's complete coverage ends (incremental)
    lookback: dt.timedelta = dt.timedelta()  # with since_last: start this much earlier
