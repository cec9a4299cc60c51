"""The measured batch times a profile carries (`slo_contracts.batch_times`)."""

from __future__ import annotations

import random
import statistics

import pytest

from slo_contracts.batch_times import BatchTimes, BatchTimesError
from slo_contracts.profiles import ProfileSet, VariantProfile

RUNS = {
    "full": (
        (10.0, 11.0, 10.5, 40.0),  # one stall at batch 1
        (20.0, 21.0, 20.5, 19.5),
        (40.0, 41.0, 39.0, 40.5),
    ),
    "distilled": ((2.0, 2.1, 2.2, 1.9), (4.0, 4.1, 3.9, 4.2), (8.0, 8.2, 7.9, 8.1)),
}


def make() -> BatchTimes:
    return BatchTimes(batch_sizes=(1, 2, 4), ms=RUNS, tokens=16)


def test_samples_medians_and_stalls() -> None:
    bt = make()
    assert bt.samples("full", 2) == RUNS["full"][1]
    assert bt.median("full", 1) == pytest.approx(10.75)
    assert bt.stall_fraction("full") == pytest.approx(1 / 12)
    assert bt.stall_fraction("distilled") == 0.0
    with pytest.raises(KeyError, match="batch size 3"):
        bt.samples("full", 3)


def test_typical_time_between_and_beyond_the_measured_sizes() -> None:
    bt = make()
    m2, m4 = statistics.median(RUNS["full"][1]), statistics.median(RUNS["full"][2])
    assert bt.typical_ms("full", 3) == pytest.approx((m2 + m4) / 2)
    assert bt.typical_ms("full", 8) == pytest.approx(m4 + (m4 - m2) * 2)
    assert bt.typical_ms("full", 1) == bt.median("full", 1)


def test_draws_come_from_the_runs() -> None:
    bt = make()
    rng = random.Random(1)
    at_1 = [bt.draw("full", 1, rng) for _ in range(400)]
    assert set(at_1) == set(RUNS["full"][0])  # the stall included
    # an unmeasured size: runs of the nearest size, scaled by the typical times' ratio
    ratio = bt.typical_ms("full", 3) / bt.typical_ms("full", 2)
    at_3 = {round(bt.draw("full", 3, rng), 9) for _ in range(400)}
    assert at_3 == {round(x * ratio, 9) for x in RUNS["full"][1]}


def test_json_round_trip_scaling_and_profile_field() -> None:
    bt = make()
    assert BatchTimes.from_json(bt.to_json()) == bt
    doubled = bt.scaled({"full": 2.0})
    assert doubled.samples("full", 4) == tuple(2 * x for x in RUNS["full"][2])
    assert doubled.samples("distilled", 4) == RUNS["distilled"][2]
    profiles = ProfileSet(variants={"full": VariantProfile(5.0, 9.0)}, batch_times=bt)
    assert ProfileSet.from_json(profiles.to_json()) == profiles
    scaled = profiles.scaled({"full": 2.0}, source="x", extra={})
    assert scaled.batch_times == doubled
    assert "batch_times" not in ProfileSet(variants=profiles.variants).to_json()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"batch_sizes": [1, 2], "ms": {"full": [[1.0]]}}, r"ms\.full: needs one list"),
        ({"batch_sizes": [2, 1], "ms": {"full": [[1.0], [2.0]]}}, "batch_sizes"),
        ({"batch_sizes": [1], "ms": {"full": [[]]}}, r"ms\.full\[0\]"),
        ({"batch_sizes": [1], "ms": {"full": [[-1.0]]}}, r"ms\.full\[0\]"),
        ({"batch_sizes": [1], "ms": {"full": [["x"]]}}, r"ms\.full: times must be numbers"),
        ({"batch_sizes": [1], "ms": {}}, r"batch_times\.ms"),
        ({"batch_sizes": "1", "ms": {"full": [[1.0]]}}, "batch_sizes"),
        ({"batch_sizes": [1], "ms": {"full": [[1.0]]}, "tokens": 0}, "tokens"),
        ([1, 2], "must be an object"),
    ],
)
def test_bad_json_names_the_field(data: object, field: str) -> None:
    with pytest.raises(BatchTimesError, match=field):
        BatchTimes.from_json(data)
    if isinstance(data, dict):
        with pytest.raises(ValueError, match=field):
            ProfileSet.from_json({"variants": {}, "batch_times": data})
