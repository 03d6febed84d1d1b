"""A demo replay-search API shaped like Pokémon Showdown's, so backfills need no outside service."""

from demoapi.app import build_app, serve_demo_api, start_demo_api
from demoapi.dataset import Dataset
from demoapi.faults import Faults
from demoapi.replays import PlayerRecord, ReplayRecord
from demoapi.settings import DemoApiSettings

__all__ = [
    "Dataset",
    "DemoApiSettings",
    "Faults",
    "PlayerRecord",
    "ReplayRecord",
    "build_app",
    "serve_demo_api",
    "start_demo_api",
]
