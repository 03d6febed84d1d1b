"""The exception hierarchy: every error answers "retry, dead-letter, or stop?"."""

from __future__ import annotations


class BackfillError(Exception):
    """Base of every error the pipeline raises on purpose."""


class TransientError(BackfillError):
    """Retry: a broker, database or source is unavailable for a while."""


class BadMessageError(BackfillError):
    """Dead-letter: this message (or record) can never be processed as it is."""

    def __init__(self, reason: str, *, code: str = "bad_message") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class Unreachable(BackfillError):
    """A service the command needs did not answer (a source, the ledger database): not a
    configuration error, but nothing to do until it is back (exit 3)."""


class ConfigError(BackfillError):
    """Stop: the configuration or the dataset spec is wrong; a person must fix it."""


class SpecError(ConfigError):
    """A dataset spec is invalid; names the file, the field and the reason."""

    def __init__(self, path: str, field: str, reason: str) -> None:
        super().__init__(f"{path}: {field}: {reason}")
        self.path = path
        self.field = field
        self.reason = reason
