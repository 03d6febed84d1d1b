"""What an error decides: the one question every boundary answers about a failure.

- ``RETRY``: transient (a store, the broker or the source is away, a deadlock, a timeout):
  wait with backoff and try the same thing again.
- ``DEAD_LETTER``: this record or message can never be processed as it is (a value that
  does not cast, a constraint the record breaks): set it aside with the reason, go on.
- ``FAIL_SLICE``: this slice cannot go on (the extractor's pages): fail it with the reason;
  ``retry-failed`` can run it again.
- ``STOP``: the configuration or the code is wrong: stop with one clear line, acking
  nothing, so that the work is redelivered once a person has fixed it.

Each boundary has one classifier mapping its library's exceptions to an outcome
(``common.postgres``, ``common.amqp``, ``graphinator.errors``, ``extractor.sources.fetch``);
docs/architecture.md has the table.
"""

from __future__ import annotations

from enum import Enum

from common.errors import BackfillError


class Outcome(Enum):
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"
    FAIL_SLICE = "fail_slice"
    STOP = "stop"


class FailSlice(BackfillError):
    """This slice cannot go on (a page that cannot be paged past, a dump file that does not
    read): the slice fails with ``kind`` and the message; the job goes on."""

    kind = "bad_page"


class StopConsumer(BackfillError):
    """A consumer met an error that is neither transient nor about a record: it stops,
    its held messages unacked (RabbitMQ redelivers them once it runs again)."""
