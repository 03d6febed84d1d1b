"""The XML record streamer: records are depth-1 elements, handed out once complete."""

from __future__ import annotations

import pytest

from extractor.sources.dumps import DumpFormatError
from extractor.sources.dumps.xmlstream import XmlRecordStream
from tests.extractor.dumps.samples import generated_release

NESTED = (
    b"<labels><label><id>1</id><sublabels><label id='2'>Two</label>"
    b"<label id='3'>Three</label></sublabels></label><label><id>4</id></label></labels>"
)


def test_only_depth_one_elements_are_records() -> None:
    stream = XmlRecordStream("nested.xml")
    records = list(stream.elements([NESTED]))
    assert [r.findtext("id") for r in records] == ["1", "4"]
    assert [sub.get("id") for sub in records[0].iter("label")][1:] == ["2", "3"]
    assert stream.root_tag == "labels"


def test_chunk_boundaries_anywhere() -> None:
    one_byte_chunks = [NESTED[i : i + 1] for i in range(len(NESTED))]
    records = list(XmlRecordStream("nested.xml").elements(one_byte_chunks))
    assert [r.findtext("id") for r in records] == ["1", "4"]


def test_the_root_holds_at_most_the_open_record() -> None:
    stream = XmlRecordStream("releases.xml")
    body = "".join(generated_release(n) for n in range(1, 2001)).encode()
    chunks = [b"<releases>", *(body[i : i + 4096] for i in range(0, len(body), 4096))]
    handed_out = 0
    for chunk in [*chunks, b"</releases>"]:
        handed_out += len(stream.feed(chunk))
        assert stream.held <= 1  # records never pile up in the tree
    handed_out += len(stream.close())
    assert handed_out == 2000 and stream.held == 0


def test_a_dtd_is_refused_before_anything_is_declared() -> None:
    stream = XmlRecordStream("dtd.xml")
    with pytest.raises(DumpFormatError, match=r"dtd.xml: line 1, column \d+: .*<!DOCTYPE>"):
        stream.feed(b'<!DOCTYPE labels [<!ENTITY x "y">]><labels/>')
