"""The plant serves batches the way the worker measured them, and routes like a Service."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slo_operator.sim.engine import SimSettings, Simulation, _Pod
from slo_operator.sim.plant import (
    DEFAULT_SPREAD,
    MIN_POOL,
    BatchSpread,
    Plant,
    measured_plant,
    profile_medians,
)
from slo_operator.types import ProfileSet, RuntimeConfig, VariantProfile
from tests.unit.sim.helpers import FLAT, Hold

LINE = ProfileSet(variants={"full": VariantProfile(alpha_ms=10.0, beta_ms=1.0, accuracy=0.9)})


def _batch_times(plant: Plant | None, sizes: list[int], seed: int = 0) -> list[float]:
    """Service time (ms) of batches of the given sizes, one after the other on an idle
    replica (each batch's requests arrive together, long after the previous batch)."""
    arr: list[float] = []
    for k, b in enumerate(sizes):
        arr += [10.0 * k] * b
    a = np.asarray(arr)
    settings = SimSettings(service_cv=0.0, queue_limit=1 << 20)
    cfg = RuntimeConfig(1, 0, 64, "full")
    sim = Simulation(
        a, np.zeros(len(a)), 10 * len(sizes) + 10, LINE, cfg, 100.0, settings, seed, plant=plant
    )
    pod = _Pod(0.0, 0.0, "full")
    pod.arr = a.tolist()
    served: list[float] = []
    counts: list[int] = []
    dones: list[float] = []
    sim._serve(pod, 1e9, True, served, counts, dones, [], [])
    assert counts == sizes
    starts = [10.0 * k for k in range(len(sizes))]
    return [round((d - s) * 1000.0, 6) for d, s in zip(dones, starts, strict=True)]


def test_without_a_plant_batches_follow_the_controllers_line() -> None:
    assert _batch_times(None, [1, 4, 8]) == [11.0, 14.0, 18.0]


def test_measured_medians_replace_the_line() -> None:
    plant = Plant(medians_ms={"full": (30.0, 31.0, 40.0)})
    # sizes 1..3 measured; beyond them the line's slope from the last median
    assert _batch_times(plant, [1, 3, 5]) == [30.0, 40.0, 42.0]


def test_batch_times_draw_from_the_measured_spread() -> None:
    spread = BatchSpread({"full": {1: (0.5, 1.0, 1.0, 4.0)}})
    plant = Plant(medians_ms={"full": (20.0,)}, spread=spread)
    times = _batch_times(plant, [1] * 400)
    assert set(times) == {10.0, 20.0, 80.0}  # the median times each measured ratio
    share = {v: times.count(v) / len(times) for v in set(times)}
    assert share[20.0] == pytest.approx(0.5, abs=0.08)
    assert share[80.0] == pytest.approx(0.25, abs=0.07)  # the stall, as often as measured


def test_a_size_pools_its_nearest_measured_sizes() -> None:
    spread = BatchSpread({"full": {1: (1.0,) * 150, 4: (2.0,) * 150, 32: (3.0,) * 150}})
    got = spread.samples("full", 2)
    assert len(got) >= MIN_POOL
    assert set(got) == {1.0, 2.0}  # sizes 1 and 4, not 32
    assert set(spread.samples("quantized", 30)) == {3.0, 2.0}  # unmeasured variant: pooled


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({}, "needs a 'ratios' object"),
        ({"ratios": {}}, "no variant has samples"),
        ({"ratios": {"full": {"1": [1.0, -2.0]}}}, "'full' size 1: ratios must be positive"),
        ({"ratios": {"full": {"0": [1.0]}}}, "'full' size 0"),
    ],
)
def test_bad_spread_documents_are_named(doc: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BatchSpread.from_document(doc, "spread.json")


def test_unreadable_spread_file_names_the_path(tmp_path: Path) -> None:
    bad = tmp_path / "s.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"s\.json: not a readable batch-spread JSON"):
        BatchSpread.load(bad)


def test_shipped_spread_is_measured_and_skewed() -> None:
    spread = BatchSpread.load(DEFAULT_SPREAD)
    doc = json.loads(DEFAULT_SPREAD.read_text())
    assert "loadavg_before" in doc["machine"]
    for variant in ("full", "quantized", "distilled"):
        r = np.asarray(spread.samples(variant, 8))
        assert np.median(r) == pytest.approx(1.0, abs=0.1)
        assert np.percentile(r, 99) > 1.3  # a tail the controller's line does not have
        assert r.max() / np.median(r) > 1.4  # and stalls


def test_profile_medians_need_a_contiguous_series(tmp_path: Path) -> None:
    p = tmp_path / "p.json"
    p.write_text(
        json.dumps(
            {"variants": {}, "extra": {"batch_sizes": [1, 2, 3], "median_ms": {"full": [1, 2, 3]}}}
        )
    )
    assert profile_medians(p) == {"full": (1.0, 2.0, 3.0)}
    p.write_text(
        json.dumps(
            {"variants": {}, "extra": {"batch_sizes": [1, 2, 4], "median_ms": {"full": [1, 2, 3]}}}
        )
    )
    assert profile_medians(p) == {}


def test_service_routing_ignores_queue_lengths() -> None:
    """kube-proxy picks a random endpoint per request: a replica with a long queue gets as
    many new requests as an idle one (no join-shortest-queue)."""
    n = 4000
    arrivals = np.sort(np.random.default_rng(3).uniform(0.0, 1.0, n))
    u = np.random.default_rng(4).random(n)
    cfg = RuntimeConfig(2, 0, 32, "full")
    sim = Simulation(arrivals, u, 2, FLAT, cfg, 100.0, SimSettings(service_cv=0.0))
    busy, idle = sim.pods
    busy.arr = [0.0] * 200  # a backlog of 200 requests before the tick
    busy.free = 5.0
    sim._route(0, [busy, idle])
    to_busy, to_idle = len(busy.arr) - 200, len(idle.arr)
    assert to_busy + to_idle == n
    assert to_busy / n == pytest.approx(0.5, abs=0.03)


def test_routing_is_identical_for_policies_with_the_same_ready_count() -> None:
    arrivals = np.sort(np.random.default_rng(5).uniform(0.0, 1.0, 500))
    u = np.random.default_rng(6).random(500)
    got = []
    for cfg in (RuntimeConfig(3, 0, 32, "full"), RuntimeConfig(3, 5, 8, "quantized")):
        sim = Simulation(arrivals, u, 2, FLAT, cfg, 100.0, SimSettings(service_cv=0.0))
        sim._route(0, list(sim.pods))
        got.append([len(p.arr) for p in sim.pods])
    assert got[0] == got[1]
    sim = Simulation(arrivals, u, 2, FLAT, RuntimeConfig(3, 0, 32, "full"), 100.0)
    sim.run(Hold())  # and a whole run routes every request somewhere
    assert sim.completed.sum() + sim.rejected.sum() == 500


def test_the_profiles_batch_times_give_the_spread_and_medians(tmp_path: Path) -> None:
    """A profile that carries `batch_times` (docs/contracts.md) is its own spread."""
    profile = tmp_path / "p.json"
    profile.write_text(json.dumps({
        "variants": {"full": {"alpha_ms": 10.0, "beta_ms": 1.0, "accuracy": 0.9}},
        "batch_times": {"tokens": 16, "batch_sizes": [1, 4],
                        "ms": {"full": [[20.0, 20.0, 60.0], [40.0, 40.0, 40.0]]}},
    }))  # fmt: skip
    plant = measured_plant(profile)
    assert "batch_times" in plant.source
    assert plant.spread is not None
    assert set(plant.spread.samples("full", 1)) == {1.0, 3.0}  # run / median, pooled with 4
    assert plant.median_ms("full", 1, LINE) == 20.0
    assert plant.median_ms("full", 4, LINE) == 40.0
    assert plant.median_ms("full", 2, LINE) == pytest.approx(20.0 + 20.0 / 3)  # interpolated
    other = tmp_path / "s.json"
    other.write_text(json.dumps({"ratios": {"full": {"1": [1.5]}}}))
    assert set(measured_plant(profile, other).spread.samples("full", 1)) == {1.5}  # type: ignore[union-attr]
