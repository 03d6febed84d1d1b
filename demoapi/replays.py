"""Builds one demo replay record from its index alone, so any page costs O(page size)."""

import hashlib
import struct
from collections.abc import Sequence
from statistics import NormalDist
from typing import TypedDict

from demoapi.catalog import BattleFormat
from demoapi.players import PlayerPool

FIRST_BATTLE_NUMBER = 2_000_000_000
BATTLE_NUMBER_STRIDE = 37
MAX_REPLAYS = (9_999_999_999 - FIRST_BATTLE_NUMBER) // BATTLE_NUMBER_STRIDE
SIDES = ("p1", "p2", "p3", "p4")
_TABLE_SIZE = 4096
_TABLE_MASK = _TABLE_SIZE - 1
_WORDS = struct.Struct("<8I")


class PlayerRecord(TypedDict):
    """One side of a replay as the search API lists it."""

    name: str
    userid: str
    side: str
    rating: int | None


class ReplayRecord(TypedDict):
    """One replay as the search API lists it."""

    id: str
    format: str
    formatname: str
    uploadtime: int
    rating: int | None
    private: bool
    players: list[PlayerRecord]
    turns: int
    winner: str | None
    views: int


def _quantile_table(inverse_cdf: Sequence[float], low: int, high: int) -> tuple[int, ...]:
    return tuple(min(high, max(low, round(value))) for value in inverse_cdf)


def _midpoints() -> list[float]:
    return [(k + 0.5) / _TABLE_SIZE for k in range(_TABLE_SIZE)]


# Lookup tables turn 12 hash bits into a draw from each distribution: far cheaper than
# seeding a random.Random per record, which matters at tens of thousands of records/s.
_RATINGS = _quantile_table([NormalDist(1500, 230).inv_cdf(p) for p in _midpoints()], 1000, 2500)
_TURNS = _quantile_table([NormalDist(28, 12).inv_cdf(p) for p in _midpoints()], 1, 200)
_VIEWS = _quantile_table([3 * ((1 - p) ** (-1 / 1.3) - 1) for p in _midpoints()], 0, 1_000_000)


def distinct_picks(words: Sequence[int], population: int) -> list[int]:
    """Map each hash word to a member of range(population), probing past repeats."""
    picks: list[int] = []
    for word in words:
        pick = word % population
        while pick in picks:
            pick = (pick + 1) % population
        picks.append(pick)
    return picks


class ReplayBuilder:
    """Turns (index, upload time, format) into a replay record, deterministically per seed."""

    def __init__(self, seed: int, players: PlayerPool) -> None:
        self._key = hashlib.sha256(f"demoapi:{seed}".encode()).digest()
        self._names = players.names
        self._userids = players.userids

    def _words(self, index: int) -> tuple[int, ...]:
        """Hash the index into eight 32-bit words, each field drawing on its own bits.

        w0 w1 w6 w7: players; w2: two ratings (12 bits each), challenge byte; w3: turns,
        views, private byte; w4: tie byte, winner; w5: two more ratings, id jitter byte.
        """
        digest = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=32, key=self._key)
        return _WORDS.unpack(digest.digest())

    def build(self, index: int, age_rank: int, uploadtime: int, fmt: BattleFormat) -> ReplayRecord:
        """Build the replay at newest-first `index`; `age_rank` counts from the oldest."""
        w = self._words(index)
        # A challenge between two players is unrated even in a rated format.
        rated = fmt.rated and (w[2] >> 24) >= 8
        ratings = _side_ratings(w)[: fmt.players]
        picks = distinct_picks((w[0], w[1], w[6], w[7])[: fmt.players], len(self._names))
        players = [
            self._player(pick, side, ratings[side] if rated else None)
            for side, pick in enumerate(picks)
        ]
        number = FIRST_BATTLE_NUMBER + age_rank * BATTLE_NUMBER_STRIDE
        return {
            "id": f"{fmt.id}-{number + (w[5] >> 24) % BATTLE_NUMBER_STRIDE}",
            "format": fmt.id,
            "formatname": fmt.name,
            "uploadtime": uploadtime,
            "rating": sum(ratings) // len(ratings) if rated else None,
            "private": (w[3] >> 24) < 5,
            "players": players,
            "turns": _TURNS[w[3] & _TABLE_MASK],
            "winner": None if (w[4] & 0xFF) < 3 else players[(w[4] >> 8) % len(picks)]["userid"],
            "views": _VIEWS[(w[3] >> 12) & _TABLE_MASK],
        }

    def _player(self, pick: int, side: int, rating: int | None) -> PlayerRecord:
        return {
            "name": self._names[pick],
            "userid": self._userids[pick],
            "side": SIDES[side],
            "rating": rating,
        }


def _side_ratings(words: Sequence[int]) -> list[int]:
    """Draw up to four player ratings from two hash words, 12 bits each."""
    return [
        _RATINGS[words[2] & _TABLE_MASK],
        _RATINGS[(words[2] >> 12) & _TABLE_MASK],
        _RATINGS[words[5] & _TABLE_MASK],
        _RATINGS[(words[5] >> 12) & _TABLE_MASK],
    ]
