"""Dump-file sources: records streamed from files on disk, never loaded whole.

``discogs`` reads the Discogs monthly XML dumps and ``jsonl`` JSON Lines files; ``files``
opens gzip or plain files (by magic bytes), reads them in chunks or lines and keeps
DumpStats; ``xmlstream`` is the safe, bounded-memory XML record streamer under ``discogs``.
"""

from extractor.dumps.errors import DumpError, DumpFormatError, DumpTruncatedError, RecordError
from extractor.dumps.files import DumpFile, DumpStats, pages

__all__ = [
    "DumpError",
    "DumpFile",
    "DumpFormatError",
    "DumpStats",
    "DumpTruncatedError",
    "RecordError",
    "pages",
]
