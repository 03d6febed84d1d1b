"""The suite's scenarios by name: the function that injects the faults and how its run is set up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench.chaos.harness import Chaos
from bench.chaos.held_back import sigterm_while_held_back
from bench.chaos.kills import kill_consumer_replicas, kill_extractor_and_resume, sigterm_everything
from bench.chaos.network import network_faults, slow_store
from bench.chaos.outages import restart_neo4j, restart_postgres, restart_rabbitmq


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[Chaos], Awaitable[None]]
    faults: int  # faults the full suite injects
    proxied: bool = False  # processes reach the servers through Toxiproxy
    worker: bool = False  # the extractor is `run --enqueue-only` + `extractor worker`
    direct_ledger: bool = False  # only the consumers go through the proxies
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def about(self) -> str:
        doc = self.inject.__doc__ or ""
        return " ".join(doc.split())


SCENARIOS = (
    Scenario("kill_consumer_replicas", kill_consumer_replicas, 50),
    Scenario(
        "kill_extractor_and_resume",
        kill_extractor_and_resume,
        8,
        settings={"EXTRACTOR_MAX_IN_FLIGHT": "8"},
    ),
    Scenario("restart_rabbitmq", restart_rabbitmq, 1),
    Scenario("restart_postgres", restart_postgres, 1),
    Scenario("restart_neo4j", restart_neo4j, 1),
    Scenario("network_faults", network_faults, 40, proxied=True),
    Scenario(
        "slow_store",
        slow_store,
        2,
        proxied=True,
        direct_ledger=True,
        # Small prefetch and batches: the consumers hold little, so pages wait in the queues.
        settings={
            "EXTRACTOR_MAX_QUEUE_DEPTH": "100",
            "POSTGRES_PREFETCH": "20",
            "NEO4J_PREFETCH": "20",
            "POSTGRES_BATCH_SIZE": "500",
            "NEO4J_BATCH_SIZE": "500",
        },
    ),
    Scenario("sigterm_everything", sigterm_everything, 15, worker=True),
    Scenario(
        "sigterm_while_held_back",
        sigterm_while_held_back,
        3,
        settings={"EXTRACTOR_MAX_QUEUE_DEPTH": "20"},
    ),
)
BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
