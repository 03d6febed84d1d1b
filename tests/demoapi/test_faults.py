"""Fault knobs: the token bucket, the seeded dice and truncated bodies."""

import orjson
import pydantic
import pytest

from demoapi.faults import FaultInjector, Faults, TokenBucket, truncate_json


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_refuses_until_refilled() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, clock=clock)

    assert [bucket.acquire().allowed for _ in range(5)] == [True] * 4 + [False]
    refused = bucket.acquire()
    assert (refused.retry_after_s, refused.remaining, refused.limit) == (1, 0, 4)
    assert refused.headers()["Retry-After"] == "1"
    clock.now += 0.5
    assert [bucket.acquire().allowed for _ in range(3)] == [True, True, False]


def test_slow_bucket_asks_for_a_longer_wait() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=0.25, clock=clock)

    assert bucket.acquire().allowed
    refused = bucket.acquire()
    assert not refused.allowed
    assert refused.retry_after_s == 4
    assert "Retry-After" not in TokenBucket(rate=1, clock=clock).acquire().headers()


def test_dice_are_seeded_and_roughly_fair() -> None:
    faults = Faults(error_rate=0.2, malformed_rate=0.1, slow_rate=0.3, slow_ms=500, fault_seed=4)
    first, second = FaultInjector(faults), FaultInjector(faults)

    rolls = [(first.fails(), first.page_fault()) for _ in range(2_000)]

    assert rolls == [(second.fails(), second.page_fault()) for _ in range(2_000)]
    assert 0.15 < sum(failed for failed, _ in rolls) / 2_000 < 0.25
    assert 0.05 < sum(fault.malformed for _, fault in rolls) / 2_000 < 0.15
    assert {fault.delay_s for _, fault in rolls} == {0.0, 0.5}


def test_no_faults_by_default() -> None:
    injector = FaultInjector(Faults())

    assert injector.admit() is None
    assert not any(injector.fails() or injector.throttles() for _ in range(100))
    assert injector.page_fault().delay_s == 0.0


@pytest.mark.parametrize(
    "body", [b"[]", b'[{"id":"gen9ou-2000000001"}]', orjson.dumps(list(range(99)))]
)
def test_truncated_bodies_never_parse(body: bytes) -> None:
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(truncate_json(body))


def test_out_of_range_knobs_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        Faults(error_rate=1.5)
