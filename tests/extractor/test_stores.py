"""Choosing a job's stores (pure logic): --stores over the spec's stores: over all."""

from __future__ import annotations

import pytest

from common.errors import ConfigError
from common.spec import load_spec
from common.topology import Route, Topology
from extractor.stores import choose_stores, job_routes, routed_entities

CONFIGURED = ["tableinator", "graphinator"]


def test_requested_over_the_spec_over_every_configured_store() -> None:
    spec = load_spec("demo")
    assert choose_stores(CONFIGURED, spec, None) == CONFIGURED
    narrowed = spec.model_copy(update={"stores": ["graphinator"]})
    assert choose_stores(CONFIGURED, narrowed, None) == ["graphinator"]
    assert choose_stores(CONFIGURED, narrowed, ["tableinator"]) == ["tableinator"]


def test_an_unknown_store_or_one_no_entity_maps_to_is_refused() -> None:
    spec = load_spec("demo")
    with pytest.raises(ConfigError, match=r"stores elastic: not among AMQP_CONSUMERS"):
        choose_stores(CONFIGURED, spec, ["elastic"])
    no_graph = spec.model_copy(
        update={
            "entities": {n: e.model_copy(update={"graph": None}) for n, e in spec.entities.items()}
        }
    )
    with pytest.raises(ConfigError, match="store graphinator: no entity of dataset demo maps"):
        choose_stores(CONFIGURED, no_graph, ["graphinator"])
    assert routed_entities(no_graph, ["tableinator"]) == set(spec.entities)
    assert routed_entities(no_graph, ["graphinator"]) == set()
    assert routed_entities(no_graph, []) == set(spec.entities)  # queues bound by hand


def test_a_narrowed_job_routes_to_its_stores_queues_and_a_full_one_broadcasts() -> None:
    spec = load_spec("demo")
    both = Topology.pairs(CONFIGURED, spec)
    assert job_routes(spec, {}, both) == {"replays": Route("demo.replays")}
    one = Topology.pairs(["tableinator"], spec)
    assert job_routes(spec, {"stores": ["tableinator"]}, one) == {
        "replays": Route("tableinator.demo.replays")
    }
    assert job_routes(spec, {"stores": CONFIGURED}, both)["replays"] == Route(
        "tableinator.demo.replays", {"CC": ["graphinator.demo.replays"]}
    )
