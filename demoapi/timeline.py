"""Upload times for the demo dataset: unique seconds whose density follows the time of day."""

from __future__ import annotations

import math
import random
from array import array

SECONDS_PER_HOUR = 3600
HOURS_PER_DAY = 24
PEAK_HOUR_UTC = 20


def hour_weight(hour_start: int, rng: random.Random) -> float:
    """Relative traffic in the hour starting at `hour_start`: evening peak, busier weekends."""
    hour_of_day = (hour_start // SECONDS_PER_HOUR) % HOURS_PER_DAY
    daily = 1.0 + 0.6 * math.cos(2 * math.pi * (hour_of_day - PEAK_HOUR_UTC) / HOURS_PER_DAY)
    # 1970-01-01 was a Thursday, so days 2 and 3 of each week are Saturday and Sunday.
    weekend = 1.15 if (hour_start // 86_400) % 7 in (2, 3) else 1.0
    return daily * weekend * rng.uniform(0.85, 1.15)


def allocate_quotas(weights: list[float], total: int, cap: int) -> list[int]:
    """Split `total` over buckets in proportion to `weights`, no bucket above `cap`."""
    if total > cap * len(weights):
        raise ValueError(f"cannot place {total} items in {len(weights)} buckets of {cap}")
    weight_sum = sum(weights)
    quotas = [min(cap, math.floor(total * weight / weight_sum)) for weight in weights]
    leftover = total - sum(quotas)
    by_weight = sorted(range(len(weights)), key=weights.__getitem__, reverse=True)
    while leftover:
        for bucket in by_weight:
            if leftover and quotas[bucket] < cap:
                quotas[bucket] += 1
                leftover -= 1
    return quotas


def build_timeline(size: int, seed: int, days: int, end: int) -> array[int]:
    """Return `size` unique upload times in [end - days, end), sorted oldest first."""
    start = end - days * 86_400
    rng = random.Random(seed)
    hour_starts = range(start, end, SECONDS_PER_HOUR)
    weights = [hour_weight(hour_start, rng) for hour_start in hour_starts]
    quotas = allocate_quotas(weights, size, SECONDS_PER_HOUR)
    times = array("q")
    for hour_start, quota in zip(hour_starts, quotas, strict=True):
        offsets = sorted(rng.sample(range(SECONDS_PER_HOUR), quota))
        times.extend(hour_start + offset for offset in offsets)
    return times
