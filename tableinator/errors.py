"""PostgreSQL errors to outcomes (common.outcomes): retry, dead-letter the record, or stop."""

from __future__ import annotations

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
