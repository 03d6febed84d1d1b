"""The Discogs dump reader: record shapes, skipped records, broken and hostile files."""

from __future__ import annotations

import gzip
import io
import logging
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import pytest

from extractor.sources.dumps import DumpFormatError, DumpStats, DumpTruncatedError
from extractor.sources.dumps.discogs import entity_of, iter_pages, iter_records, parse_stream
from tests.extractor.dumps.samples import ENTITIES, sample, write_releases


def records(entity: str, path: Path | None = None) -> list[dict[str, Any]]:
    return list(iter_records(path or sample(entity)))


def by_id(entity: str) -> dict[int, dict[str, Any]]:
    return {record["id"]: record for record in records(entity)}


def credit(id: int | None, name: str, **fields: str) -> dict[str, Any]:
    base: dict[str, Any] = {"id": id, "name": name, "anv": None, "join": None}
    return base | {"role": None, "tracks": None} | fields


def test_artist_record_keeps_real_text() -> None:
    assert records("artists")[0] == {
        "id": 27,
        "name": "Cari Lekebusch",
        "realname": "Kari Pekka Lekebusch",
        "profile": "Capricorn born 1972, homebase Stockholm.\r\n"
        'Early influences: USA & Germany.\t"Remember GrandMaster Flash"\r\n'
        "Written as &eacute; on the site.",
        "data_quality": "Needs Vote",
        "namevariations": ["C Lekebusch", "Cari Lekebusch den rykande Bönsyrsan"],
        "aliases": [{"id": 89, "name": "Mr. James Barth"}, {"id": 1294, "name": "Braincell"}],
        "members": [],
        "groups": [
            {"id": 2, "name": "Mr. James Barth & A.D."},
            {"id": 2470, "name": "Puente Latino"},
        ],
        "urls": ["https://lekebusch.bandcamp.com/", "http://www.lekebuschmusik.se"],
    }


def test_group_members_with_ids_in_either_dump_style() -> None:
    artists = by_id("artists")
    assert artists[2]["members"] == [
        {"id": 26, "name": "Alexi Delano"},
        {"id": 27, "name": "Cari Lekebusch"},
    ]
    assert artists[2]["profile"] is None  # <profile/>
    # Older dumps: the id as a preceding <id>, or none at all.
    assert artists[22387]["members"] == [
        {"id": 716506, "name": "Jeffrey Campbell"},
        {"id": None, "name": "Carlos Vasquez"},
    ]
    assert artists[22387]["aliases"] == [{"id": None, "name": "Koenig Cylinders"}]


def test_label_with_parent_and_sublabels() -> None:
    assert records("labels")[0] == {
        "id": 1,
        "name": "Planet E",
        "contactinfo": "Planet E Communications\r\nP.O. Box 27218\r\n"
        "Detroit, Michigan, MI 48227\r\nUSA",
        "profile": "[a=Carl Craig]'s classic techno label founded in 1991.\r\n\r\n"
        "On at least 1 release, Planet E is listed as publisher.",
        "data_quality": "Correct",
        "urls": ["http://planet-e.net", "http://planetecommunications.bandcamp.com"],
        "parent_label": {"id": 4711, "name": "Goldhead Music"},
        "sublabels": [{"id": 86537, "name": "Antidote (4)"}, {"id": 488315, "name": "TWPENTY"}],
    }


def test_labels_nested_in_sublabels_are_not_records() -> None:
    labels = records("labels")
    assert [label["id"] for label in labels] == [1, 86537, 5]
    assert 488315 not in {label["id"] for label in labels}
    assert labels[1]["parent_label"] == {"id": 1, "name": "Planet E"}
    assert labels[1]["sublabels"] == [] and labels[1]["contactinfo"] is None
    assert labels[2]["parent_label"] == {"id": None, "name": "Parent Without Id"}


def test_master_record() -> None:
    masters = by_id("masters")
    assert masters[122] == {
        "id": 122,
        "main_release": 85912,
        "title": "Organized Chaos E.P.",
        "year": 1993,
        "notes": None,
        "data_quality": "Correct",
        "artists": [credit(69209, "Mixrace")],
        "genres": ["Electronic"],
        "styles": ["Breakbeat", "Hardcore", "Jungle"],
        "videos": [
            {
                "src": "https://www.youtube.com/watch?v=mksCnb_USuc",
                "duration": 364,
                "embed": True,
                "title": "Mix Race - Mixrace Outta Hand",
                "description": "[SHADOW 28] Mixrace - Organized Chaos EP (1992)",
            }
        ],
    }
    second = masters[713738]
    assert second["artists"] == [
        credit(4, "Johannes Heil", anv="J. Heil", join="Vs."),
        credit(5, "Heiko Laux"),
    ]
    assert second["title"] == "Split & Splice\t(Remixes)"
    assert second["year"] is None  # Discogs writes 0 for an unknown year


def test_release_record() -> None:
    release = by_id("releases")[4497890]
    assert release == {
        "id": 4497890,
        "status": "Accepted",
        "title": "Now That's What I Call \r\nMusic!\tVol. 7",
        "country": "UK & Europe",
        "released": "1986-00-00",
        "year": 1986,
        "notes": None,
        "data_quality": "Needs Vote",
        "master_id": 96559,
        "is_main_release": True,
        "artists": [credit(194, "Various")],
        "extraartists": [
            credit(None, "Unknown Sleeve Designer", role="Design"),
            credit(None, "Old Style Unlinked", role="Photography By", tracks="A1 to B2"),
        ],
        "labels": [
            {"id": 26126, "name": "EMI", "catno": "NOW 7"},
            {"id": 26126, "name": "EMI", "catno": "NOW 7 (alt)"},
            {"id": None, "name": "Not On Label (Now Series)", "catno": "none"},
        ],
        "series": [{"id": 412, "name": "Now That's What I Call Music!", "catno": "7"}],
        "formats": [
            {"name": "Vinyl", "qty": 2, "text": "Gatefold", "descriptions": ["LP", "Compilation"]},
            {"name": "All Media", "qty": None, "text": None, "descriptions": []},
        ],
        "genres": ["Pop", "Rock"],
        "styles": ["Synth-pop"],
        "tracklist": [
            {
                "position": "A1",
                "title": "Take On Me",
                "duration": None,
                "artists": [credit(21224, "a-ha")],
                "extraartists": [],
                "sub_tracks": [],
            }
        ],
        "identifiers": [],
        "companies": [],
        "videos": [],
    }


def test_track_artists_are_not_main_artists() -> None:
    release = by_id("releases")[3]
    assert release["artists"] == [credit(3, "Josh Wink")]
    assert release["extraartists"] == [credit(3, "Josh Wink", role="DJ Mix")]
    first, second = release["tracklist"]
    assert [a["id"] for a in first["artists"]] == [5, 4]
    assert first["artists"][0]["join"] == "&"
    assert first["extraartists"] == [credit(11233, "Chris Lum", role="Producer")]
    assert first["sub_tracks"][0]["position"] == "1.a"
    assert second["artists"] == [credit(15525, "Karl Axel Bissler", anv="K.A.B.")]


def test_release_odds_and_ends() -> None:
    releases = by_id("releases")
    assert releases[3]["master_id"] == 66526 and releases[3]["is_main_release"] is False
    assert releases[3]["companies"] == [
        {
            "id": 93330,
            "name": "Columbia Records",
            "catno": None,
            "entity_type": 10,
            "entity_type_name": "Manufactured By",
        }
    ]
    assert releases[3]["identifiers"][1] == {
        "type": "Matrix / Runout",
        "description": "CD1 (Variation 1)",
        "value": "SMDCD370/A *043193",
    }
    draft = releases[1000001]
    assert (draft["status"], draft["released"], draft["year"]) == ("Draft", "1987", 1987)
    assert draft["master_id"] is None and draft["is_main_release"] is False
    assert draft["country"] is None and draft["tracklist"] == []


def test_every_record_of_an_entity_has_the_same_keys() -> None:
    for entity in ENTITIES:
        shapes = {tuple(record) for record in records(entity)}
        assert len(shapes) == 1, entity


def test_malformed_records_are_skipped_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = DumpStats()
    with caplog.at_level(logging.WARNING, logger="extractor.sources.dumps.discogs"):
        ids = [r["id"] for r in iter_records(sample("artists"), stats=stats)]
    assert ids == [27, 2, 22387, 194]  # the file goes on after a bad record
    assert (stats.records, stats.skipped) == (4, 2)
    assert stats.skip_samples == [
        "record 4: the record id '12a' is not a positive 64-bit integer",
        "record 5: the record has no id",
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "discogs_20990101_artists.xml" in warnings[0] and "record=4" in warnings[0]
    assert "'12a'" in warnings[0]


def test_release_without_or_with_a_negative_id_is_skipped() -> None:
    stats = DumpStats()
    assert [r["id"] for r in iter_records(sample("releases"), stats=stats)] == [3, 4497890, 1000001]
    assert stats.skip_samples == [
        "record 4: the record has no id",
        "record 5: the record id '-5' is not a positive 64-bit integer",
    ]


def test_unexpected_record_element_is_skipped() -> None:
    stats = DumpStats()
    xml = b"<labels><label><id>1</id></label><artist><id>2</id></artist></labels>"
    assert [r["id"] for r in parse_stream(io.BytesIO(xml), "labels", stats=stats)] == [1]
    assert stats.skip_samples == ["record 2: unexpected element <artist>, expected <label>"]


def test_ids_beyond_bigint_are_not_ids() -> None:
    stats = DumpStats()
    xml = (
        b'<releases><release id="9223372036854775808"><title>Too big</title></release>'
        b'<release id="7"><labels><label name="L" catno="C" id="99999999999999999999"/>'
        b"</labels></release></releases>"
    )
    [release] = parse_stream(io.BytesIO(xml), "releases", stats=stats)
    assert release["labels"] == [{"id": None, "name": "L", "catno": "C"}]
    assert stats.skipped == 1


def test_gzip_and_plain_read_the_same(gz_samples: dict[str, Path]) -> None:
    for entity, gz_path in gz_samples.items():
        assert gz_path.name.endswith(".xml.gz")
        assert records(entity, gz_path) == records(entity)


def test_gzip_is_detected_by_magic_bytes_not_name(tmp_path: Path) -> None:
    path = tmp_path / "labels-export.xml"
    path.write_bytes(gzip.compress(sample("labels").read_bytes()))
    assert [r["id"] for r in iter_records(path)] == [1, 86537, 5]  # entity from the root


def test_entity_from_file_name() -> None:
    assert entity_of(Path("discogs_20250101_releases.xml.gz")) == "releases"
    assert entity_of(Path("discogs_20250101_labels.xml")) == "labels"
    assert entity_of(Path("dump.xml.gz")) is None


def test_wrong_root_for_the_entity_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20990101_masters.xml"
    path.write_bytes(sample("labels").read_bytes())
    with pytest.raises(DumpFormatError, match=r"root element is <labels>, expected <masters>"):
        list(iter_records(path))
    with pytest.raises(ValueError, match="unknown Discogs entity"):
        list(iter_records(sample("labels"), "tracks"))


def test_pages_and_progress() -> None:
    stats = DumpStats()
    pages = list(iter_pages(sample("releases"), 2, stats=stats))
    assert [[r["id"] for r in page] for page in pages] == [[3, 4497890], [1000001]]
    assert stats.bytes_read == stats.bytes_total == sample("releases").stat().st_size
    assert stats.file.endswith("discogs_20990101_releases.xml")


def test_unknown_elements_are_counted() -> None:
    stats = DumpStats()
    xml = b'<masters><master id="1"><title>T</title><rating>5</rating></master></masters>'
    assert next(parse_stream(io.BytesIO(xml), stats=stats))["title"] == "T"
    assert stats.unknown_tags == {"rating": 1}


def test_truncated_gzip_yields_every_complete_record_then_names_the_file(
    tmp_path: Path,
) -> None:
    whole = write_releases(tmp_path / "discogs_20990101_releases.xml.gz", 3000).read_bytes()
    cut = tmp_path / "cut_releases.xml.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    available = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    complete = available.count(b"</release>")
    assert not available.rstrip().endswith(b"</release>")  # the cut is inside a record
    seen: list[int] = []
    with pytest.raises(DumpTruncatedError, match=r"cut_releases\.xml\.gz: .*cut short"):
        for record in iter_records(cut, "releases"):
            seen.append(record["id"])
    assert seen == list(range(1, complete + 1))


def gzip_without_end_marker(data: bytes) -> bytes:
    """A gzip stream holding ``data`` that stops before its end marker, as a cut file does."""
    compressor = zlib.compressobj(wbits=31)
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


@pytest.mark.parametrize("after", ["", "\n", '\n<release id="4', '\n<release id="4" status'])
def test_a_break_right_after_a_record_still_yields_it(tmp_path: Path, after: str) -> None:
    text = sample("releases").read_text()
    end = text.index("</release>", text.index('<release id="1000001"')) + len("</release>")
    path = tmp_path / "discogs_20990101_releases.xml.gz"
    path.write_bytes(gzip_without_end_marker((text[:end] + after).encode()))
    seen: list[int] = []
    with pytest.raises(DumpTruncatedError, match="cut short"):
        seen.extend(r["id"] for r in iter_records(path))
    assert seen == [3, 4497890, 1000001]


def test_truncated_plain_xml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20990101_labels.xml"
    text = sample("labels").read_text()
    path.write_text(text[: text.index("<label><id>5</id>") + 20])
    seen: list[int] = []
    with pytest.raises(DumpTruncatedError, match=r"labels.xml: line \d+, column \d+: .*cut short"):
        seen.extend(r["id"] for r in iter_records(path))
    assert seen == [1, 86537]


def test_not_well_formed_xml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "discogs_20990101_artists.xml"
    path.write_bytes(
        b"<artists>\n<artist><id>1</id><name>One</name></artist>\n"
        b"<artist><id>2</id><name>Bell \x07 char</name></artist>\n</artists>\n"
    )
    seen: list[int] = []
    with pytest.raises(DumpFormatError, match=r"artists.xml: line 3, column \d+: not well-formed"):
        seen.extend(r["id"] for r in iter_records(path))
    assert seen == [1]


def test_html_entities_are_not_xml() -> None:
    xml = b"<artists><artist><id>1</id><name>Caf&eacute;</name></artist></artists>"
    with pytest.raises(DumpFormatError, match=r"line 1.*undefined entity"):
        list(parse_stream(io.BytesIO(xml), "artists", name="inline.xml"))


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE artists [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">\n'
        for n in range(1, 10)
    )
    + "]>\n<artists><artist><id>1</id><name>&lol9;</name></artist></artists>\n"
).encode()


def test_entity_bomb_is_refused_quickly_without_memory_growth() -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DumpFormatError, match=r"bomb.xml: line 2.*<!DOCTYPE>"):
            list(parse_stream(io.BytesIO(BILLION_LAUGHS), "artists", name="bomb.xml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 0.5
    assert peak < 1_000_000  # the expansion would be 10**9 * 3 bytes


def test_external_entities_and_dtds_are_never_fetched(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    documents = [
        f'<!DOCTYPE a [<!ENTITY e SYSTEM "file://{secret}">]><artists><artist><id>1</id>'
        "<name>&e;</name></artist></artists>",
        f'<!DOCTYPE artists SYSTEM "file://{secret}"><artists></artists>',
    ]
    for document in documents:
        with pytest.raises(DumpFormatError, match="<!DOCTYPE>"):
            list(parse_stream(io.BytesIO(document.encode()), "artists"))


def test_memory_stays_flat_over_a_large_file(tmp_path: Path) -> None:
    path = write_releases(tmp_path / "discogs_20990101_releases.xml.gz", 20_000)
    tracemalloc.start()
    try:
        count = 0
        for count, _ in enumerate(iter_records(path), start=1):
            if count == 2_000:
                tracemalloc.reset_peak()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < 8_000_000  # about one 256 KiB chunk of records, not the 20k records
