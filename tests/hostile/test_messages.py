"""Hostile messages to both real consumers: each ends in its dead-letter queue with a reason
(or lands, where the data is legal), the consumers stay up, and good pages after them land.

tests/test_dead_letters.py covers a body that is not JSON and an unknown version, and
tests/tableinator/test_sink.py the keyless, NUL and uncastable records in PostgreSQL; this
file covers the rest, in both stores.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import psycopg
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from neo4j import AsyncDriver

from common.envelope import EndOfJob, PageBatch, encode
from common.topology import Topology
from tests.support.broker import get_all
from tests.support.pipeline import finalised_events, running_consumers

LIMIT = 1024 * 1024  # MAX_MESSAGE_BYTES of both consumers in this test
CONSUMERS = ("tableinator", "graphinator")


def replay(key: Any, **fields: Any) -> dict[str, Any]:
    return {"id": key, "format": "gen9ou", "uploadtime": 1_700_000_000, **fields}


def page_body(namespace: str, number: int, items: list[Any], /, **override: Any) -> bytes:
    body = orjson.loads(encode(PageBatch("hostile", namespace, "replays", "s", number, items)))
    body.update(override)
    return orjson.dumps({k: v for k, v in body.items() if v is not None})


def records_body(namespace: str) -> bytes:
    """The page of hostile records; one nested deeper than orjson will serialise a record
    (it parses 1024 levels, but writes only 254)."""
    body = page_body(namespace, 10, hostile_records())
    return body.replace(DEEP, b'{"n":' * 300 + b"1" + b"}" * 300)


def whole_messages(ns: str) -> dict[str, tuple[bytes, str]]:
    """message id -> (body, the error code both consumers must give it)."""
    valid = page_body(ns, 90, [replay("never")])
    return {
        "missing-field": (page_body(ns, 1, [replay("x")], entity=None), "bad_envelope"),
        "records-not-a-list": (page_body(ns, 2, [], records={"id": "x"}), "bad_envelope"),
        "page-is-bool": (page_body(ns, 3, [], page=True), "bad_envelope"),
        "page-beyond-uint64": (  # orjson reads it as a float
            page_body(ns, 4, [], page=-4).replace(b'"page":-4', b'"page":%d' % 2**64),
            "bad_envelope",
        ),
        "version-true": (page_body(ns, 5, [], v=True), "bad_version"),
        "version-float": (page_body(ns, 6, [], v=1.0), "bad_version"),
        "end-count-is-text": (
            orjson.dumps(
                {"type": "end_of_job", "v": 1, "job_id": "hostile", "dataset": ns}
                | {"entity": "replays", "pages": 1, "records": "10"}
            ),
            "bad_envelope",
        ),
        "null": (b"null", "bad_envelope"),
        "empty": (b"", "not_json"),
        "nested-3000": (b"[" * 3000 + b"]" * 3000, "not_json"),
        "raw-control-character": (valid.replace(b'"never"', b'"ne\x01ver"'), "not_json"),
        "invalid-utf8": (valid.replace(b'"never"', b'"ne\xff\xfever"'), "not_json"),
        "lone-surrogate": (valid.replace(b'"never"', b'"\\ud800"'), "not_json"),
        "over-the-limit": (page_body(ns, 7, [replay("big", blob="x" * 2 * LIMIT)]), "too_large"),
        "fifty-megabytes": (page_body(ns, 8, [replay("huge", blob="y" * 50_000_000)]), "too_large"),
    }


RECORDS = "hostile/s/10"  # the page's message id: job/slice/page
DEEP = b'"__deep__"'
TOO_LONG_KEY = secrets.token_hex(8_000)  # 16 kB: beyond both stores' index key limits


def hostile_records() -> list[Any]:
    """One page: bad records the consumers dead-letter alone, and legal but odd ones."""
    return [
        replay("ok-1"),
        {"format": "no key"},  # 1: no key
        replay(None),  # 2: null key
        replay({"a": 1}),  # 3: key of the wrong type
        "a string, not an object",  # 4
        replay("deep", extra=DEEP.decode().strip('"')),  # 5: nested 300 deep, see records_body
        replay("nul", winner="a\x00b"),  # 6: PostgreSQL refuses U+0000, Neo4j stores it
        replay("controls", winner="".join(map(chr, range(1, 32))) + "\x7f\u2028"),
        replay("types", rating="high", turns=[1, "two", None], uploadtime=1.5e300),  # 8
        replay(TOO_LONG_KEY),
        replay("ok-2"),
    ]


EXPECTED_RECORDS = {
    # (consumer, index in the page or None for a record the store refused) -> code
    "tableinator": {
        1: "bad_key",
        2: "bad_key",
        3: "bad_key",
        4: "bad_record",
        5: "bad_record",
    },
    "graphinator": {1: "bad_key", 2: "bad_key", 3: "bad_key", 4: "bad_record", 5: "bad_record"},
}
# Keys of the records the store itself refused (the batch is split until they are found):
# a key too long for either store's unique index; text in PostgreSQL's integer columns.
REFUSED = {"tableinator": {TOO_LONG_KEY, "types"}, "graphinator": {TOO_LONG_KEY}}
# Keys of the records a sink left out of its write because the store can never hold them.
LEFT_OUT = {"tableinator": {"nul_character": {"nul"}}, "graphinator": {}}


async def publish(channel: AbstractChannel, namespace: str, body: bytes, mid: str) -> None:
    exchange = await Topology().declare_exchanges(channel)
    await exchange.publish(
        aio_pika.Message(body, message_id=mid, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
        routing_key=Topology.routing_key(namespace, "replays"),
    )


def by_reason(dead: list[AbstractIncomingMessage]) -> dict[str, str]:
    return {str(m.headers["x-original-message-id"]): str(m.headers["x-error-code"]) for m in dead}


async def test_hostile_messages_are_dead_lettered_and_the_queue_moves_on(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    neo4j_driver: AsyncDriver,
    amqp: AbstractChannel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POSTGRES_MAX_MESSAGE_BYTES", str(LIMIT))
    monkeypatch.setenv("NEO4J_MAX_MESSAGE_BYTES", str(LIMIT))
    hostile = whole_messages(namespace)
    good = [[replay(f"good-{page}-{i}") for i in range(20)] for page in range(2)]
    async with (
        finalised_events(namespace) as next_event,
        running_consumers(demo_spec_file, namespace),
    ):
        await asyncio.sleep(0.5)  # the consumers declare their queues
        for mid, (body, _) in hostile.items():
            await publish(amqp, namespace, body, mid)
        await publish(amqp, namespace, records_body(namespace), "records")
        for number, records in enumerate(good, start=11):
            await publish(amqp, namespace, page_body(namespace, number, records), f"good-{number}")
        end = EndOfJob("hostile", namespace, "replays", pages=3, records=51)
        await publish(amqp, namespace, encode(end), end.message_id)
        events = {(await next_event(60))["service"] for _ in CONSUMERS}
    assert events == set(CONSUMERS)  # both finalised: nothing before the end got stuck

    for consumer in CONSUMERS:
        dlq = Topology.dead_letter_queue_name(consumer, namespace, "replays")
        expected_records = EXPECTED_RECORDS[consumer]
        refused_keys = REFUSED[consumer]
        left_out = LEFT_OUT[consumer]
        total = len(hostile) + len(expected_records) + len(refused_keys)
        total += sum(len(keys) for keys in left_out.values())
        dead = await get_all(amqp, dlq, total, 30)
        reasons = by_reason(dead)
        for mid, (_, code) in hostile.items():
            assert reasons.get(mid) == code, (consumer, mid, reasons.get(mid))
        for index, code in expected_records.items():
            assert reasons.get(f"{RECORDS}#{index}") == code, (consumer, index)
        refused = [m for m in dead if m.headers["x-error-code"] == "rejected_by_store"]
        assert {orjson.loads(m.body)["record"]["id"] for m in refused} == refused_keys
        for code, keys in left_out.items():
            out = [m for m in dead if m.headers["x-error-code"] == code]
            assert {orjson.loads(m.body)["record"]["id"] for m in out} == keys, code
        assert len(dead) == total, consumer
        too_large = next(m for m in dead if m.headers["x-original-message-id"] == "over-the-limit")
        assert f"exceeds {LIMIT}" in str(too_large.headers["x-reason"])

    await check_landed(pg, neo4j_driver, namespace)


async def check_landed(pg: psycopg.AsyncConnection[Any], driver: AsyncDriver, ns: str) -> None:
    legal = {"ok-1", "ok-2", "controls"}
    good = {f"good-{page}-{i}" for page in range(2) for i in range(20)}
    cur = await pg.execute(f'SELECT key, doc FROM "{ns}".replays')
    table = {key: doc for key, doc in await cur.fetchall()}
    assert set(table) == good | legal  # not "types": text in an integer column
    assert table["controls"]["winner"] == "".join(map(chr, range(1, 32))) + "\x7f\u2028"
    async with driver.session() as session:
        result = await session.run("MATCH (n:Replay) RETURN n.id AS id, n.winner AS winner")
        nodes = {record["id"]: record["winner"] async for record in result}
    assert set(nodes) == good | legal | {"nul", "types"}
    assert nodes["nul"] == "a\x00b"
    assert nodes["controls"] == table["controls"]["winner"]
