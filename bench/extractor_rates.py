"""Rates against a token bucket: what the API allowed over a window, and what a path got.

The demo API admits ``R`` requests/s from a bucket of ``R`` tokens that is full when the
server starts (``demoapi.faults.TokenBucket``). A fresh server per measurement, idle until
the measurement starts, therefore allows at most ``R + R * T`` requests in a window of ``T``
seconds: one second of burst plus the refill. That is the *allowed* figure; the *achieved*
one is the data requests it answered 200 inside the window (the estimate's count requests
included: they spend the same quota).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.extractor_api import DemoApi

OK = 200
THROTTLED = 429


def allowed_requests(rate: float, seconds: float) -> float:
    """The most a full bucket of ``rate`` tokens refilled at ``rate``/s admits in ``seconds``."""
    return math.floor(max(1.0, rate) + rate * seconds)


@dataclass
class RequestWindow:
    """One measured path: its window, its pages and records, and the API's answers in it."""

    label: str
    started: float
    ended: float
    rate_limit: float
    pages: int
    records: int
    statuses: dict[int, int]
    arrivals: list[tuple[float, int]] = field(repr=False)
    peak_rss_mib: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_timeline(
        cls,
        label: str,
        timeline: list[tuple[float, int]],
        started: float,
        ended: float,
        api: DemoApi,
        *,
        pages: int,
        records: int,
        peak_rss_mib: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> RequestWindow:
        inside = [(t - started, s) for t, s in timeline if started <= t <= ended]
        return cls(
            label=label,
            started=started,
            ended=ended,
            rate_limit=api.rate_limit,
            pages=pages,
            records=records,
            statuses=dict(Counter(s for _, s in inside)),
            arrivals=inside,
            peak_rss_mib=peak_rss_mib,
            details={"latency_ms": api.latency_ms, "api_size": api.size, **(details or {})},
        )

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def ok(self) -> int:
        return self.statuses.get(OK, 0)

    @property
    def throttled(self) -> int:
        return self.statuses.get(THROTTLED, 0)

    @property
    def allowed(self) -> float:
        return allowed_requests(self.rate_limit, self.seconds)

    @property
    def share_of_allowed(self) -> float:
        """Requests answered 200 over what the bucket could have admitted in the window."""
        return self.ok / self.allowed if self.rate_limit > 0 else 0.0

    def busy_window(self) -> tuple[float, float]:
        """Seconds from the window's start to its first and to its last data request."""
        if not self.arrivals:
            return 0.0, 0.0
        return self.arrivals[0][0], self.arrivals[-1][0]

    def steady_share(self) -> float:
        """Requests answered 200 per second between the first and the last request, over R.

        The bucket's burst left out: how close the path runs to the sustained limit while
        it is fetching, start-up and the job's tail excluded.
        """
        first, last = self.busy_window()
        if self.rate_limit <= 0 or last <= first:
            return 0.0
        return self.ok / (self.rate_limit * (last - first))

    def per_second(self, status: int) -> list[int]:
        """Requests with ``status`` in each whole second of the window."""
        bins = [0] * (math.ceil(self.seconds) or 1)
        for offset, answered in self.arrivals:
            if answered == status:
                bins[min(len(bins) - 1, int(offset))] += 1
        return bins

    def as_dict(self) -> dict[str, Any]:
        first, last = self.busy_window()
        return {
            "label": self.label,
            "seconds": round(self.seconds, 3),
            "pages": self.pages,
            "records": self.records,
            "pages_per_second": round(self.pages / self.seconds, 2),
            "records_per_second": round(self.records / self.seconds, 1),
            "rate_limit": self.rate_limit,
            "allowed_requests": self.allowed,
            "requests_ok": self.ok,
            "requests_throttled": self.throttled,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "share_of_allowed": round(self.share_of_allowed, 4),
            "first_request_after_seconds": round(first, 3),
            "last_request_after_seconds": round(last, 3),
            "steady_share_of_rate": round(self.steady_share(), 4),
            "ok_per_second": self.per_second(OK),
            "throttled_per_second": self.per_second(THROTTLED),
            "peak_rss_mib": None if self.peak_rss_mib is None else round(self.peak_rss_mib, 1),
            "details": self.details,
        }


async def observed(
    api: DemoApi,
    label: str,
    window: tuple[float, float],
    pages: int,
    records: int,
    *,
    peak_rss_mib: float | None = None,
    details: dict[str, Any],
) -> RequestWindow:
    """What the API saw of a path in ``window`` (wall-clock start and end), with its
    counts by status beside the path's own ``details``."""
    stats = await api.stats()
    started, ended = window
    return RequestWindow.from_timeline(
        label,
        await api.timeline(),
        started,
        ended,
        api,
        pages=pages,
        records=records,
        peak_rss_mib=peak_rss_mib,
        details={**details, "api_stats": stats},
    )
