"""Which stores (consumers) a job publishes to, waits on and reports.

Chosen once, when the job is planned: ``extractor run --stores``, else the spec's
``stores:``, else every consumer in AMQP_CONSUMERS. A narrower choice is kept in the job's
options, so a resume or another worker publishes to the same ones, each page to those
stores' queues alone (``common.topology.Route``). A job to every store (and any job planned
before stores could be chosen) publishes by ``dataset.entity`` to every queue bound to it.
"""

from __future__ import annotations

from typing import Any

from common.errors import ConfigError
from common.spec import DatasetSpec
from common.topology import Route, Topology, consumes


def choose_stores(
    configured: list[str], spec: DatasetSpec, requested: list[str] | None
) -> list[str]:
    """The stores of a new job, checked against AMQP_CONSUMERS and the spec's mappings."""
    chosen = list(dict.fromkeys(requested or spec.stores or configured))
    unknown = [store for store in chosen if store not in configured]
    if unknown:
        raise ConfigError(
            f"stores {', '.join(unknown)}: not among AMQP_CONSUMERS ({', '.join(configured)})"
        )
    for store in chosen:
        if not any(consumes(store, entity) for entity in spec.entities.values()):
            raise ConfigError(
                f"store {store}: no entity of dataset {spec.name} maps to it"
                " (a table for tableinator, a graph for graphinator)"
            )
    return chosen


def job_stores(options: dict[str, Any], configured: list[str]) -> list[str]:
    """The consumers a job's pages go to (a job from before stores: every configured one)."""
    stores = options.get("stores")
    return list(stores) if stores else configured


def job_routes(
    spec: DatasetSpec, options: dict[str, Any], pairs: list[tuple[str, str]]
) -> dict[str, Route]:
    """Per entity, where its pages go: to the job's stores' queues (``pairs``) only."""
    if not options.get("stores"):
        return {name: Route(Topology.routing_key(spec.name, name)) for name in spec.entities}
    return Topology.routes(spec.name, pairs)


def routed_entities(spec: DatasetSpec, stores: list[str]) -> set[str]:
    """The entities some chosen store takes (the others are not fetched at all), and the
    parents of those that are detail entities; with no consumer configured (AMQP_CONSUMERS
    empty: queues bound by hand), every entity."""
    if not stores:
        return set(spec.entities)
    routed = {
        name
        for name, entity in spec.entities.items()
        if any(consumes(store, entity) for store in stores)
    }
    parents = {e.parent.entity for n, e in spec.entities.items() if e.parent and n in routed}
    return routed | parents
