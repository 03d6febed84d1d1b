"""Converting the record elements of the Discogs dumps into dicts.

The shapes are documented in ``extractor.sources.dumps.discogs``, which streams the files and
hands each record element here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.etree.ElementTree import Element

from extractor.sources.dumps.errors import RecordError

Record = dict[str, Any]
_WHITESPACE = " \t\r\n"
_BIGINT_END = 2**63  # ids are PostgreSQL bigint and Neo4j integers


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
ARTIST_FIELDS = {
    **_named("name", "realname", "profile", "data_quality"),
    **_named("namevariations", "urls", convert=_texts),
    **_named("aliases", "groups", convert=_refs),
    "members": ("members", _members),
}
LABEL_FIELDS = {
    **_named("name", "contactinfo", "profile", "data_quality"),
    "urls": ("urls", _texts),
    "parentLabel": ("parent_label", _ref),
    "sublabels": ("sublabels", _refs),
}
MASTER_FIELDS = {
    **_named("title", "notes", "data_quality"),
    "main_release": ("main_release", lambda e: _ref_id(e.text)),
    "year": ("year", lambda e: _int(e.text) or None),
    "artists": ("artists", _credits),
    **_named("genres", "styles", convert=_texts),
    "videos": ("videos", _videos),
}
RELEASE_FIELDS = {
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
    _fill(record, element, ARTIST_FIELDS)
    return record


def label_record(element: Element) -> Record:
    """A ``<label>`` of the labels dump (not one nested in ``<sublabels>``) as a dict."""
    record: Record = {"id": _record_id(_child_text(element, "id"))}
    record.update(name=None, contactinfo=None, profile=None, data_quality=None)
    record.update(urls=[], parent_label=None, sublabels=[])
    _fill(record, element, LABEL_FIELDS)
    return record


def master_record(element: Element) -> Record:
    """A ``<master id=..>`` of the masters dump as a dict."""
    record: Record = {"id": _record_id(element.get("id"))}
    record.update(main_release=None, title=None, year=None, notes=None, data_quality=None)
    record.update(artists=[], genres=[], styles=[], videos=[])
    _fill(record, element, MASTER_FIELDS)
    return record


def release_record(element: Element) -> Record:
    """A ``<release id=.. status=..>`` of the releases dump as a dict."""
    record: Record = {"id": _record_id(element.get("id")), "status": _attr(element, "status")}
    record.update(title=None, country=None, released=None, year=None, notes=None)
    record.update(data_quality=None, master_id=None, is_main_release=False)
    record.update(artists=[], extraartists=[], labels=[], series=[], formats=[])
    record.update(genres=[], styles=[], tracklist=[], identifiers=[], companies=[], videos=[])
    _fill(record, element, RELEASE_FIELDS)
    record["year"] = _year(record["released"])
    master = element.find("master_id")
    if master is not None:
        record["master_id"] = _ref_id(master.text)
        record["is_main_release"] = master.get("is_main_release") == "true"
    return record
