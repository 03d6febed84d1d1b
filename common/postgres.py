"""PostgreSQL, as every service meets it: its errors mapped to outcomes (common.outcomes),
one classifier for tableinator's writes and the extractor's ledger, and the lock that makes
their DDL safe to run from many processes at once."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg_pool import PoolClosed, PoolTimeout

from common.outcomes import Outcome

TRANSIENT = (
    psycopg.OperationalError,  # connection lost or refused, admin shutdown, too many clients
    psycopg.errors.SerializationFailure,
    psycopg.errors.DeadlockDetected,
    PoolTimeout,
)
# About a record: a value that does not cast or fit (class 22), a constraint it breaks (23),
# a key too long for the index ("index row size exceeds maximum", class 54, which psycopg
# counts as operational but retrying cannot cure).
RECORD_ERRORS = (
    psycopg.errors.DataError,
    psycopg.errors.IntegrityError,
    psycopg.errors.ProgramLimitExceeded,
)


def classify(exc: BaseException) -> Outcome:
    """What a write's error decides; anything unknown (a bug, a dropped table) stops."""
    if isinstance(exc, PoolClosed):  # shutting down: the pool will not come back
        return Outcome.STOP
    if isinstance(exc, RECORD_ERRORS):
        return Outcome.DEAD_LETTER
    if isinstance(exc, TRANSIENT):
        return Outcome.RETRY
    return Outcome.STOP


def retryable(exc: BaseException) -> bool:
    """For ``retry_transient``: the store is away or the statement lost a race; run it again."""
    return classify(exc) is Outcome.RETRY


# One advisory lock for every CREATE of every service (tableinator's tables, the ledger):
# two processes creating one schema at the same moment would otherwise collide in the
# catalog (a unique violation from CREATE SCHEMA IF NOT EXISTS).
DDL_LOCK_KEY = 0x6261636B66696C6C  # "backfill"


async def lock_ddl(conn: psycopg.AsyncConnection[Any]) -> None:
    """Hold the DDL lock until the connection's transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK_KEY,))
