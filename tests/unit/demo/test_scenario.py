"""The demo's scenario: its SLO file, its profile, its default story, and the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from slo_local.demo.scenario import (
    DEFAULT_COOLDOWN_FRACTION,
    DEFAULT_LOAD_FRACTION,
    DEFAULT_PROFILE,
    DEFAULT_SLO,
    DEFAULT_STEP_FACTOR,
    DEFAULT_STEP_OVER_SATURATION,
    ScenarioError,
    build_scenario,
    capacity_rps,
    default_model_dir,
    load_slo,
)
from slo_local.demo.simulate import run_scale, scaled_profiles, simulate
from slo_operator.model.queueing import predict
from slo_operator.types import ProfileSet


def test_the_demo_slo_is_a_valid_latencyslo_with_short_intervals() -> None:
    slo = load_slo(DEFAULT_SLO)
    assert (slo.namespace, slo.name) == ("demo", "sentiment")
    assert slo.spec.policy.interval_seconds == 5
    assert slo.spec.objective.window_seconds == 15
    assert slo.spec.replicas.min == 1
    assert slo.spec.variants.effective_preferred == "full"


def test_the_shipped_profile_is_measured_with_one_thread() -> None:
    profiles = ProfileSet.load(DEFAULT_PROFILE)
    assert profiles.threads == 1
    assert set(profiles.variants) >= {"full", "quantized", "distilled"}
    assert profiles.variants["full"].batch_ms(8) > profiles.variants["quantized"].batch_ms(8)
    assert "calibrate" in profiles.source


@pytest.mark.parametrize("factor", [None, 0.6, 1.0, 1.3, 3.5])
def test_the_default_story_is_sized_from_the_machine(factor: float | None) -> None:
    """Before the measurement, from the profile; after it, from the profile scaled by the
    measured factor (on a slower machine with the demo's own target stretched alike): at
    every speed the same shape, x3 from 0.4 of one replica's capacity at the aim."""
    sc = build_scenario()
    if factor is not None:
        sc = sc.resized(factor)
        assert sc.machine_factor == factor
        assert sc.spec.target_latency_ms == round(100 * max(1.0, factor))
        sc_profiles = sc.profiles.scaled(
            dict.fromkeys(sc.profiles.variants, factor), source="", extra={}
        )
    else:
        sc_profiles = sc.profiles
    spec = sc.spec
    assert sc.initial.replicas == 1
    assert sc.initial.variant == "full"
    assert sc.workload.name == "step"
    assert sc.step_at() == pytest.approx(sc.duration_s / 4)
    peak = sc.workload.peak_rps
    assert peak == pytest.approx(DEFAULT_STEP_FACTOR * sc.base_rps)
    assert sc.base_rps == pytest.approx(DEFAULT_LOAD_FRACTION * sc.capacity_rps)
    assert sc.cooldown_rps == pytest.approx(DEFAULT_COOLDOWN_FRACTION * sc.base_rps)
    assert capacity_rps(spec, sc_profiles) == pytest.approx(sc.capacity_rps)
    assert sc.fall_at() == sc.duration_s
    windows = (0, 1, 2, 5, 10, 20, 50)

    def best(rate: float, replicas: int, variant: str) -> float:
        prof = sc_profiles.variants[variant]
        return min(predict(prof, rate, replicas, w, 32, spec.quantile).latency_ms for w in windows)

    # the model's view: one replica holds the start with room to spare, the step is over
    # one replica's capacity, the bridge holds the peak on one replica, two replicas of
    # full hold it
    assert best(sc.base_rps, 1, "full") <= 0.8 * spec.aim_latency_ms
    assert peak > 1.1 * sc.capacity_rps
    assert best(peak, 1, "quantized") <= 0.5 * spec.aim_latency_ms
    assert best(peak, 2, "full") <= spec.aim_latency_ms
    # and the capacity is where the model meets the aim with the best window
    assert best(sc.capacity_rps, 1, "full") == pytest.approx(spec.aim_latency_ms, rel=0.01)


@pytest.mark.parametrize("over_capacity", [0.7, 1.0, 1.4])
def test_a_measured_saturation_sizes_the_step_over_it(over_capacity: float) -> None:
    """With one replica's saturation measured, the step rises to 0.9 x it, whether the
    model's capacity at the aim is above it (a slow spell, HTTP costs) or below it (batching
    carries the replica past the aim); the start never exceeds 0.4 x the saturation."""
    plain = build_scenario().resized(0.8)
    saturation = over_capacity * plain.capacity_rps
    sc = build_scenario().resized(0.8, saturation)
    assert sc.saturation_rps == saturation
    assert sc.capacity_rps == pytest.approx(plain.capacity_rps)
    assert sc.workload.peak_rps == pytest.approx(DEFAULT_STEP_OVER_SATURATION * saturation)
    assert sc.base_rps == pytest.approx(DEFAULT_LOAD_FRACTION * min(saturation, plain.capacity_rps))
    assert sc.base_rps <= DEFAULT_LOAD_FRACTION * saturation + 1e-9
    assert sc.cooldown_rps == pytest.approx(DEFAULT_COOLDOWN_FRACTION * sc.base_rps)
    assert sc.step_at() == pytest.approx(sc.duration_s / 4)
    assert sc.fall_at() == sc.duration_s
    assert sc.describe()["one_replica_saturation_rps"] == pytest.approx(saturation, abs=0.01)
    # the same arrivals for the same scenario (the simulator and a baseline replay them)
    assert np.array_equal(sc.arrivals(), build_scenario().resized(0.8, saturation).arrivals())


def test_a_measured_saturation_leaves_a_fixed_rate_and_other_workloads_shapes() -> None:
    assert build_scenario().resizable
    assert not build_scenario(base_rps=20.0).resizable
    fixed = build_scenario(base_rps=20.0).resized(1.0, 50.0)
    assert (fixed.base_rps, fixed.workload.peak_rps) == (20.0, 60.0)
    assert fixed.saturation_rps == 50.0
    ramp = build_scenario(workload="ramp")
    sized = ramp.resized(1.0, 10.0)
    assert sized.base_rps == pytest.approx(DEFAULT_LOAD_FRACTION * 10.0)
    assert sized.workload.peak_rps / sized.base_rps == pytest.approx(
        ramp.workload.peak_rps / ramp.base_rps
    )
    for bad in (0.0, -3.0, float("nan"), float("inf")):
        with pytest.raises(ScenarioError, match="saturation"):
            build_scenario().resized(1.0, bad)


def test_warm_up_and_cool_down_surround_the_workload() -> None:
    sc = build_scenario(duration_s=40, warmup_s=10, cooldown_s=20, seed=3)
    arrivals = sc.arrivals()
    assert np.all(np.diff(arrivals) >= 0)
    assert arrivals[-1] < 10 + 40 + 20
    assert sc.scored_s == 60
    base, cool = sc.base_rps, sc.cooldown_rps
    assert cool is not None
    for start, end, rate in ((0, 10, base), (10 + 15, 10 + 40, 3 * base), (50, 70, cool)):
        count = np.sum((arrivals >= start) & (arrivals < end))
        assert count == pytest.approx(rate * (end - start), rel=0.3)
    # the workload's own arrivals, shifted by the warm-up: the simulator replays the same
    main = arrivals[(arrivals >= 10) & (arrivals < 50)] - 10
    assert np.allclose(main, sc.workload.arrivals())
    with pytest.raises(ScenarioError, match="--cooldown"):
        build_scenario(cooldown_s=2.5)


def test_a_fixed_rate_and_a_users_slo_are_not_resized(tmp_path: Path) -> None:
    sc = build_scenario(base_rps=20.0).resized(2.0)
    assert sc.base_rps == 20.0
    assert sc.cooldown_rps is None
    assert sc.spec.target_latency_ms == 200  # the demo's own SLO is still stretched
    own = tmp_path / "slo.yaml"
    own.write_text(DEFAULT_SLO.read_text())
    mine = build_scenario(slo_file=own).resized(2.0)
    assert mine.spec.target_latency_ms == 100  # a user's SLO never is
    assert mine.base_rps < build_scenario(slo_file=own).base_rps
    with pytest.raises(ScenarioError, match="factor"):
        build_scenario().resized(0.0)


def test_bad_inputs_name_the_option(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: latencyslo.io/v1alpha1\nkind: LatencySLO\nmetadata: {name: x}\n"
        "spec: {targetRef: {name: d}, objective: {latencyMs: -5}}\n"
    )
    with pytest.raises(ScenarioError, match=r"--slo .*latencyMs"):
        build_scenario(slo_file=bad)
    with pytest.raises(ScenarioError, match="--slo"):
        build_scenario(slo_file=tmp_path / "missing.yaml")
    with pytest.raises(ScenarioError, match="--profile"):
        build_scenario(profile_file=bad)
    with pytest.raises(ScenarioError, match="--rate"):
        build_scenario(base_rps=-1.0)
    with pytest.raises(ScenarioError, match="--workload"):
        build_scenario(workload="nope")
    tight = tmp_path / "tight.yaml"
    tight.write_text(
        "apiVersion: latencyslo.io/v1alpha1\nkind: LatencySLO\nmetadata: {name: x}\n"
        "spec: {targetRef: {name: d}, objective: {latencyMs: 1}}\n"
    )
    for rate in (None, 10.0):  # no replica holds it: nothing to size, whatever the rate
        with pytest.raises(ScenarioError, match=r"--slo .*misses the aim .* at every rate"):
            build_scenario(slo_file=tight, base_rps=rate)


def test_trace_workloads(tmp_path: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text("t_seconds,rps\n0,10\n20,30\n40,10\n")
    sc = build_scenario(workload="trace", trace_file=rates, duration_s=60)
    assert sc.workload.rate(10.0) == pytest.approx(10.0)
    assert sc.workload.rate(30.0) == pytest.approx(30.0)
    assert sc.step_at() == pytest.approx(20.0)
    shipped = build_scenario(workload="trace", duration_s=120, base_rps=40.0)
    assert shipped.workload.mean_rps == pytest.approx(40.0, rel=0.05)


def test_default_model_dir_agrees_with_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from inference_worker.demo_model import default_model_dir as worker_default

    assert default_model_dir() == worker_default()
    monkeypatch.setenv("LATENCYSLO_MODEL_DIR", "/somewhere/model")
    assert default_model_dir() == worker_default() == Path("/somewhere/model")


def test_the_simulator_replays_the_scenario() -> None:
    sc = build_scenario()
    metrics, trace = simulate(sc, startup_s=3.0)
    # scored from t = 0 (after the warm-up) to the end of the cool-down
    assert len(trace.ok) == sc.scored_s
    expected = np.sum((sc.arrivals() >= sc.warmup_s) & (sc.arrivals() < sc.warmup_s + sc.scored_s))
    assert metrics["requests"] == expected
    assert metrics["rejected"] == 0
    assert metrics["slo_attainment_requests"] > 0.97
    assert trace.variant_names[trace.variant[-1]] == "full"


def test_the_specs_queue_wait_limit_is_the_workers(tmp_path: Path) -> None:
    """A user's SLO that sets `batching.maxQueueWaitMs`: the demo's workers start at it and
    its simulated replay runs it (a 1 ms limit refuses what waited longer)."""
    own = tmp_path / "slo.yaml"
    own.write_text(DEFAULT_SLO.read_text().replace("batching:", "batching:\n    maxQueueWaitMs: 1"))
    sc = build_scenario(slo_file=own)
    assert sc.spec.batching.max_queue_wait_ms == 1
    assert sc.initial.max_queue_wait_ms == 1
    assert build_scenario().initial.max_queue_wait_ms is None
    metrics, _ = simulate(sc, startup_s=3.0)
    assert metrics["rejected"] > 0


def test_the_run_scale_is_the_median_per_variant_with_a_fallback() -> None:
    variants = {"full": None, "quantized": None, "distilled": None}
    scale = run_scale({"full": [1.1, 1.3, 1.2], "quantized": [2.0]}, variants)
    assert scale == {"full": 1.2, "quantized": 2.0, "distilled": pytest.approx(1.25)}
    assert run_scale({}, variants) == {"full": 1.0, "quantized": 1.0, "distilled": 1.0}
    assert run_scale({"unknown": [3.0]}, {"full": None}) == {"full": 1.0}


def test_scaled_profiles_multiply_the_batch_time_and_keep_the_accuracy() -> None:
    base = build_scenario().profiles
    scaled = scaled_profiles(base, {"full": 2.0})
    for name, p in base.variants.items():
        factor = 2.0 if name == "full" else 1.0
        q = scaled.variants[name]
        assert q.batch_ms(8) == pytest.approx(p.batch_ms(8) * factor)
        assert q.accuracy == p.accuracy
    assert scaled.extra["scale"] == {"full": 2.0}
