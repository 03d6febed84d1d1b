"""Scenarios 4 and 5: network faults through Toxiproxy, and a slow store.

Every process of these runs reaches RabbitMQ, PostgreSQL and Neo4j through one proxy per
server, so a toxic hits the consumers, the extractor's publishing and its ledger alike.
"""

from __future__ import annotations

import time
from typing import Any

from bench.chaos.harness import Chaos
from bench.chaos.toxiproxy import UPSTREAMS

SLOW_MS = 1000
# (toxic type, stream, attributes): https://github.com/Shopify/toxiproxy#toxics
TOXICS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "latency": ("latency", "downstream", {"latency": 400, "jitter": 200}),
    "reset_peer": ("reset_peer", "upstream", {"timeout": 0}),
    # No data passes, then the connection is closed: a hung connection, for 2.5 s.
    "timeout": ("timeout", "upstream", {"timeout": 2500}),
    "bandwidth": ("bandwidth", "downstream", {"rate": 32}),  # KB/s
}


async def network_faults(chaos: Chaos) -> None:
    """Latency, connection resets, hung connections and bandwidth limits, one at a time on
    a random server's proxy for 0.2-1 s each, while the job runs."""
    proxy = chaos.proxy
    assert proxy is not None
    await chaos.until(0.02)
    kinds: dict[str, int] = {}
    while len(chaos.monitor.faults) < chaos.faults and not chaos.complete():
        upstream = chaos.rng.choice(UPSTREAMS).name
        kind = chaos.rng.choice(sorted(TOXICS))
        toxic, stream, attributes = TOXICS[kind]
        started = time.monotonic()
        await proxy.add_toxic(upstream, "chaos", toxic, attributes, stream)
        await chaos.pause(0.2, 1.0)
        await proxy.remove_toxic(upstream, "chaos")
        chaos.monitor.fault(kind, upstream, started)
        kinds[f"{kind}:{upstream}"] = kinds.get(f"{kind}:{upstream}", 0) + 1
        await chaos.pause(0.05, 0.3)
    chaos.figures["toxics"] = kinds


async def slow_store(chaos: Chaos) -> None:
    """Both stores slowed for the consumers (1 s latency on their proxies; the extractor's
    ledger is not slowed) for the first 20 s of the job, so the queues grow: the extractor
    must hold at EXTRACTOR_MAX_QUEUE_DEPTH rather than fill RabbitMQ. Peak queue depth and
    every process's peak RSS are reported."""
    proxy = chaos.proxy
    assert proxy is not None
    slow = ("postgres", "neo4j")
    started = time.monotonic()
    for upstream in slow:
        await proxy.add_toxic(upstream, "slow", "latency", {"latency": SLOW_MS}, "downstream")
    await chaos.pause(20.0, 20.0)
    for upstream in slow:
        await proxy.remove_toxic(upstream, "slow")
        chaos.monitor.fault(f"slow store (latency {SLOW_MS} ms)", upstream, started)
    chaos.figures["max_queue_depth_setting"] = int(
        chaos.run.settings.get("EXTRACTOR_MAX_QUEUE_DEPTH", "0")
    )
    extractor = chaos.run.extractor
    assert extractor is not None
    log = extractor.log.read_text(errors="replace")
    # One WARNING as each hold begins (and every 30 s while it lasts).
    chaos.figures["extractor_waited"] = log.count("fetching held back by queue")
