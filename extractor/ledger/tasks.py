"""Slice tasks on the durable work queue that extractor workers share.

A task names a job and a slice, nothing more: everything else is in the ledger. A worker
acks its task only when the slice is terminal, so a worker that dies leaves its tasks to be
redelivered to another.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import orjson
from aio_pika.abc import AbstractChannel, AbstractQueue

from common.amqp import persistent_message
from common.errors import BadMessageError

PUBLISH_WINDOW = 256  # tasks awaiting their confirm at once
# An idle queue (no consumer, no declare) goes after a week; the ledger keeps the job, and
# `extractor resume` enqueues its unfinished slices again.
QUEUE_EXPIRES_MS = 7 * 86_400_000


@dataclass(frozen=True)
class SliceTask:
    job_id: str
    slice_id: str

    @property
    def message_id(self) -> str:
        return f"{self.job_id}/{self.slice_id}/task"


def encode_task(task: SliceTask) -> bytes:
    return orjson.dumps(
        {"type": "slice_task", "v": 1, "job_id": task.job_id, "slice_id": task.slice_id}
    )


def decode_task(body: bytes) -> SliceTask:
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadMessageError(f"task is not JSON: {exc}", code="not_json") from None
    if not isinstance(raw, dict) or raw.get("type") != "slice_task" or raw.get("v") != 1:
        raise BadMessageError("not a version 1 slice task", code="bad_envelope")
    job_id, slice_id = raw.get("job_id"), raw.get("slice_id")
    if not isinstance(job_id, str) or not isinstance(slice_id, str):
        raise BadMessageError("task lacks job_id or slice_id", code="bad_envelope")
    return SliceTask(job_id, slice_id)


def work_queue_name(prefix: str, dataset: str) -> str:
    """One task queue per dataset: a worker serves the datasets it is started for."""
    return f"{prefix}.{dataset}"


async def declare_work_queue(channel: AbstractChannel, name: str) -> AbstractQueue:
    return await channel.declare_queue(
        name, durable=True, arguments={"x-expires": QUEUE_EXPIRES_MS}
    )


async def enqueue(channel: AbstractChannel, queue: str, tasks: Iterable[SliceTask]) -> int:
    """Publish tasks persistently with confirms, a window of them in flight; how many."""
    await declare_work_queue(channel, queue)
    exchange = channel.default_exchange
    pending: list[asyncio.Future[object]] = []
    count = 0
    for task in tasks:
        message = persistent_message(encode_task(task), message_id=task.message_id)
        pending.append(asyncio.ensure_future(exchange.publish(message, routing_key=queue)))
        count += 1
        if len(pending) >= PUBLISH_WINDOW:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    return count
