"""`bench/spec_fuzz.py`: its checker catches what it is for, and random specs break nothing."""

from __future__ import annotations

import random

import numpy as np
import pytest

from slo_operator.sim.engine import SimSettings
from slo_operator.sim.profiles import MEASURED_PROFILE
from slo_operator.sim.trace import Trace
from slo_operator.spec import LatencySLOSpec
from tests.unit.bench.scripts import load

fuzz = load("spec_fuzz.py", "spec_fuzz_under_test")
NAMES = ("full", "quantized", "distilled")
SETTINGS = SimSettings()


def _trace(desired: list[int], variants: list[str]) -> Trace:
    n = len(desired)
    zeros = np.zeros(n)
    return Trace(
        desired=np.asarray(desired), ready=np.asarray(desired), pods=np.asarray(desired),
        window_ms=zeros, max_batch=zeros, variant=np.asarray([NAMES.index(v) for v in variants]),
        arrivals=np.full(n, 10.0), rejected=zeros, completed=np.full(n, 10.0),
        ok=np.full(n, 10.0), hist=np.zeros((n, 1)), busy=zeros, inflight=zeros,
        served_accuracy=zeros, served_known_accuracy=zeros, variant_names=NAMES,
    )  # fmt: skip


def _spec(**variants: object) -> LatencySLOSpec:
    return LatencySLOSpec.model_validate(
        {
            "targetRef": {"name": "x"},
            "objective": {"latencyMs": 100},
            "replicas": {"min": 1, "max": 4},
            "variants": {"qualityBudget": {"windowMinutes": 1}, **variants},
        }
    )


def test_a_run_within_every_limit_breaks_nothing() -> None:
    # 20 % of a minute: 12 s off `full` in every minute, one interval and a switch of slack
    variants = (["quantized"] * 12 + ["full"] * 48) * 5
    assert fuzz.check(_spec(), _trace([2] * 300, variants), SETTINGS) == []


@pytest.mark.parametrize(
    ("desired", "variants", "spec_variants", "found"),
    [
        pytest.param([5] * 120, ["full"] * 120, {}, "outside 1..4", id="above-replicas-max"),
        pytest.param([0] * 120, ["full"] * 120, {}, "outside 1..4", id="below-replicas-min"),
        pytest.param(
            [2] * 120, ["quantized"] * 40 + ["full"] * 80, {}, "budget 12 s", id="budget-overrun"
        ),
        pytest.param(
            [2] * 120,
            ["full"] * 120,
            {"preferred": "quantized"},
            "not on the ladder",
            id="above-the-preferred-variant",
        ),
        pytest.param(
            [2] * 120,
            ["distilled"] * 10 + ["full"] * 110,
            {"allowed": ["full", "quantized"]},
            "not on the ladder",
            id="not-allowed",
        ),
    ],
)
def test_the_checker_finds_what_must_never_happen(
    desired: list[int], variants: list[str], spec_variants: dict[str, object], found: str
) -> None:
    broken = fuzz.check(_spec(**spec_variants), _trace(desired, variants), SETTINGS)
    assert any(found in b for b in broken), broken


def test_random_specs_are_valid() -> None:
    for i in range(200):
        LatencySLOSpec.model_validate(fuzz.random_spec(random.Random(i)))


@pytest.mark.skipif(not MEASURED_PROFILE.is_file(), reason="the shipped measured profile")
@pytest.mark.parametrize("index", range(6))
def test_random_specs_break_nothing_in_the_closed_loop(index: int) -> None:
    """Six of the benchmark's specs on `bursty` (a budget, bounds and ladder kept; no
    exception): the same specs on every run."""
    row = fuzz.one((index, "bursty", None))
    assert row["broken"] == [], (row["spec"], row["broken"])


@pytest.mark.parametrize(
    ("percentile", "within", "static_within", "switches", "flagged"),
    [
        pytest.param(90.0, 0.93, 0.98, 0.0, False, id="p90-objective-met"),
        pytest.param(99.0, 0.96, 0.999, 0.0, True, id="p99-missed-where-the-fleet-meets-it"),
        pytest.param(99.0, 0.96, 0.97, 0.0, False, id="the-fleet-misses-it-too"),
        pytest.param(99.0, 0.999, 0.999, 7.0, True, id="seven-switches-an-hour"),
    ],
)
def test_what_looks_wrong_is_judged_against_the_objective(
    percentile: float, within: float, static_within: float, switches: float, flagged: bool
) -> None:
    row = {
        "spec": {"objective": {"percentile": percentile}},
        "within": within,
        "static_within": static_within,
        "switches_per_hour": switches,
    }
    assert bool(fuzz.looks_wrong(row)) is flagged
