"""``extractor dlq``: list, show, replay (edited), purge, on the real RabbitMQ and PostgreSQL.

A record that fails the typed column's cast, one holding a NUL and a message that is not
JSON are dead-lettered by a real tableinator; the CLI lists them without taking them,
shows one raw, replays the edited record (it lands exactly once) and purges the rest.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import psycopg

from common.envelope import PageBatch, decode, encode
from common.topology import Topology
from extractor.dlq.queues import DeadLetter, DeadLetterQueue, Selection, replay_message
from tests.extractor.support import running_tableinator
from tests.support.broker import declare, depth

CONSUMER = "tableinator"


def record(key: str, **fields: Any) -> dict[str, Any]:
    return {"id": key, "format": "gen9ou", "uploadtime": 1_700_000_000, "rating": 1500, **fields}


def dlq_cli(spec: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATASET_SPEC=str(spec), AMQP_CONSUMERS=CONSUMER, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "extractor", "dlq", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def wait_for(check: Any, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.1)


async def rows(pg: psycopg.AsyncConnection[Any], namespace: str) -> dict[str, Any]:
    cur = await pg.execute(f'SELECT key, uploadtime FROM "{namespace}".replays')
    return dict(await cur.fetchall())


async def publish(channel: aio_pika.abc.AbstractChannel, namespace: str, body: bytes) -> None:
    exchange = await Topology().declare_exchanges(channel)
    message = aio_pika.Message(body, message_id="junk-1", delivery_mode=2)
    await exchange.publish(message, routing_key=Topology.routing_key(namespace, "replays"))


async def test_dead_letters_listed_shown_replayed_edited_and_purged(
    demo_spec_file: Path,
    namespace: str,
    pg: psycopg.AsyncConnection[Any],
    amqp: aio_pika.abc.AbstractChannel,
) -> None:
    dlq_name = Topology.dead_letter_queue_name(CONSUMER, namespace, "replays")
    good = [record(f"g{i}") for i in range(8)]
    page = [*good[:4], record("cast", uploadtime="not a number"), record("nul", winner="a\0b")]
    # Declared (and bound) before anything is published: a page published while the
    # consumer is still declaring its queues would be unroutable and dropped.
    await declare(amqp, CONSUMER, namespace)
    async with running_tableinator(demo_spec_file, namespace):
        await wait_for(lambda: _queue_exists(amqp, dlq_name))
        batch = PageBatch("job-a", namespace, "replays", "replays:2025-12-02", 3, page)
        await publish(amqp, namespace, encode(batch))
        await publish(amqp, namespace, b"{not json")
        rest = PageBatch("job-a", namespace, "replays", "replays:2025-12-02", 4, good[4:])
        await publish(amqp, namespace, encode(rest))
        await wait_for(lambda: _depth_is(amqp, dlq_name, 3))

        async def all_good_landed() -> bool:  # page 4 may be in a later flush
            return set(await rows(pg, namespace)) == {f"g{i}" for i in range(8)}

        await wait_for(all_good_landed)

        listed = dlq_cli(demo_spec_file, "list", "--json")
        assert listed.returncode == 0, listed.stderr
        groups = {g["code"]: g for g in orjson.loads(listed.stdout)}
        assert {code: g["count"] for code, g in groups.items()} == {
            "rejected_by_store": 1,
            "nul_character": 1,
            "not_json": 1,
        }
        assert "bigint" in groups["rejected_by_store"]["reason"]
        assert groups["nul_character"]["first_seen"] is not None
        assert await depth(amqp, dlq_name) == 3  # listing took nothing away
        again = orjson.loads(dlq_cli(demo_spec_file, "list", "--json").stdout)
        assert again == orjson.loads(listed.stdout)  # nor reordered anything

        cast_id = groups["rejected_by_store"]["example_id"]
        shown = dlq_cli(demo_spec_file, "show", "--id", cast_id, "--raw")
        assert shown.returncode == 0, shown.stderr
        fixed = {**orjson.loads(shown.stdout), "uploadtime": 1_700_000_123}
        edited = demo_spec_file.parent / "fixed.json"
        edited.write_bytes(orjson.dumps(fixed))
        replayed = dlq_cli(demo_spec_file, "replay", "--id", cast_id, "--from-file", str(edited))
        assert replayed.returncode == 0, replayed.stderr
        assert "1 dead letters replayed" in replayed.stdout

        async def landed() -> bool:
            return "cast" in await rows(pg, namespace)

        await wait_for(landed)
        assert await depth(amqp, dlq_name) == 2  # the other dead letters are untouched
        stored = await rows(pg, namespace)
        assert len(stored) == 9 and stored["cast"] == 1_700_000_123

        dry = dlq_cli(demo_spec_file, "purge", "--reason", "not_json")
        assert dry.returncode == 1 and "add --yes" in dry.stdout
        assert await depth(amqp, dlq_name) == 2
        purged = dlq_cli(demo_spec_file, "purge", "--reason", "not_json", "--yes")
        assert purged.returncode == 0 and "1 dead letters purged" in purged.stdout
        left = orjson.loads(dlq_cli(demo_spec_file, "list", "--json").stdout)
        assert [g["code"] for g in left] == ["nul_character"]
        assert dlq_cli(demo_spec_file, "replay").returncode != 0  # no selection: refused
        dlq_cli(demo_spec_file, "purge", "--all", "--yes")
        assert await depth(amqp, dlq_name) == 0
    assert len(await rows(pg, namespace)) == 9  # the replayed record landed exactly once


async def _queue_exists(channel: aio_pika.abc.AbstractChannel, name: str) -> bool:
    return (await _probe(name)) is not None


async def _depth_is(channel: aio_pika.abc.AbstractChannel, name: str, count: int) -> bool:
    return await _probe(name) == count


async def _probe(name: str) -> int | None:
    """A queue's depth, or None if it does not exist (a failed passive declare closes the
    channel, so each probe has its own connection)."""
    from common.settings import AmqpSettings

    connection = await aio_pika.connect(AmqpSettings().url)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            return None
        return queue.declaration_result.message_count or 0


def letter(kind: str, body: dict[str, Any], message_id: str = "m") -> DeadLetter:
    queue = DeadLetterQueue(CONSUMER, "replays", "q.dlq", "q")
    raw = orjson.dumps(body)
    return DeadLetter(queue, message_id, "rejected_by_store", "why", None, kind, raw, {})


def test_a_record_is_replayed_as_a_page_of_its_job_slice_and_page() -> None:
    wrapped = {"entity": "replays", "message_id": "job-1/files:a/b.jsonl/7#2", "record": {"id": 1}}
    page = decode(replay_message(letter("record", wrapped), "ds", None))
    assert page == PageBatch("job-1", "ds", "replays", "files:a/b.jsonl", 7, [{"id": 1}])
    edited = decode(replay_message(letter("record", wrapped), "ds", b'{"id": 2}'))
    assert isinstance(edited, PageBatch) and edited.records == [{"id": 2}]
    whole = letter("message", {"type": "page"})
    assert replay_message(whole, "ds", None) == whole.body


def test_selection_needs_every_criterion() -> None:
    wrapped = {"entity": "replays", "message_id": "job-1/s/0#1", "record": {}}
    found = letter("record", wrapped, message_id="job-1/s/0#1")
    assert Selection(codes=("rejected_by_store",), job_id="job-1")(found)
    assert not Selection(codes=("rejected_by_store",), job_id="job-2")(found)
    assert not Selection(entity="other")(found)
    assert Selection().empty and not Selection(everything=True).empty
