"""The baselines follow the rules of the real autoscalers, at their documented defaults."""

from __future__ import annotations

import numpy as np
import pytest

from slo_operator.sim.baselines import (
    BASELINES,
    SWEEPS,
    FleetCalibration,
    HPAQuantilePolicy,
    KEDAPeakPolicy,
    make_baseline,
    target_value,
)
from slo_operator.sim.engine import SimSettings, Simulation, SimView
from slo_operator.sim.policies import HPAPolicy, KEDAPolicy, KPAPolicy
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import RuntimeConfig
from tests.unit.sim.helpers import FLAT, Hold


def _spec(hi: int = 64) -> LatencySLOSpec:
    return LatencySLOSpec.model_validate(
        {"targetRef": {"name": "w"}, "objective": {"latencyMs": 100},
         "replicas": {"min": 1, "max": hi}}
    )  # fmt: skip


class Reading:
    def __init__(self, rate: float | None, p99: float | None, peak: float | None) -> None:
        self.request_rate, self.latency_ms, self.peak_request_rate = rate, p99, peak


class View:
    """A SimView stand-in whose readings can change between calls."""

    def __init__(self, replicas: int, ready: int | None = None, busy: float = 0.5,
                 rate: float = 0.0, p99: float | None = None, peak: float | None = None,
                 concurrency: float = 0.0, inflight: float = 0.0) -> None:  # fmt: skip
        self.config = RuntimeConfig(replicas, 0, 32, "full")
        self.ready_replicas = replicas if ready is None else ready
        self.starting_replicas = 0
        self.busy, self.rate, self.p99, self.peak = busy, rate, p99, peak
        self.conc, self.snapshot = concurrency, inflight
        self.windows: list[int] = []

    def busy_share(self, span: int) -> float:
        return self.busy

    def request_rate(self, span: int, lag_s: int = 0) -> float:
        return self.rate

    def concurrency(self, span: int) -> float:
        return self.conc

    def inflight(self, span: int) -> float:
        return self.snapshot

    def observe(self, window: int, q: float, recent_s: int | None = None) -> Reading:
        self.windows.append(window)
        return Reading(self.rate, self.p99, self.peak)


# ------------------------------------------------------------------------------ HPA
@pytest.mark.parametrize(
    ("current", "expected"),
    [(1, 4), (2, 4), (3, 6), (8, 16)],
    ids=["1->4", "2->4", "3->6", "8->16"],
)
def test_hpa_without_behavior_scales_up_to_max_of_double_and_four(
    current: int, expected: int
) -> None:
    """kube-controller-manager's legacy rule (scaleUpLimitFactor 2, scaleUpLimitMinimum 4),
    the one an HPA without `behavior` gets: not max(2 x current, current + 4)."""
    hpa = HPAPolicy(_spec(), RuntimeConfig(current, 0, 32, "full"))
    out = hpa.act(15, View(current, busy=8.0))  # asks for 10 x current
    assert out is not None
    assert out.replicas == expected


def test_hpa_target_is_the_swept_utilization() -> None:
    hpa = make_baseline("hpa", _spec(), RuntimeConfig(4, 0, 32, "full"), 0.5)
    out = hpa.act(15, View(4, busy=0.75))  # 0.75 / 0.5 = 1.5 -> 6
    assert out is not None
    assert out.replicas == 6


# ------------------------------------------------------------------------------ KEDA
def test_keda_reads_a_fresh_rate_at_every_hpa_sync() -> None:
    """The HPA asks KEDA every 15 s and KEDA queries Prometheus then (no 30 s cache)."""
    keda = KEDAPolicy(_spec(), RuntimeConfig(1, 0, 32, "full"), capacity_rps=500)
    view = View(1, rate=100.0)
    assert keda.act(30, view) is None  # 100 / 400: below, but 1 is the minimum
    view.rate = 1600.0
    out = keda.act(45, view)
    assert out is not None
    assert out.replicas == 4  # ceil(1600 / 400), 15 s later
    assert view.windows == [60, 60]  # sum(rate(...[1m]))


def test_keda_average_value_divides_by_the_threshold() -> None:
    keda = make_baseline("keda", _spec(), RuntimeConfig(2, 0, 32, "full"), 100.0)
    out = keda.act(15, View(2, rate=700.0))
    assert out is not None
    assert out.replicas == 4  # ceil(700 / 100) capped at max(4, 4)


def test_keda_peak_reads_the_peak_rate() -> None:
    keda = KEDAPeakPolicy(_spec(), RuntimeConfig(2, 0, 32, "full"), 100.0, threshold_rps=100.0)
    out = keda.act(15, View(2, rate=150.0, peak=390.0))
    assert out is not None
    assert out.replicas == 4  # ceil(390 / 100), not ceil(150 / 100)


# ----------------------------------------------------------------------- HPA on p99
def test_hpa_p99_is_a_value_metric_on_ready_pods() -> None:
    """type: Value -> desired = ceil(ready x value / target), within the tolerance none."""
    hpa = HPAQuantilePolicy(_spec(), RuntimeConfig(4, 0, 32, "full"), target_ms=80.0)
    assert hpa.act(15, View(4, ready=3, p99=84.0)) is None  # 1.05: within 0.1
    out = hpa.act(30, View(4, ready=3, p99=160.0))
    assert out is not None
    assert out.replicas == 6  # ceil(3 x 2.0), not ceil(4 x 2.0)
    assert hpa.act(45, View(6, p99=None)) is None  # no samples: no metric, no action


# ------------------------------------------------------------------------------- KPA
def test_kpa_in_panic_takes_the_max_of_stable_panic_and_the_panic_high() -> None:
    kpa = KPAPolicy(_spec(), RuntimeConfig(2, 0, 32, "full"), target=10)

    class Split(View):
        def __init__(self, replicas: int, stable: float, panic: float) -> None:
            super().__init__(replicas)
            self.stable, self.panic = stable, panic

        def concurrency(self, span: int) -> float:
            return self.stable if span == KPAPolicy.stable_s else self.panic

    out = kpa.act(2, Split(2, stable=10.0, panic=60.0))  # panic: ceil(60 / 7) = 9 >= 2 x 2
    assert out is not None
    assert out.replicas == 9
    # still in panic; the stable window now asks more than the panic one: stable wins
    out = kpa.act(4, Split(9, stable=90.0, panic=14.0))
    assert out is not None
    assert out.replicas == 13  # ceil(90 / 7), not max(panic 2, current 9)
    # both fall: the panic keeps the most it asked (13), even below the current count
    out = kpa.act(6, Split(11, stable=7.0, panic=7.0))
    assert out is not None
    assert out.replicas == 13


def test_kpa_reads_time_averaged_concurrency_not_a_snapshot() -> None:
    kpa = KPAPolicy(_spec(), RuntimeConfig(1, 0, 32, "full"), target=10)
    out = kpa.act(2, View(1, concurrency=14.0, inflight=0.0))
    assert out is not None
    assert out.replicas == 2  # ceil(14 / 7)


def test_sim_concurrency_is_the_time_integral_of_requests_in_flight() -> None:
    """One replica, 10 ms batches: two lone requests spend 10 ms each in flight, a pair
    arriving together is one batch (window 0): 10 ms each."""
    arrivals = np.array([0.100, 0.500, 0.800, 0.800])
    sim = Simulation(arrivals, np.zeros(4), 3, FLAT, RuntimeConfig(1, 0, 32, "full"), 100.0,
                     SimSettings(service_cv=0.0))  # fmt: skip
    sim.run(Hold())
    view = SimView(sim)
    # 0.010 + 0.010 + 2 x 0.010 s in flight within second 0; nothing in seconds 1 and 2
    assert view.concurrency(3) == pytest.approx(0.040 / 3)
    assert float(sim.inflight[0]) == 0.0  # the end-of-second snapshot saw none of it


def test_sim_concurrency_counts_requests_across_second_boundaries() -> None:
    # 0.995 + 10 ms: 5 ms in second 0, 5 ms in second 1
    sim = Simulation(np.array([0.995]), np.zeros(1), 2, FLAT, RuntimeConfig(1, 0, 32, "full"),
                     100.0, SimSettings(service_cv=0.0))  # fmt: skip
    sim.run(Hold())
    view = SimView(sim)
    assert view.concurrency(2) == pytest.approx(0.010 / 2)
    sim.t = 1
    assert view.concurrency(1) == pytest.approx(0.005)


# ----------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_sweeps_five_targets_loose_to_tight(name: str) -> None:
    cal = FleetCalibration("full", capacity_rps=100.0, inflight_at_capacity=4.0)
    values = [target_value(name, s, _spec(), cal) for s in SWEEPS[name]]
    assert len(values) >= 5
    assert values == sorted(values, reverse=True)  # a lower target scales out sooner
    controller = make_baseline(name, _spec(), RuntimeConfig(1, 0, 32, "full"), values[0])
    assert controller.name == name


def test_unknown_baseline_is_named() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'vpa'"):
        make_baseline("vpa", _spec(), RuntimeConfig(1, 0, 32, "full"), 1.0)
