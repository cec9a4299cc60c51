"""The story's five acts, read off a recording; the probe's counters; baseline names."""

from __future__ import annotations

import pytest

from slo_local.demo.baseline import PolicyError, parse_policy
from slo_local.demo.probe import measure, parse_counters
from slo_local.demo.scenario import build_scenario
from slo_local.demo.story import ACTS, read_story
from slo_local.demo.timeline import Recording, Step
from slo_local.loadgen import RequestRecord
from slo_operator.types import RuntimeConfig

FULL1 = RuntimeConfig(1, 0, 32, "full")
Q2 = RuntimeConfig(2, 0, 32, "quantized")
FULL2 = RuntimeConfig(2, 0, 32, "full")


def _rec(
    breach: range, steps: list[tuple[float, float, RuntimeConfig, RuntimeConfig]]
) -> Recording:
    rec = Recording(
        target_ms=100.0,
        quantile=0.99,
        window_s=15,
        interval_s=5,
        preferred="full",
        variant_names=("full", "quantized", "distilled"),
        accuracy={},
        duration_s=120,
    )
    for t in range(120):
        lat = 0.4 if t in breach else 0.03
        rec.requests += [RequestRecord(t + k / 10, lat, 200, "w", "full", 0.0) for k in range(10)]
    rec.steps = [Step(t, p, 10.0, None, 0.0, "x", "r", a != b, a, b, True) for t, p, a, b in steps]
    return rec


def test_a_complete_story_in_order() -> None:
    rec = _rec(
        range(20, 27),
        [
            (20.0, 60.0, FULL1, FULL1),
            (25.0, 300.0, FULL1, Q2),  # bridge and scale-up at the first step that saw it
            (45.0, 50.0, Q2, FULL2),  # restore on two replicas
            (85.0, 30.0, FULL2, FULL2),
            (95.0, 30.0, FULL2, FULL1),  # released after the load fell at 80 s
        ],
    )
    story = read_story(rec, step_at=20.0, fall_at=80.0)
    assert story.to_json() == {
        "breach": 20.0,
        "bridge": 25.0,
        "scale_up": 25.0,
        "restore": 45.0,
        "scale_down": 95.0,
    }
    assert story.complete
    assert story.verdict().startswith("story complete: breach 20s, bridge 25s")


def test_acts_that_did_not_happen_are_null() -> None:
    # no breach at all: nothing to bridge; a scale-up for the rate, never released
    rec = _rec(range(0), [(25.0, 60.0, FULL1, FULL2)])
    story = read_story(rec, step_at=20.0, fall_at=80.0)
    assert story.to_json() == {
        "breach": None, "bridge": None, "scale_up": 25.0, "restore": None, "scale_down": None
    }  # fmt: skip
    assert not story.complete
    assert story.missing() == ["breach", "bridge", "restore", "scale_down"]
    assert "story incomplete (no breach, bridge, restore, scale-down" in story.verdict().replace(
        "scale_down", "scale-down"
    )
    # a bridge later than one interval after the controller saw the breach is no bridge, and
    # restoring the variant is not a bridge either; a release before the fall is not the act
    late = _rec(
        range(20, 40),
        [(25.0, 300.0, FULL1, FULL2), (40.0, 300.0, FULL2, Q2), (60.0, 50.0, Q2, FULL1)],
    )
    story = read_story(late, step_at=20.0, fall_at=80.0)
    assert (story.breach, story.bridge, story.scale_up) == (20.0, None, 25.0)
    assert story.restore is None
    assert story.scale_down is None
    assert read_story(late, step_at=None, fall_at=None).to_json() == dict.fromkeys(ACTS)


METRICS = """\
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total {cpu}
# TYPE inference_batch_duration_seconds histogram
inference_batch_duration_seconds_sum{{variant="full"}} {bsum}
inference_batch_duration_seconds_count{{variant="full"}} {bcount}
# TYPE inference_batch_size histogram
inference_batch_size_sum {ssum}
inference_batch_size_count {bcount}
# TYPE inference_requests counter
inference_requests_total{{variant="full",code="200"}} {req}
"""


def test_the_probe_reads_the_factor_and_the_overhead_from_the_counters() -> None:
    sc = build_scenario()
    full = sc.profiles.variants["full"]
    before = parse_counters(METRICS.format(cpu=1.0, bsum=0.5, bcount=10, ssum=20, req=20))
    # 100 batches of 2 at twice the profile's time; 0.5 ms of CPU per request besides
    batch_s = 100 * 2 * full.batch_ms(2) / 1000
    after = parse_counters(
        METRICS.format(cpu=1.0 + batch_s + 0.1, bsum=0.5 + batch_s, bcount=110, ssum=220, req=220)
    )
    m = measure(before, after, sc.profiles)
    assert m is not None
    assert m.variant == "full"
    assert m.mean_batch_size == pytest.approx(2.0)
    assert m.factor == pytest.approx(2.0)
    assert m.overhead_ms == pytest.approx(0.5)
    assert measure(before, before, sc.profiles) is None  # nothing served in between


def test_baseline_names() -> None:
    spec = build_scenario().spec
    assert parse_policy("hpa", spec).label == "hpa"
    assert parse_policy("kpa-rps:quantized", spec).variant == "quantized"
    with pytest.raises(PolicyError, match="one of hpa"):
        parse_policy("cron", spec)
    with pytest.raises(PolicyError, match="variant 'tiny'"):
        parse_policy("hpa:tiny", spec)
