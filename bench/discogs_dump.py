"""Discogs-shaped monthly dumps of any size, for benchmarks (``python -m bench.discogs_dump``).

Writes the four gzipped XML files that common/datasets/discogs.yaml reads, with the records
split as in a real monthly dump (about 9.5M artists, 2.3M labels, 2.4M masters and 18M
releases) and each record about as large as a real one (a release ~3.5 KB of XML with ~9
graph relationships as the spec maps them). Ids run 1..N per entity and every reference
points at a record in the files. What two records say of each other agrees, as in the real
dumps: a release and its master (one main release per master, the same artists, genres,
styles and title), a group and its members, a label and its sublabels, a pair of aliases,
and the name a reference carries and the record it names.

The files are streamed: memory stays flat whatever the size, and compressing (zlib lets go
of the GIL) runs in a thread beside the generating. The same seed writes the same bytes.
Ids and names come from a hash of (seed, id), so any record can name any other without
holding a table; the rest of each record comes from one random stream per file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.discogs_elements import GENERATORS
from bench.discogs_world import Catalogue
from bench.harness.cli import Arg, Commands, add_args, options_from
from bench.harness.gzip_writer import GzipWriter

ENTITIES = ("artists", "labels", "masters", "releases")
# Records in a real monthly dump, in millions: the shares every generated dump keeps.
REAL_MILLIONS = {"artists": 9.5, "labels": 2.3, "masters": 2.4, "releases": 18.0}
SUMMARY = "dump.json"  # what write_dump wrote, for existing_dump
GENERATOR = 2  # raised when the same seed writes other records (2: groups spread out)
MIN_RECORDS = 100  # fewer cannot keep every entity present in its share
BATCH_RECORDS = 256  # records joined per write: ~1 MB of releases


@dataclass(frozen=True)
class DumpSummary:
    """What ``write_dump`` wrote: the files, and records and bytes per entity."""

    directory: Path
    files: dict[str, Path]
    records: dict[str, int]
    bytes_uncompressed: dict[str, int]
    bytes_compressed: dict[str, int]
    seconds: float

    def as_dict(self, seed: int, date: str) -> dict[str, Any]:
        """What ``existing_dump`` reads back, with the arguments that wrote it."""
        return {
            "generator": GENERATOR,
            "seed": seed,
            "date": date,
            "files": {entity: str(path) for entity, path in self.files.items()},
            "records": self.records,
            "bytes_uncompressed": self.bytes_uncompressed,
            "bytes_compressed": self.bytes_compressed,
            "seconds": round(self.seconds, 2),
        }

    @property
    def total(self) -> int:
        """Records in all four files."""
        return sum(self.records.values())

    def lines(self) -> list[str]:
        """The summary as printed by the command line."""
        rows = [f"{'entity':<9} {'records':>12} {'XML MB':>9} {'gzip MB':>9} {'B/record':>9}"]
        for entity in ENTITIES:
            count, raw = self.records[entity], self.bytes_uncompressed[entity]
            rows.append(
                f"{entity:<9} {count:>12,} {raw / 1e6:>9.1f} "
                f"{self.bytes_compressed[entity] / 1e6:>9.1f} {raw / max(1, count):>9,.0f}"
            )
        raw, packed = sum(self.bytes_uncompressed.values()), sum(self.bytes_compressed.values())
        rows.append(f"{'total':<9} {self.total:>12,} {raw / 1e6:>9.1f} {packed / 1e6:>9.1f}")
        rows.append(f"wrote {self.directory} in {self.seconds:.1f} s")
        return rows


def split_records(records: int) -> dict[str, int]:
    """``records`` split in the real dump's proportions (largest remainders; sums exactly)."""
    if records < MIN_RECORDS:
        raise ValueError(f"records must be at least {MIN_RECORDS}, got {records}")
    whole = sum(REAL_MILLIONS.values())
    exact = {entity: records * REAL_MILLIONS[entity] / whole for entity in ENTITIES}
    counts = {entity: int(share) for entity, share in exact.items()}
    by_remainder = sorted(ENTITIES, key=lambda e: counts[e] - exact[e])
    for entity in by_remainder[: records - sum(counts.values())]:
        counts[entity] += 1
    return counts


def write_dump(
    directory: Path, records: int, *, seed: int = 0, date: str = "20990101"
) -> DumpSummary:
    """Write ``discogs_{date}_{entity}.xml.gz`` for the four entities into ``directory``."""
    dt.datetime.strptime(date, "%Y%m%d")  # a ValueError names a date that is not one
    started = time.perf_counter()
    counts = split_records(records)
    catalogue = Catalogue(counts, seed)
    directory.mkdir(parents=True, exist_ok=True)
    files, raw, packed = {}, {}, {}
    for entity in ENTITIES:
        path = directory / f"discogs_{date}_{entity}.xml.gz"
        rng = random.Random(f"{seed}:{entity}")
        raw[entity] = write_file(path, entity, GENERATORS[entity](catalogue, rng))
        files[entity], packed[entity] = path, path.stat().st_size
    seconds = time.perf_counter() - started
    summary = DumpSummary(directory, files, counts, raw, packed, seconds)
    (directory / SUMMARY).write_text(json.dumps(summary.as_dict(seed, date), indent=2) + "\n")
    return summary


def existing_dump(directory: Path, records: int, *, seed: int = 0) -> DumpSummary | None:
    """The dump ``write_dump`` left in ``directory`` for these arguments, if its files are
    all still there at the sizes it wrote (a benchmark reuses it instead of rewriting)."""
    try:
        saved = json.loads((directory / SUMMARY).read_text())
    except (OSError, ValueError):
        return None
    files = {entity: Path(path) for entity, path in saved["files"].items()}
    if (
        saved.get("generator") != GENERATOR
        or saved["seed"] != seed
        or sum(saved["records"].values()) != records
    ):
        return None
    if any(
        not p.is_file() or p.stat().st_size != saved["bytes_compressed"][e]
        for e, p in files.items()
    ):
        return None
    return DumpSummary(
        directory,
        files,
        saved["records"],
        saved["bytes_uncompressed"],
        saved["bytes_compressed"],
        saved["seconds"],
    )


def write_file(path: Path, entity: str, records: Iterator[str]) -> int:
    """One dump file from its record elements; the bytes of XML written."""
    with GzipWriter(path) as out:
        out.write(f'<?xml version="1.0" encoding="UTF-8"?>\n<{entity}>\n')
        batch: list[str] = []
        for record in records:
            batch.append(record)
            if len(batch) == BATCH_RECORDS:
                out.write("".join(batch))
                batch.clear()
        out.write("".join(batch) + f"</{entity}>\n")
    return out.bytes_in


DESCRIPTION = (
    "Writes discogs_DATE_{artists,labels,masters,releases}.xml.gz into DIR: N records split "
    "as in a real monthly dump (29% artists, 7% labels, 7.5% masters, 56% releases), "
    "each about a real record's size (a release ~3.5 KB of XML, ~9 graph relationships), "
    "every reference pointing at a record in the files. Streams (flat memory); the same "
    "seed writes the same bytes. Read it with `extractor plan|run --base-path DIR` and the "
    "bundled discogs spec."
)


def _date(text: str) -> str:
    dt.datetime.strptime(text, "%Y%m%d")
    return text


@dataclass(frozen=True)
class Options:
    records: int = 1_000_000
    out: Path = Path("data/discogs-bench")
    seed: int = 0
    date: str = "20990101"


ARGS = [
    Arg("--records", int, "N", "records in all four files (default %(default)s)"),
    Arg("--out", Path, "DIR", "the directory to write (default %(default)s)"),
    Arg("--seed", int, "S", "the same seed writes the same bytes (default %(default)s)"),
    Arg("--date", _date, "YYYYMMDD", "the dump date in the file names (default %(default)s)"),
]


def configure(parser: argparse.ArgumentParser) -> None:
    add_args(parser, Options(), ARGS)


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser(
        "discogs-dump", help="write a Discogs-shaped dump of N records", description=DESCRIPTION
    )
    configure(parser)


def run(args: argparse.Namespace) -> DumpSummary:
    options = options_from(Options, args)
    summary = write_dump(options.out, options.records, seed=options.seed, date=options.date)
    print("\n".join(summary.lines()))
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.discogs_dump", description=DESCRIPTION)
    configure(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
