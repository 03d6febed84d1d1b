"""Planning a dump job: one slice per (entity, file) matched by the entity's path glob.

The Discogs monthly dumps are named ``discogs_YYYYMMDD_<entity>.xml.gz``; a glob such as
``discogs_*_releases.xml.gz`` matches every month in the directory, and only the newest
dump date is taken unless every file is asked for. Every glob must match a file before
anything is published.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import ConfigError
from common.spec import DatasetSpec
from common.spec_source import DumpSourceSpec
from extractor.ledger.slices import Slice, Window

DUMP_DATE = re.compile(r"discogs_(\d{8})_")


@dataclass(frozen=True)
class FilePlan:
    """The slices of a dump job and, per entity, a line on which files were chosen."""

    base_path: Path
    slices: list[Slice]
    notes: list[str] = field(default_factory=list)


def dump_source(spec: DatasetSpec) -> DumpSourceSpec:
    if not isinstance(spec.source, DumpSourceSpec):
        raise ConfigError(f"dataset {spec.name}: source kind {spec.source.kind} has no dump files")
    return spec.source


def resolve_base_path(spec: DatasetSpec, override: str | None) -> Path:
    """The directory of the files: the override (--base-path) or the spec's, made absolute."""
    base = Path(override or dump_source(spec).base_path).expanduser().resolve()
    if not base.is_dir():
        origin = "--base-path / EXTRACTOR_DUMP_PATH" if override else "the spec's source.base_path"
        raise ConfigError(f"dump directory {base} (from {origin}) does not exist")
    return base


def plan_files(spec: DatasetSpec, base_path: Path, *, all_files: bool = False) -> FilePlan:
    """One slice per (entity, file); a ConfigError if a glob matches no file."""
    newest_only = dump_source(spec).format == "discogs_xml" and not all_files
    slices: list[Slice] = []
    notes: list[str] = []
    for entity, entity_spec in spec.entities.items():
        matched = match_files(base_path, entity, entity_spec.path)
        chosen = newest_dump(matched) if newest_only else matched
        notes.append(describe_choice(entity, matched, chosen, newest_only))
        slices.extend(_slice(entity, base_path, path) for path in chosen)
    return FilePlan(base_path, slices, notes)


def match_files(base_path: Path, entity: str, pattern: str) -> list[Path]:
    """The files the entity's path (a name or glob under base_path) matches, by name."""
    if Path(pattern).is_absolute():
        raise ConfigError(f"entities.{entity}.path: {pattern!r} must be relative to base_path")
    found = sorted(p for p in base_path.glob(pattern) if p.is_file())
    if not found:
        raise ConfigError(f"entities.{entity}.path: no file matches {pattern!r} in {base_path}")
    return found


def dump_date(path: Path) -> str | None:
    """The dump date in a Discogs file name (``discogs_20250101_labels.xml.gz``)."""
    found = DUMP_DATE.search(path.name)
    return found.group(1) if found else None


def newest_dump(paths: list[Path]) -> list[Path]:
    """The files of the newest dump date (all of them if no name carries a date)."""
    dates = {dump_date(p) or "" for p in paths}
    newest = max(dates)
    return [p for p in paths if (dump_date(p) or "") == newest]


def describe_choice(entity: str, matched: list[Path], chosen: list[Path], newest: bool) -> str:
    names = ", ".join(p.name for p in chosen)
    dates = sorted({d for p in matched if (d := dump_date(p))}, reverse=True)
    if newest and len(dates) > 1:
        return f"{entity}: {names} (the newest of dump dates {', '.join(dates)}; see --all-files)"
    return f"{entity}: {names}"


def _slice(entity: str, base_path: Path, path: Path) -> Slice:
    relative = path.relative_to(base_path).as_posix()
    return Slice(
        entity, f"{entity}:{relative}", Window(), file=relative, file_size=path.stat().st_size
    )
