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

from extractor.dumps.errors import DumpFormatError, RecordError
from extractor.dumps.files import ByteStream, DumpFile, DumpStats, pages, read_chunks
from extractor.dumps.xmlstream import XmlRecordStream

log = logging.getLogger(__name__)

Record = dict[str, Any]
_WHITESPACE = " \t\r\n"
_BIGINT_END = 2**63  # ids are PostgreSQL bigint and Neo4j integers
_ENTITY_IN_NAME = re.compile(r"(artists|labels|masters|releases)(\.xml)?(\.gz)?$")


def _clean(value: str | None) -> str | None:
    """Text without surrounding XML whitespace; None when absent or empty."""
    if value is None:
        return None
    value = value.strip(_WHITESPACE)
    return value or None


def _text(element: Element) -> str | None:
    """An element's text, cleaned like ``_clean`` (inlined: this runs for every field)."""
    text = element.text
    return (text.strip(_WHITESPACE) or None) if text else None


def _attr(element: Element, name: str) -> str | None:
    return _clean(element.get(name))


def _int(value: str | None) -> int | None:
    """A non-negative integer written in ASCII digits; None for anything else."""
    if not value:
        return None
    value = value.strip(_WHITESPACE)
    return int(value) if value.isascii() and value.isdigit() else None


def _ref_id(value: str | None) -> int | None:
    """The id of a referenced record; None when missing, not a number, or 0 (unlinked)."""
    number = _int(value)
    return number if number and number < _BIGINT_END else None


def _record_id(value: str | None) -> int:
    """A record's own id, or RecordError: a record without a usable key cannot load."""
    if _clean(value) is None:
        raise RecordError("the record has no id")
    number = _int(value)
    if not number or number >= _BIGINT_END:
        raise RecordError(f"the record id {value!r} is not a positive 64-bit integer")
    return number


def _year(released: str | None) -> int | None:
    """The year of a release date as written ("1995-00-00", "1987"); None if there is none."""
    year = _int(released[:4]) if released and len(released) >= 4 else None
    return year or None


def _texts(element: Element) -> list[str]:
    """The non-empty texts of an element's children: names, urls, genres, styles."""
    return [text for child in element if (text := _text(child)) is not None]


def _ref(element: Element) -> Record:
    return {"id": _ref_id(element.get("id")), "name": _text(element)}


def _refs(element: Element) -> list[Record]:
    return [_ref(child) for child in element]


def _members(element: Element) -> list[Record]:
    """Members: ``<name id=..>``; older dumps give the id as a preceding ``<id>`` element."""
    members: list[Record] = []
    pending_id: str | None = None
    for child in element:
        if child.tag == "id":
            pending_id = child.text
        elif child.tag == "name":
            member = _ref(child)
            if member["id"] is None:
                member["id"] = _ref_id(pending_id)
            members.append(member)
            pending_id = None
    return members


def _credit(element: Element) -> Record:
    credit: Record = {"id": None, "name": None, "anv": None, "join": None, "role": None}
    credit["tracks"] = None
    for child in element:
        tag, text = child.tag, child.text
        if text and tag in credit:
            credit[tag] = text.strip(_WHITESPACE) or None
    credit["id"] = _ref_id(credit["id"])
    return credit


def _credits(element: Element) -> list[Record]:
    return [_credit(child) for child in element]


def _catalog_entry(element: Element) -> Record:
    """A release's label or series: ``<label name=.. catno=.. id=../>``."""
    return {
        "id": _ref_id(element.get("id")),
        "name": _attr(element, "name"),
        "catno": _attr(element, "catno"),
    }


def _catalog_entries(element: Element) -> list[Record]:
    return [_catalog_entry(child) for child in element]


def _format(element: Element) -> Record:
    descriptions = element.find("descriptions")
    return {
        "name": _attr(element, "name"),
        "qty": _int(element.get("qty")),
        "text": _attr(element, "text"),
        "descriptions": [] if descriptions is None else _texts(descriptions),
    }


def _formats(element: Element) -> list[Record]:
    return [_format(child) for child in element]


def _identifiers(element: Element) -> list[Record]:
    return [
        {
            "type": _attr(child, "type"),
            "description": _attr(child, "description"),
            "value": _attr(child, "value"),
        }
        for child in element
    ]


def _company(element: Element) -> Record:
    fields = {child.tag: _text(child) for child in element}
    return {
        "id": _ref_id(fields.get("id")),
        "name": fields.get("name"),
        "catno": fields.get("catno"),
        "entity_type": _int(fields.get("entity_type")),
        "entity_type_name": fields.get("entity_type_name"),
    }


def _companies(element: Element) -> list[Record]:
    return [_company(child) for child in element]


def _video(element: Element) -> Record:
    title, description = element.find("title"), element.find("description")
    return {
        "src": _attr(element, "src"),
        "duration": _int(element.get("duration")),
        "embed": element.get("embed") == "true",
        "title": None if title is None else _text(title),
        "description": None if description is None else _text(description),
    }


def _videos(element: Element) -> list[Record]:
    return [_video(child) for child in element]


def _track(element: Element) -> Record:
    track: Record = {"position": None, "title": None, "duration": None}
    track.update(artists=[], extraartists=[], sub_tracks=[])
    _fill(track, element, _TRACK_FIELDS)
    return track


def _tracks(element: Element) -> list[Record]:
    return [_track(child) for child in element]


Field = tuple[str, Callable[[Element], Any]]


def _fill(record: Record, element: Element, fields: dict[str, Field]) -> None:
    """Set each known child element's value on the record; unknown children are ignored."""
    for child in element:
        field = fields.get(child.tag)
        if field is not None:
            key, convert = field
            record[key] = convert(child)


def _named(*tags: str, convert: Callable[[Element], Any] = _text) -> dict[str, Field]:
    return {tag: (tag, convert) for tag in tags}


_TRACK_FIELDS = {
    **_named("position", "title", "duration"),
    **_named("artists", "extraartists", convert=_credits),
    "sub_tracks": ("sub_tracks", _tracks),
}
_ARTIST_FIELDS = {
    **_named("name", "realname", "profile", "data_quality"),
    **_named("namevariations", "urls", convert=_texts),
    **_named("aliases", "groups", convert=_refs),
    "members": ("members", _members),
}
_LABEL_FIELDS = {
    **_named("name", "contactinfo", "profile", "data_quality"),
    "urls": ("urls", _texts),
    "parentLabel": ("parent_label", _ref),
    "sublabels": ("sublabels", _refs),
}
_MASTER_FIELDS = {
    **_named("title", "notes", "data_quality"),
    "main_release": ("main_release", lambda e: _ref_id(e.text)),
    "year": ("year", lambda e: _int(e.text) or None),
    "artists": ("artists", _credits),
    **_named("genres", "styles", convert=_texts),
    "videos": ("videos", _videos),
}
_RELEASE_FIELDS = {
    **_named("title", "country", "released", "notes", "data_quality"),
    **_named("artists", "extraartists", convert=_credits),
    **_named("labels", "series", convert=_catalog_entries),
    "formats": ("formats", _formats),
    **_named("genres", "styles", convert=_texts),
    "tracklist": ("tracklist", _tracks),
    "identifiers": ("identifiers", _identifiers),
    "companies": ("companies", _companies),
    "videos": ("videos", _videos),
}


def _child_text(element: Element, tag: str) -> str | None:
    child = element.find(tag)
    return None if child is None else child.text


def artist_record(element: Element) -> Record:
    """An ``<artist>`` of the artists dump as a dict."""
    record: Record = {"id": _record_id(_child_text(element, "id"))}
    record.update(name=None, realname=None, profile=None, data_quality=None)
    record.update(namevariations=[], aliases=[], members=[], groups=[], urls=[])
    _fill(record, element, _ARTIST_FIELDS)
    return record


def label_record(element: Element) -> Record:
    """A ``<label>`` of the labels dump (not one nested in ``<sublabels>``) as a dict."""
    record: Record = {"id": _record_id(_child_text(element, "id"))}
    record.update(name=None, contactinfo=None, profile=None, data_quality=None)
    record.update(urls=[], parent_label=None, sublabels=[])
    _fill(record, element, _LABEL_FIELDS)
    return record


def master_record(element: Element) -> Record:
    """A ``<master id=..>`` of the masters dump as a dict."""
    record: Record = {"id": _record_id(element.get("id"))}
    record.update(main_release=None, title=None, year=None, notes=None, data_quality=None)
    record.update(artists=[], genres=[], styles=[], videos=[])
    _fill(record, element, _MASTER_FIELDS)
    return record


def release_record(element: Element) -> Record:
    """A ``<release id=.. status=..>`` of the releases dump as a dict."""
    record: Record = {"id": _record_id(element.get("id")), "status": _attr(element, "status")}
    record.update(title=None, country=None, released=None, year=None, notes=None)
    record.update(data_quality=None, master_id=None, is_main_release=False)
    record.update(artists=[], extraartists=[], labels=[], series=[], formats=[])
    record.update(genres=[], styles=[], tracklist=[], identifiers=[], companies=[], videos=[])
    _fill(record, element, _RELEASE_FIELDS)
    record["year"] = _year(record["released"])
    master = element.find("master_id")
    if master is not None:
        record["master_id"] = _ref_id(master.text)
        record["is_main_release"] = master.get("is_main_release") == "true"
    return record


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
    "artists": _entity_format("artists", artist_record, "id", "images", *_ARTIST_FIELDS),
    "labels": _entity_format("labels", label_record, "id", "images", *_LABEL_FIELDS),
    "masters": _entity_format("masters", master_record, "images", *_MASTER_FIELDS),
    "releases": _entity_format("releases", release_record, "images", "master_id", *_RELEASE_FIELDS),
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
