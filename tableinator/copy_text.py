"""Encoding a batch as one COPY text-format buffer, in bulk byte operations.

Text format, not binary: each record's canonical JSON is already bytes (it was hashed), so
a row is a few concatenations instead of a Python call per column. orjson escapes every
control character in JSON strings, so the only byte COPY text needs escaped in a document
is the backslash; keys are escaped in full.
"""

from __future__ import annotations

from common.records import PreparedRecord

_KEY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def encode_key(key: str | int) -> bytes:
    """A key as a COPY text field."""
    if isinstance(key, int):
        return str(key).encode()
    if "\\" in key or "\t" in key or "\n" in key or "\r" in key:  # rare: translate is slow
        key = key.translate(_KEY_ESCAPES)
    return key.encode()


def encode_rows(records: list[PreparedRecord]) -> bytes:
    """``key <TAB> \\\\x<hash hex> <TAB> json`` lines for COPY (key, content_hash, doc)."""
    return b"".join(
        [
            b"%s\t\\\\x%s\t%s\n"
            % (
                encode_key(record.key),
                record.hash.hex().encode(),
                record.json.replace(b"\\", b"\\\\"),
            )
            for record in records
        ]
    )
