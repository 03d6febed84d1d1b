"""Errors of dump-file reading: a whole file that cannot be read, or one record to skip."""

from __future__ import annotations

from common.errors import BackfillError


class DumpError(BackfillError):
    """Stop this file: it cannot be read as it is, and retrying will not help.

    The message names the file and, where the parser knows it, the line and column.
    """

    def __init__(
        self, file: str, reason: str, *, line: int | None = None, column: int | None = None
    ) -> None:
        where = file if line is None else f"{file}: line {line}, column {column or 0}"
        super().__init__(f"{where}: {reason}")
        self.file = file
        self.reason = reason
        self.line = line
        self.column = column


class DumpFormatError(DumpError):
    """Not well-formed XML, a refused DTD, corrupt compression, or not the expected document."""


class DumpTruncatedError(DumpError):
    """The file ends before its document does (an interrupted download or copy)."""


class RecordError(ValueError):
    """One record is malformed (say, its id is missing): skip and count it, keep reading."""
