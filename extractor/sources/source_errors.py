"""How a source request fails: retrying will not help, or it may (fetch and OAuth share these)."""

from __future__ import annotations

from common.errors import BackfillError, TransientError


class SourceError(BackfillError):
    """The source answered in a way retrying will not fix (4xx other than 408 and 429)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class RetryableSourceError(TransientError):
    """Timeout, connection error, 408, 429, 5xx or a truncated body."""

    def __init__(self, message: str, kind: str, *, source_down: bool) -> None:
        super().__init__(message)
        self.kind = kind
        self.source_down = source_down
