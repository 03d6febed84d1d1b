"""Discogs monthly data dumps, streamed record by record as plain JSON-able dicts.

The dumps (``discogs_YYYYMMDD_{artists,labels,masters,releases}.xml.gz``) are one XML
document each: a root (``<artists>``) holding one element per record (``<artist>``). They
are read in chunks, never whole (see ``xmlstream``); gzip is detected by its magic bytes,
so plain XML works too. Every record of an entity has every key below, so documents and
hashes are uniform: a scalar that is absent or empty is None, a list that is absent is [].
Text keeps inner newlines, tabs and carriage returns (``&#13;``) and loses only the XML
whitespace around it; entity-escaped HTML stays as text (``&amp;eacute;`` -> ``&eacute;``).

========  =============================================================================
entity    record
========  =============================================================================
artists   ``id`` (the ``<id>`` element), ``name``, ``realname``, ``profile``,
          ``data_quality``, ``namevariations`` [str], ``aliases`` [ref], ``members``
          [ref], ``groups`` [ref], ``urls`` [str]
labels    ``id`` (``<id>`` element), ``name``, ``contactinfo``, ``profile``,
          ``data_quality``, ``urls`` [str], ``parent_label`` ref | None (from
          ``<parentLabel id=..>``), ``sublabels`` [ref] (``<sublabels><label id=..>``)
masters   ``id`` (``id`` attribute), ``main_release`` int, ``title``, ``year`` int (None
          for Discogs' 0, "unknown"), ``notes``, ``data_quality``, ``artists`` [credit],
          ``genres`` [str], ``styles`` [str], ``videos`` [video]
releases  ``id`` (attribute), ``status``, ``title``, ``country``, ``released`` (text as
          given: "1995-00-00", "1987", ...), ``year`` (derived: the leading four digits of
          ``released``, None for "0000" or no date), ``notes``, ``data_quality``,
          ``master_id`` int | None, ``is_main_release`` bool, ``artists`` [credit] (the
          release's main artists only), ``extraartists`` [credit], ``labels`` [label],
          ``series`` [label], ``formats`` [format], ``genres``, ``styles``, ``tracklist``
          [track], ``identifiers`` [identifier], ``companies`` [company], ``videos``
========  =============================================================================

Nested shapes: ref ``{id, name}``; credit ``{id, name, anv, join, role, tracks}``; label
``{id, name, catno}``; format ``{name, qty, text, descriptions: [str]}``; track
``{position, title, duration, artists, extraartists, sub_tracks: [track]}`` (track
credits stay inside their track); identifier ``{type, description, value}``; company
``{id, name, catno, entity_type, entity_type_name}``; video ``{src, duration, embed, title,
description}``. Ids of referenced records are int, or None when missing, not a number,
or 0 (dumps before December 2024 wrote 0 for an unlinked artist; later ones leave it
empty), so no relationship ever points at a made-up node. ``<images>`` (sizes only, no
URLs, and gone from dumps since December 2024) and ``resource_url`` are dropped.

A record whose own id is missing or not a positive 64-bit integer is skipped, counted in
DumpStats and logged with the file, its index and the reason; the file goes on. Not
well-formed XML, a DTD, or a file cut short raise a DumpError naming the file (and line),
after every record completed before the break has been yielded.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from extractor.sources.dumps.discogs_records import (
    ARTIST_FIELDS,
    LABEL_FIELDS,
    MASTER_FIELDS,
    RELEASE_FIELDS,
    artist_record,
    label_record,
    master_record,
    release_record,
)
from extractor.sources.dumps.errors import DumpFormatError, RecordError
from extractor.sources.dumps.files import ByteStream, DumpFile, DumpStats, pages, read_chunks
from extractor.sources.dumps.xmlstream import XmlRecordStream

log = logging.getLogger(__name__)

Record = dict[str, Any]
_ENTITY_IN_NAME = re.compile(r"(artists|labels|masters|releases)(\.xml)?(\.gz)?$")


@dataclass(frozen=True)
class EntityFormat:
    """How one dump file is laid out: its root and record element names, its converter."""

    entity: str
    root_tag: str
    record_tag: str
    convert: Callable[[Element], Record]
    known_tags: frozenset[str]


def _entity_format(entity: str, convert: Callable[[Element], Record], *tags: str) -> EntityFormat:
    return EntityFormat(entity, entity, entity[:-1], convert, frozenset(tags))


# Tags read above plus those dropped on purpose; anything else is counted as unknown.
ENTITIES = {
    "artists": _entity_format("artists", artist_record, "id", "images", *ARTIST_FIELDS),
    "labels": _entity_format("labels", label_record, "id", "images", *LABEL_FIELDS),
    "masters": _entity_format("masters", master_record, "images", *MASTER_FIELDS),
    "releases": _entity_format("releases", release_record, "images", "master_id", *RELEASE_FIELDS),
}


def entity_of(path: Path) -> str | None:
    """The entity a dump file holds, from its name (``discogs_20250101_labels.xml.gz``)."""
    match = _ENTITY_IN_NAME.search(path.name)
    return match.group(1) if match else None


def iter_records(
    path: Path, entity: str | None = None, *, stats: DumpStats | None = None
) -> Iterator[Record]:
    """Every record of a dump file, in file order, with bounded memory.

    ``entity`` defaults to the one in the file name, else the document's root element.
    Pass ``stats`` to watch records, skips and bytes read (progress) as they happen.
    """
    stats = stats if stats is not None else DumpStats()
    _check_entity(entity)
    with DumpFile(path) as dump:
        stats.file, stats.bytes_total = str(path), dump.size
        chunks = _tracked(read_chunks(dump.stream, str(path)), dump, stats)
        yield from _records(chunks, entity or entity_of(path), str(path), stats)


def iter_pages(
    path: Path, page_size: int, entity: str | None = None, *, stats: DumpStats | None = None
) -> Iterator[list[Record]]:
    """The records of a dump file in lists of ``page_size`` (the last one may be shorter)."""
    return pages(iter_records(path, entity, stats=stats), page_size)


def parse_stream(
    stream: ByteStream,
    entity: str | None = None,
    *,
    name: str = "<stream>",
    stats: DumpStats | None = None,
) -> Iterator[Record]:
    """Every record of an already decompressed XML byte stream; ``name`` is used in errors."""
    stats = stats if stats is not None else DumpStats()
    stats.file = stats.file or name
    _check_entity(entity)
    yield from _records(read_chunks(stream, name), entity, name, stats)


def _check_entity(entity: str | None) -> None:
    if entity is not None and entity not in ENTITIES:
        raise ValueError(f"unknown Discogs entity {entity!r}: expected one of {sorted(ENTITIES)}")


def _tracked(chunks: Iterable[bytes], dump: DumpFile, stats: DumpStats) -> Iterator[bytes]:
    for chunk in chunks:
        stats.bytes_read = dump.position
        yield chunk


def _records(
    chunks: Iterable[bytes], entity: str | None, name: str, stats: DumpStats
) -> Iterator[Record]:
    stream = XmlRecordStream(name)
    form: EntityFormat | None = None
    for index, element in enumerate(stream.elements(chunks), start=1):
        form = form or _format_for(stream.root_tag, entity, name)
        record = _convert(form, element, index, stats)
        if record is not None:
            stats.records += 1
            yield record
    _log_done(stats, form)


def _format_for(root_tag: str | None, entity: str | None, name: str) -> EntityFormat:
    """The layout of this document, checked against the entity the caller expects."""
    form = ENTITIES.get(entity or root_tag or "")
    if form is None or root_tag != form.root_tag:
        expected = f"<{form.root_tag}>" if form else f"one of {sorted(ENTITIES)}"
        raise DumpFormatError(
            name, f"the root element is <{root_tag}>, expected {expected}: not that Discogs dump"
        )
    return form


def _convert(form: EntityFormat, element: Element, index: int, stats: DumpStats) -> Record | None:
    """One record as a dict, or None (counted, logged) when it is malformed."""
    try:
        if element.tag != form.record_tag:
            raise RecordError(f"unexpected element <{element.tag}>, expected <{form.record_tag}>")
        record = form.convert(element)
    except RecordError as exc:
        stats.skip(f"record {index}", str(exc))
        log.warning("dump record skipped file=%s record=%d reason=%s", stats.file, index, exc)
        return None
    _count_unknown(form, element, stats)
    return record


def _count_unknown(form: EntityFormat, element: Element, stats: DumpStats) -> None:
    """Count child elements this reader does not know: the dump format has changed."""
    for child in element:
        if child.tag not in form.known_tags:
            stats.unknown_tags[child.tag] = stats.unknown_tags.get(child.tag, 0) + 1


def _log_done(stats: DumpStats, form: EntityFormat | None) -> None:
    log.info(
        "dump read file=%s entity=%s records=%d skipped=%d",
        stats.file,
        form.entity if form else None,
        stats.records,
        stats.skipped,
    )
    if stats.unknown_tags:
        log.warning("dump has unknown elements file=%s tags=%s", stats.file, stats.unknown_tags)
