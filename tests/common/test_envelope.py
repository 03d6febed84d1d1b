"""The message contract: round trip, and a reason for every way a message can be bad."""

from __future__ import annotations

import orjson
import pytest

from common.envelope import EndOfJob, KeyedPage, PageBatch, decode, encode, line_hash
from common.errors import BadMessageError
from common.records import canonical_json, content_hash, prepare_page
from common.spec import load_spec


def test_page_round_trip_and_message_id() -> None:
    page = PageBatch("job", "demo", "replays", "replays:2025-12-01", 3, [{"id": "a\tb\n\u00e9"}])
    assert decode(encode(page)) == page
    assert page.message_id == "job/replays:2025-12-01/3"


HEADER = {"job_id": "j", "dataset": "d", "entity": "e", "slice_id": "s", "page": 1}


def test_keyed_page_carries_keys_and_canonical_record_lines() -> None:
    records = [{"id": "a", "b": [1, "x\ny"], "a": {"z": 1, "y": None}}, {"id": "c\u00e9"}]
    page = PageBatch("job", "demo", "replays", "s", 3, records, keys=["a", "c\u00e9"])
    decoded = decode(encode(page))
    assert isinstance(decoded, KeyedPage)
    assert decoded.message_id == page.message_id and decoded.keys == ["a", "c\u00e9"]
    # canonical: sorted keys at every level, the same bytes a v1 consumer hashes
    assert decoded.lines == [canonical_json(record) for record in records]
    assert [orjson.loads(line) for line in decoded.lines] == records
    # each line's content hash, computed once by the publisher
    assert decoded.hashes == [content_hash(record) for record in records]


def test_a_keyed_page_without_hashes_is_hashed_by_the_consumer() -> None:
    lines = [b'{"id":"a","x":1}', b'{"id":"b"}']
    body = orjson.dumps({"v": 2, "type": "page", **HEADER, "keys": ["a", "b"]})
    page = decode(body + b"\n" + b"\n".join(lines))
    assert isinstance(page, KeyedPage) and page.hashes is None
    for parse in (False, True):
        prepared = prepare_page(page, load_spec("demo").entities["replays"], parse=parse)
        assert [record.hash for record in prepared] == [line_hash(line) for line in lines]  # type: ignore[union-attr]


def test_keyed_page_of_no_records_and_keys_that_do_not_match() -> None:
    empty = decode(encode(PageBatch("job", "demo", "replays", "s", 0, [], keys=[])))
    assert isinstance(empty, KeyedPage) and empty.lines == [] and empty.keys == []
    with pytest.raises(ValueError, match="1 keys for 2 records"):
        encode(PageBatch("job", "demo", "replays", "s", 0, [{}, {}], keys=["a"]))


def test_a_version_1_message_with_newlines_is_still_read() -> None:
    body = orjson.dumps(
        {"v": 1, "type": "page", **HEADER, "records": [{"id": 1}]}, option=orjson.OPT_INDENT_2
    )
    assert b"\n" in body
    assert decode(body) == PageBatch("j", "d", "e", "s", 1, [{"id": 1}])


def test_end_of_job_round_trip() -> None:
    end = EndOfJob("job", "demo", "replays", pages=4, records=200)
    assert decode(encode(end)) == end


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (b"{nope", "not_json", "not valid JSON"),
        (b"\xff\xfe", "not_json", "not valid JSON"),
        (b"[1, 2]", "bad_envelope", "not a JSON object"),
        (orjson.dumps({"v": 3, "type": "page"}), "bad_version", "unknown envelope version 3"),
        (orjson.dumps({"v": 2, "type": "page"}), "bad_envelope", "without its record lines"),
        (
            orjson.dumps({"v": 2, "type": "page", **HEADER, "keys": ["a", "b"]}) + b"\n{}",
            "bad_envelope",
            "2 keys for 1 record lines",
        ),
        (orjson.dumps({"v": 2, "type": "end", **HEADER}) + b"\n", "bad_envelope", "type 'end'"),
        (
            orjson.dumps({"v": 2, "type": "page", **HEADER, "keys": ["a"], "hashes": "ab"})
            + b"\n{}",
            "bad_envelope",
            "32 hex digits per record line",
        ),
        (
            orjson.dumps({"v": 2, "type": "page", **HEADER, "keys": ["a"], "hashes": "zz" * 16})
            + b"\n{}",
            "bad_envelope",
            "not hexadecimal",
        ),
        (orjson.dumps({"v": 1, "type": "page", "job_id": "j"}), "bad_envelope", "'dataset'"),
        (orjson.dumps({"v": 1, "type": "x"}), "bad_envelope", "unknown message type"),
        (
            orjson.dumps(
                {
                    "v": 1,
                    "type": "page",
                    "job_id": "j",
                    "dataset": "d",
                    "entity": "e",
                    "slice_id": "s",
                    "page": "1",
                    "records": [],
                }
            ),
            "bad_envelope",
            "'page' has type str",
        ),
    ],
)
def test_bad_messages_say_why(body: bytes, code: str, text: str) -> None:
    with pytest.raises(BadMessageError) as caught:
        decode(body)
    assert caught.value.code == code
    assert text in caught.value.reason
