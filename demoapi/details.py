"""A replay's detail by id, ``/replays/{id}.json``: what the search lists, fetched again in
full (its log of turns), as real APIs serve an item found by a search.

``detail_missing_every`` N answers 404 for every Nth replay by age (its battle number), a
detail deleted since the search listed it. Requests are counted per id for
``/detail-stats.json``, so a test can tell a detail fetched twice.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from demoapi.dataset import Dataset
from demoapi.http import DATASET, INJECTOR, json_response
from demoapi.replays import BATTLE_NUMBER_STRIDE, FIRST_BATTLE_NUMBER, ReplayRecord

DETAIL_PREFIX = "/replays/"
DETAIL_ROUTE = DETAIL_PREFIX + "{replay_id}.json"
DETAIL_REQUESTS = web.AppKey("detail_requests", Counter[str])
LOG_TURNS = 3  # turns of a replay's log in its detail


def age_rank(replay_id: str) -> int | None:
    """The replay's rank from the oldest, read from its id (``format-number``)."""
    _, _, number = replay_id.rpartition("-")
    if not number.isdigit() or int(number) < FIRST_BATTLE_NUMBER:
        return None
    return (int(number) - FIRST_BATTLE_NUMBER) // BATTLE_NUMBER_STRIDE


def detail_missing(replay_id: str, every: int) -> bool:
    """Whether the knob makes this replay's detail answer 404."""
    rank = age_rank(replay_id)
    return every > 0 and rank is not None and rank % every == 0


def find_replay(dataset: Dataset, replay_id: str) -> ReplayRecord | None:
    rank = age_rank(replay_id)
    if rank is None or rank >= dataset.size:
        return None
    record = dataset.record(dataset.size - 1 - rank)
    return record if record["id"] == replay_id else None


def replay_detail(replay: ReplayRecord) -> dict[str, Any]:
    """The detail of a replay, derived from it alone: its players' first turns."""
    players = replay["players"]
    log = [
        {"turn": turn, "player": players[(turn - 1) % len(players)]["userid"]}
        for turn in range(1, min(replay["turns"], LOG_TURNS) + 1)
    ]
    return {
        "id": replay["id"],
        "replay_id": replay["id"],
        "uploadtime": replay["uploadtime"],
        "turns": replay["turns"],
        "winner": replay["winner"],
        "log": log,
    }


async def detail(request: web.Request) -> web.Response:
    """One replay's detail; 404 for an unknown id or one the knob makes missing."""
    replay_id = request.match_info["replay_id"]
    request.app[DETAIL_REQUESTS][replay_id] += 1
    replay = find_replay(request.app[DATASET], replay_id)
    if replay is None or detail_missing(
        replay_id, request.app[INJECTOR].faults.detail_missing_every
    ):
        return json_response({"error": f"no replay {replay_id}"}, status=404)
    return json_response(replay_detail(replay))


async def detail_stats(request: web.Request) -> web.Response:
    """Detail requests so far: in all, distinct ids, and requests repeating an id."""
    counts = request.app[DETAIL_REQUESTS]
    total = sum(counts.values())
    return json_response(
        {"requests": total, "distinct": len(counts), "repeated": total - len(counts)}
    )
