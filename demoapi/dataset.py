"""The generated replay dataset behind the demo API: a compact index, records on demand."""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections.abc import Sequence

from demoapi.catalog import FORMATS
from demoapi.players import build_player_pool, to_userid
from demoapi.replays import MAX_REPLAYS, ReplayBuilder, ReplayRecord
from demoapi.timeline import build_timeline

DEFAULT_END = 1_767_225_600  # 2026-01-01T00:00:00Z
MIN_PLAYERS = 50
REPLAYS_PER_PLAYER = 20
_FORMAT_BY_ID = {fmt.id: code for code, fmt in enumerate(FORMATS)}


def _format_codes(size: int, seed: int) -> bytearray:
    """Draw each replay's format (an index into FORMATS) by popularity."""
    rng = random.Random(f"{seed}:formats")
    weights = [fmt.weight for fmt in FORMATS]
    return bytearray(rng.choices(range(len(FORMATS)), weights, k=size))


class Dataset:
    """`size` replays over `days` days ending at `end`; index 0 is the newest.

    ``tie_seconds`` > 1 rounds upload times down to multiples of it, so that many replays
    share a timestamp (ties at page boundaries, as on real search APIs).

    Only upload times (8 bytes each), format codes (1 byte each) and the player pool are
    kept; records are rebuilt from (seed, index) whenever a page asks for them.
    """

    def __init__(
        self,
        size: int = 100_000,
        seed: int = 7,
        days: int = 30,
        end: int = DEFAULT_END,
        tie_seconds: int = 1,
    ) -> None:
        if days < 1:
            raise ValueError(f"days must be at least 1, got {days}")
        if not 1 <= size <= min(days * 86_400, MAX_REPLAYS):
            raise ValueError(f"size must be between 1 and one replay per second, got {size}")
        self.size, self.seed, self.days, self.end = size, seed, days, end
        if tie_seconds < 1:
            raise ValueError(f"tie_seconds must be at least 1, got {tie_seconds}")
        self._times = build_timeline(size, seed, days, end)
        if tie_seconds > 1:  # upload times rounded down: many replays share one
            self._times = array("q", (t - t % tie_seconds for t in self._times))
        self._codes = _format_codes(size, seed)
        self._builder = ReplayBuilder(seed, build_player_pool(self.player_count, seed))
        self._format_indexes: dict[int, array[int]] = {}

    @property
    def player_count(self) -> int:
        """How many distinct players the replays are drawn between."""
        return max(MIN_PLAYERS, self.size // REPLAYS_PER_PLAYER)

    @property
    def newest(self) -> int:
        """Upload time of replay 0."""
        return self._times[-1]

    @property
    def oldest(self) -> int:
        """Upload time of the last replay."""
        return self._times[0]

    @property
    def formats(self) -> tuple[str, ...]:
        """Every format id a replay can have."""
        return tuple(fmt.id for fmt in FORMATS)

    def uploadtime(self, index: int) -> int:
        """Upload time of the replay at newest-first `index`."""
        return self._times[self.size - 1 - index]

    def record(self, index: int) -> ReplayRecord:
        """Build the replay at newest-first `index`."""
        age_rank = self.size - 1 - index
        fmt = FORMATS[self._codes[index]]
        return self._builder.build(index, age_rank, self._times[age_rank], fmt)

    def records(self, indexes: Sequence[int]) -> list[ReplayRecord]:
        """Build the replays at the given indexes, in order."""
        return [self.record(index) for index in indexes]

    def first_index_before(self, before: int | None) -> int:
        """Index of the newest replay uploaded strictly before `before` (size if none)."""
        if before is None:
            return 0
        return self.size - bisect_left(self._times, before)

    def page_indexes(self, before: int | None, fmt: str | None, limit: int) -> Sequence[int]:
        """Indexes of up to `limit` replays uploaded before `before`, newest first."""
        start = self.first_index_before(before)
        if fmt is None:
            return range(start, min(self.size, start + limit))
        index = self.format_index(fmt)
        position = bisect_left(index, start)
        return index[position : position + limit]

    def window(self, after: int | None, before: int | None) -> range:
        """Newest-first indexes of the replays with after <= uploadtime < before."""
        start = self.first_index_before(before)
        stop = self.size if after is None else self.first_index_before(after)
        return range(start, max(start, stop))

    def count(self, before: int | None, after: int | None, fmt: str | None = None) -> int:
        """How many replays have after <= uploadtime < before (open ends when None)."""
        start = self.first_index_before(before)
        stop = self.size if after is None else self.first_index_before(after)
        if stop <= start:
            return 0
        if fmt is None:
            return stop - start
        index = self.format_index(fmt)
        return bisect_left(index, stop) - bisect_left(index, start)

    def format_index(self, fmt: str) -> array[int]:
        """Newest-first indexes of the replays in format `fmt`, built on first use."""
        code = _FORMAT_BY_ID.get(to_userid(fmt))
        if code is None:
            return array("q")
        if code not in self._format_indexes:
            self._format_indexes[code] = _positions_of(self._codes, code)
        return self._format_indexes[code]


def _positions_of(codes: bytearray, code: int) -> array[int]:
    """Every position in `codes` holding `code`, ascending."""
    positions = array("q")
    needle = bytes((code,))
    position = codes.find(needle)
    while position != -1:
        positions.append(position)
        position = codes.find(needle, position + 1)
    return positions
