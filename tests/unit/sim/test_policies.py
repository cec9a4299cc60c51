"""The baselines follow their documented algorithms."""

from __future__ import annotations

import numpy as np

from slo_operator.sim.policies import (
    AIMDPolicy,
    HPAPolicy,
    KEDAPolicy,
    KPAPolicy,
    oracle_plan,
    static_replicas,
)
from slo_operator.spec import LatencySLOSpec
from slo_operator.types import RuntimeConfig


def _spec(hi: int = 16) -> LatencySLOSpec:
    return LatencySLOSpec.model_validate(
        {"targetRef": {"name": "w"}, "objective": {"latencyMs": 100},
         "replicas": {"min": 1, "max": hi}}
    )  # fmt: skip


class View:
    """A stand-in for SimView with fixed readings."""

    def __init__(self, replicas: int, busy: float = 0.5, ready: int | None = None,
                 starting: int = 0, inflight: float = 0.0, rate: float = 0.0,
                 slowest_ms: float = 0.0) -> None:  # fmt: skip
        self.config = RuntimeConfig(replicas, 0, 32, "full")
        self.ready_replicas = replicas if ready is None else ready
        self.starting_replicas = starting
        self._busy, self._inflight, self._rate, self._slowest = busy, inflight, rate, slowest_ms

    def busy_share(self, span: int) -> float:
        return self._busy

    def inflight(self, span: int) -> float:
        return self._inflight

    def concurrency(self, span: int) -> float:
        return self._inflight

    def request_rate(self, span: int, lag_s: int = 0) -> float:
        return self._rate

    def max_batch_ms(self, span: int) -> float:
        return self._slowest

    def observe(self, window: int, q: float, recent_s: int | None = None) -> object:
        class Reading:
            request_rate = self._rate

        return Reading()


def test_hpa_formula_tolerance_and_limits() -> None:
    hpa = HPAPolicy(_spec(), RuntimeConfig(2, 0, 32, "full"))
    assert hpa.act(15, View(4, busy=0.84)) is None  # within the 0.1 tolerance of 0.8
    assert hpa.act(30, View(4, busy=1.0)).replicas == 5  # ceil(4 * 1.0 / 0.8)
    assert hpa.act(45, View(2, busy=4.0)).replicas == 4  # limited to max(2 x 2, 4)
    assert hpa.act(46, View(2, busy=4.0)) is None  # syncs every 15 s only


def test_hpa_counts_starting_pods_at_zero_on_scale_up() -> None:
    hpa = HPAPolicy(_spec(), RuntimeConfig(4, 0, 32, "full"))
    # 2 ready at 100 %, 2 starting: (1.0 * 2 / 4) / 0.8 = 0.625 instead of 1.25
    ratio = hpa.metric_ratio(15, View(4, busy=1.0, ready=2, starting=2))
    assert ratio == 1.0  # 0.625 would reverse the direction: no action
    assert hpa.act(15, View(4, busy=1.0, ready=2, starting=2)) is None


def test_hpa_scale_down_waits_for_its_stabilization_window() -> None:
    hpa = HPAPolicy(_spec(), RuntimeConfig(6, 0, 32, "full"))
    assert hpa.act(15, View(6, busy=0.8)) is None
    assert hpa.act(30, View(6, busy=0.2)) is None  # 300 s window still remembers 6
    t = 30
    out = None
    while out is None:
        t += 15
        out = hpa.act(t, View(6, busy=0.2))
    assert t >= 15 + 300
    assert out.replicas == 2  # ceil(6 * 0.2 / 0.8)


def test_keda_uses_the_rate_over_the_threshold() -> None:
    keda = KEDAPolicy(_spec(), RuntimeConfig(1, 0, 32, "full"), capacity_rps=500)
    out = keda.act(30, View(1, rate=1600))  # 1600 / (0.8 * 500) = 4 replicas
    assert out.replicas == 4


def test_kpa_panics_and_never_scales_down_in_panic() -> None:
    kpa = KPAPolicy(_spec(), RuntimeConfig(2, 0, 32, "full"), target=10)
    out = kpa.act(2, View(2, inflight=60))  # 60 / 7 -> 9 pods, 4.5x ready: panic
    assert out.replicas == 9
    assert kpa.act(4, View(9, inflight=1)) is None  # in panic: no scale-down
    out = kpa.act(64, View(9, inflight=1))  # panic over: a stable window since the last
    assert out.replicas == 4  # max scale-down rate 2: floor(9 / 2)


def test_kpa_rps_metric() -> None:
    kpa = KPAPolicy(_spec(), RuntimeConfig(1, 0, 32, "full"), target=100, metric="rps")
    assert kpa.name == "kpa-rps"
    assert kpa.act(2, View(1, rate=140)).replicas == 2  # 140 / (0.7 * 100)


def test_aimd_additive_increase_multiplicative_decrease() -> None:
    aimd = AIMDPolicy(_spec(), RuntimeConfig(2, 5, 32, "full"))
    assert aimd.act(0, View(2)).batch_window_ms == 0
    assert aimd.act(1, View(2, slowest_ms=50)).max_batch_size == 34
    assert aimd.act(2, View(2, slowest_ms=150)).max_batch_size == 28  # floor(32 * 0.9)


def test_oracle_orders_replicas_startup_ahead() -> None:
    per_s = np.array([100.0] * 120 + [1000.0] * 60 + [100.0] * 120)
    plan = oracle_plan(_spec(), per_s, rate_per_replica=250, startup_s=30)
    assert plan[0] == 1
    assert plan[89] == 1
    assert plan[90] == 4  # ordered at 120 - 30: ready when the burst starts
    assert plan[179] == 4
    assert plan[181] == 1  # released at once


def test_static_is_peak_provisioned() -> None:
    per_s = np.array([100.0] * 100 + [900.0] * 10 + [100.0] * 100)
    assert static_replicas(_spec(), per_s, rate_per_replica=250) == 4
    assert static_replicas(_spec(hi=3), per_s, rate_per_replica=250) == 3
