"""Dump-file sources: records streamed from files on disk, never loaded whole.

``discogs`` reads the Discogs monthly XML dumps (``discogs_records`` converts each record),
``jsonl`` JSON Lines files and ``csv`` CSV files with a header row; ``formats`` picks one
by the spec's ``source.format``; ``files`` opens gzip or plain files (by magic bytes),
reads them in chunks or lines and keeps DumpStats; ``xmlstream`` is the safe,
bounded-memory XML record streamer under ``discogs``.
"""

from extractor.sources.dumps.errors import (
    DumpError,
    DumpFormatError,
    DumpTruncatedError,
    RecordError,
)
from extractor.sources.dumps.files import DumpFile, DumpStats, pages

__all__ = [
    "DumpError",
    "DumpFile",
    "DumpFormatError",
    "DumpStats",
    "DumpTruncatedError",
    "RecordError",
    "pages",
]
