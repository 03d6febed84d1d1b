"""The XML element of each generated Discogs record (bench/discogs_dump.py writes them),
shaped like the real dumps' (see extractor/sources/dumps/discogs.py), its choices drawn
from the world of bench/discogs_world.py."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from bench.discogs_world import (
    CITIES,
    COMPANY_TYPES,
    COUNTRIES,
    FORMATS,
    IDENTIFIERS,
    MIX_NAMES,
    ROLES,
    TITLE_WORDS,
    WORK,
    Catalogue,
    Draws,
    Texts,
    Work,
    work_from,
)


def artist_xml(texts: Texts, artist: int) -> str:
    c = texts.catalogue
    name = c.artist_name(artist)
    real = "" if c.is_group(artist) or texts.chance(40) else name.split(" (")[0]
    profile = texts.prose(texts.below(9) + 1) if texts.chance(80) else ""
    slug = "".join(ch for ch in name.split(" (")[0] if ch.isalnum()).lower()
    urls = "".join(f"<url>https://{slug}{n}.bandcamp.com/</url>" for n in range(texts.below(5)))
    variations = "".join(f"<name>{name.split(' ')[-1]} {n}</name>" for n in range(texts.below(5)))
    alias = c.alias_of(artist)
    aliases = (
        f'<aliases><name id="{alias}">{c.artist_name(alias)}</name></aliases>' if alias else ""
    )
    members = "".join(f'<name id="{m}">{c.artist_name(m)}</name>' for m in c.members(artist))
    group = c.group_of(artist)
    groups = f'<groups><name id="{group}">{c.artist_name(group)}</name></groups>' if group else ""
    return (
        f"<artist><id>{artist}</id><name>{name}</name><realname>{real}</realname>"
        f"<profile>{profile}</profile><data_quality>{texts.quality()}</data_quality>"
        f"<urls>{urls}</urls><namevariations>{variations}</namevariations>{aliases}"
        f"{f'<members>{members}</members>' if members else ''}{groups}</artist>\n"
    )


def label_xml(texts: Texts, label: int) -> str:
    c = texts.catalogue
    name = c.label_name(label)
    city = texts.pick(CITIES)
    contact = (
        f"{name}&#13;\nP.O. Box {texts.below(90000) + 1000}&#13;\n{city}&#13;\n"
        f"info@{name.split(' ')[0].lower()}.example"
        if texts.chance(60)
        else ""
    )
    profile = texts.prose(texts.below(7) + 1) if texts.chance(80) else ""
    slug = name.split(" ")[0].lower()
    urls = "".join(f"<url>https://www.{slug}{n}.example/</url>" for n in range(texts.below(5)))
    parent = c.parent_label(label)
    parent_xml = (
        f'<parentLabel id="{parent}">{c.label_name(parent)}</parentLabel>' if parent else ""
    )
    subs = "".join(f'<label id="{s}">{c.label_name(s)}</label>' for s in c.sublabels(label))
    return (
        f"<label><id>{label}</id><name>{name}</name><contactinfo>{contact}</contactinfo>"
        f"<profile>{profile}</profile><data_quality>{texts.quality()}</data_quality>"
        f"<urls>{urls}</urls>{parent_xml}{f'<sublabels>{subs}</sublabels>' if subs else ''}"
        "</label>\n"
    )


def master_xml(texts: Texts, master: int) -> str:
    c = texts.catalogue
    work = work_from(c.master_draws(master), c)
    genres = "".join(f"<genre>{g}</genre>" for g in work.genres)
    styles = "".join(f"<style>{s}</style>" for s in work.styles)
    by = c.artist_name(work.artists[0])
    videos = "".join(
        texts.video(f"{by} - {texts.pick(TITLE_WORDS)}") for _ in range(texts.below(10))
    )
    notes = f"<notes>{texts.prose(texts.below(4) + 1)}</notes>" if texts.chance(40) else ""
    return (
        f'<master id="{master}"><main_release>{c.main_release(master)}</main_release>'
        f"<artists>{texts.main_credits(work.artists)}</artists><genres>{genres}</genres>"
        f"<styles>{styles}</styles><year>{work.year}</year><title>{work.title}</title>{notes}"
        f"<data_quality>{texts.quality()}</data_quality><videos>{videos}</videos></master>\n"
    )


def release_xml(texts: Texts, release: int) -> str:
    c = texts.catalogue
    master, main = c.master_of(release)
    if master is None:
        work = work_from(Draws(c.hash(WORK, release)), c)
    else:
        work = work_from(c.master_draws(master), c)
    year = work.year if main else min(2025, work.year + texts.below(12))
    notes = texts.prose(texts.below(5) + 1) if texts.chance(55) else ""
    master_xml = (
        f'<master_id is_main_release="{"true" if main else "false"}">{master}</master_id>'
        if master
        else ""
    )
    return (
        f'<release id="{release}" status="Accepted"><artists>{texts.main_credits(work.artists)}'
        f"</artists><title>{work.title}</title><labels>{release_labels(texts)}</labels>"
        f"<extraartists>{extra_artists(texts)}</extraartists><formats>{formats(texts)}</formats>"
        f"<genres>{''.join(f'<genre>{g}</genre>' for g in work.genres)}</genres>"
        f"<styles>{''.join(f'<style>{s}</style>' for s in work.styles)}</styles>"
        f"<country>{texts.pick(COUNTRIES)}</country>{released(texts, year)}"
        f"<notes>{notes}</notes><data_quality>{texts.quality()}</data_quality>{master_xml}"
        f"<tracklist>{tracklist(texts)}</tracklist><identifiers>{identifiers(texts)}"
        f"</identifiers>{release_videos(texts, work)}<companies>{companies(texts)}</companies>"
        "</release>\n"
    )


def release_labels(texts: Texts) -> str:
    c, count = texts.catalogue, 1 if texts.chance(50) else 2
    ids = list(dict.fromkeys(texts.popular(c.labels, 2.0) for _ in range(count)))
    return "".join(
        f'<label name="{c.label_name(label)}" catno="{c.label_name(label)[:3].upper()} '
        f'{texts.below(999) + 1:03d}" id="{label}"/>'
        for label in ids
    )


def extra_artists(texts: Texts) -> str:
    c = texts.catalogue
    return "".join(
        texts.credit(
            texts.popular(c.artists), texts.pick(ROLES), "A1 to B2" if texts.chance(20) else ""
        )
        for _ in range(texts.below(6) + 1)
    )


def formats(texts: Texts) -> str:
    head, descriptions = FORMATS[texts.below(len(FORMATS))]
    chosen = descriptions[: texts.below(len(descriptions)) + 1]
    items = "".join(f"<description>{d}</description>" for d in chosen)
    return f"{head}<descriptions>{items}</descriptions></format>"


def released(texts: Texts, year: int) -> str:
    roll = texts.below(100)
    if roll < 5:
        return ""
    if roll < 20:
        return f"<released>{year}</released>"
    day = texts.below(28) + 1 if roll < 65 else 0
    return f"<released>{year}-{texts.below(12) + 1:02d}-{day:02d}</released>"


def tracklist(texts: Texts) -> str:
    """8 to 12 tracks, sides A and B or numbered; durations, mix names, a credit on some."""
    c, rnd, count = texts.catalogue, texts.random, texts.below(5) + 8
    side, vinyl = (count + 1) // 2, rnd() < 0.5
    words, size = TITLE_WORDS, len(TITLE_WORDS)
    tracks = []
    for n in range(count):  # the hot loop of the generator: random() inlined
        position = f"{'AB'[n // side]}{n % side + 1}" if vinyl else str(n + 1)
        title = f"{words[int(rnd() * size)]} {words[int(rnd() * size)]}"
        if rnd() < 0.3:
            title += f" ({texts.pick(MIX_NAMES)})"
        duration = f"{int(rnd() * 8) + 2}:{int(rnd() * 60):02d}" if rnd() < 0.88 else ""
        credits = ""
        if rnd() < 0.3:
            remixer = texts.credit(texts.popular(c.artists), texts.pick(ROLES))
            credits = f"<extraartists>{remixer}</extraartists>"
        tracks.append(
            f"<track><position>{position}</position><title>{title}</title>"
            f"<duration>{duration}</duration>{credits}</track>"
        )
    return "".join(tracks)


def identifiers(texts: Texts) -> str:
    items = []
    for _ in range(texts.below(4) + 1):
        kind = texts.pick(IDENTIFIERS)
        side = f' description="Side {texts.pick(("A", "B"))}"' if kind == IDENTIFIERS[1] else ""
        value = (
            f"{texts.below(10**12):012d}" if kind == "Barcode" else f"LC {texts.below(9999):04d}"
        )
        items.append(f'<identifier type="{kind}"{side} value="{value}"/>')
    return "".join(items)


def companies(texts: Texts) -> str:
    c, items = texts.catalogue, []
    for _ in range(texts.below(4)):
        label = texts.popular(c.labels, 2.0)
        kind, kind_name = COMPANY_TYPES[texts.below(len(COMPANY_TYPES))]
        items.append(
            f"<company><id>{label}</id><name>{c.label_name(label)}</name><catno></catno>"
            f"<entity_type>{kind}</entity_type><entity_type_name>{kind_name}"
            f"</entity_type_name><resource_url>https://api.discogs.com/labels/{label}"
            "</resource_url></company>"
        )
    return "".join(items)


def release_videos(texts: Texts, work: Work) -> str:
    if not texts.chance(30):
        return ""
    by = texts.catalogue.artist_name(work.artists[0])
    items = "".join(texts.video(f"{by} - {work.title}") for _ in range(texts.below(3) + 1))
    return f"<videos>{items}</videos>"


Generator = Callable[[Catalogue, random.Random], Iterator[str]]


def _each(entity: str, element: Callable[[Texts, int], str]) -> Generator:
    """The elements of every id of ``entity``, 1..N, in order."""

    def generate(catalogue: Catalogue, rng: random.Random) -> Iterator[str]:
        texts = Texts(catalogue, rng)
        for number in range(1, getattr(catalogue, entity) + 1):
            yield element(texts, number)

    return generate


GENERATORS: dict[str, Generator] = {
    "artists": _each("artists", artist_xml),
    "labels": _each("labels", label_xml),
    "masters": _each("masters", master_xml),
    "releases": _each("releases", release_xml),
}
