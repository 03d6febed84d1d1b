"""The message contract: round trip, and a reason for every way a message can be bad."""

from __future__ import annotations

import orjson
import pytest

from common.envelope import EndOfJob, PageBatch, decode, encode
from common.errors import BadMessageError


def test_page_round_trip_and_message_id() -> None:
    page = PageBatch("job", "demo", "replays", "replays:2025-12-01", 3, [{"id": "a\tb\n\u00e9"}])
    assert decode(encode(page)) == page
    assert page.message_id == "job/replays:2025-12-01/3"


def test_end_of_job_round_trip() -> None:
    end = EndOfJob("job", "demo", "replays", pages=4, records=200)
    assert decode(encode(end)) == end


@pytest.mark.parametrize(
    ("body", "code", "text"),
    [
        (b"{nope", "not_json", "not valid JSON"),
        (b"\xff\xfe", "not_json", "not valid JSON"),
        (b"[1, 2]", "bad_envelope", "not a JSON object"),
        (orjson.dumps({"v": 2, "type": "page"}), "bad_version", "unknown envelope version 2"),
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
