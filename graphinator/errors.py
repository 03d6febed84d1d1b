"""Neo4j errors to outcomes (common.outcomes): retry, dead-letter the record, or stop."""

from __future__ import annotations

import neo4j.exceptions

from common.outcomes import Outcome

TRANSIENT = (
    neo4j.exceptions.ServiceUnavailable,
    neo4j.exceptions.SessionExpired,
    neo4j.exceptions.TransientError,
    neo4j.exceptions.IncompleteCommit,
    neo4j.exceptions.ConnectionAcquisitionTimeoutError,
    OSError,
)
# A node deleted under a running batch (another writer replaced a record's edges): retry.
RETRY_CODES = frozenset({"Neo.ClientError.Statement.EntityNotFound"})
# About a record: a property value Neo4j cannot store, a constraint the record breaks.
RECORD_ERRORS = (neo4j.exceptions.CypherTypeError, neo4j.exceptions.ConstraintError)


# A record's value the store refuses with a database error (its key too long for the index).
RECORD_MESSAGES = ("too large to index",)


def classify(exc: BaseException) -> Outcome:
    """What a write's error decides; anything unknown (a Cypher bug, auth) stops."""
    if isinstance(exc, neo4j.exceptions.Neo4jError) and (
        exc.is_retryable() or exc.code in RETRY_CODES
    ):
        return Outcome.RETRY
    if isinstance(exc, TRANSIENT):
        return Outcome.RETRY
    if isinstance(exc, RECORD_ERRORS):
        return Outcome.DEAD_LETTER
    if isinstance(exc, neo4j.exceptions.DatabaseError) and any(
        text in (exc.message or "") for text in RECORD_MESSAGES
    ):
        return Outcome.DEAD_LETTER
    return Outcome.STOP
