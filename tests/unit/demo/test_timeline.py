"""A recorded run is scored with the simulator's definitions and written to files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from slo_local.demo.timeline import SUMMARY_KEYS, Recording, Step, Tick, untrusted_actions
from slo_local.loadgen import TRANSPORT_ERROR, RequestRecord
from slo_operator.types import RuntimeConfig

FULL = RuntimeConfig(1, 0, 32, "full")
FAST = RuntimeConfig(2, 5, 32, "quantized")


def _recording(latency_of: dict[int, float], seconds: int = 60, rate: int = 20) -> Recording:
    """`rate` requests per second; latency 20 ms except in the seconds given."""
    rec = Recording(
        target_ms=100.0,
        quantile=0.99,
        window_s=15,
        interval_s=5,
        preferred="full",
        variant_names=("full", "quantized", "distilled"),
        accuracy={"full": 0.9, "quantized": 0.8},
        duration_s=seconds,
    )
    for t in range(seconds):
        lat = latency_of.get(t, 0.02)
        for k in range(rate):
            variant = "full" if t < 30 else "quantized"
            rec.requests.append(RequestRecord(t + k / rate, lat, 200, "w1", variant, 0.0))
    rec.ticks = [
        Tick(
            t, 1 if t < 30 else 2, 1 if t < 35 else 2, 1 if t < 30 else 2, FULL if t < 30 else FAST
        )
        for t in range(seconds)
    ]
    rec.steps = [
        Step(t, 20.0, 20.0, None, 1.0, "Hold", "fine", False, FULL, FULL, True)
        for t in range(5, 30, 5)
    ]
    rec.steps.append(
        Step(30.0, 150.0, 20.0, None, 1.0, "DegradeVariant", "breach", True, FULL, FAST, True)
    )
    return rec


def test_summary_has_exactly_the_contract_keys_and_simulator_figures() -> None:
    rec = _recording({t: 0.3 for t in range(20, 26)})  # 6 s of 300 ms latency
    summary = rec.summary()
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["requests"] == 60 * 20
    assert summary["failed_requests"] == 0
    assert summary["slo_attainment_requests"] == pytest.approx(1 - 6 * 20 / 1200, abs=1e-5)
    assert summary["decisions"] == 1
    # processes: 1 for 30 s, 2 for 30 s
    assert summary["replica_seconds"] == 30 + 60
    assert summary["accuracy"] == pytest.approx((0.9 * 600 + 0.8 * 600) / 1200, abs=1e-5)
    # bins 20-25 and 25-30 breach (300 ms done in those seconds), good from 30 on
    assert summary["recovery_seconds"] == 10.0
    json.dumps(summary)


def test_failed_requests_count_against_the_slo() -> None:
    rec = _recording({})
    rec.requests[5] = RequestRecord(0.25, 0.001, TRANSPORT_ERROR, "w1", "", 0.0, "refused")
    rec.requests[6] = RequestRecord(0.3, 0.002, 503, "w1", "", 0.0, "draining")
    summary = rec.summary()
    assert summary["failed_requests"] == 2
    assert summary["slo_attainment_requests"] == pytest.approx(1 - 2 / 1200, abs=1e-5)


def test_recovery_after_a_step_uses_client_latencies() -> None:
    rec = _recording({t: 0.25 for t in range(31, 43)})
    assert rec.recovery_after(30.0) == pytest.approx(15.0)  # bins 30..44 bad, good from 45
    assert rec.recovery_after(30.0, good_in_a_row=1) == pytest.approx(15.0)
    flaky = _recording({**{t: 0.25 for t in range(31, 34)}, **{t: 0.25 for t in range(41, 44)}})
    assert flaky.recovery_after(30.0, good_in_a_row=1) == pytest.approx(5.0)  # bin 35 good
    assert flaky.recovery_after(30.0) == pytest.approx(15.0)  # 3 good bins from 45
    assert rec.recovery_after(50.0) == 0.0
    never = _recording({t: 0.25 for t in range(31, 60)})
    assert never.recovery_after(30.0) is None


def test_a_later_breach_is_another_episode_within_a_horizon() -> None:
    stall = _recording({t: 0.25 for t in range(56, 58)}, seconds=80)  # one bad bin, 55..59
    assert stall.recovery_after(10.0, good_in_a_row=1) == pytest.approx(50.0)
    assert stall.recovery_after(10.0, good_in_a_row=1, within=30.0) == 0.0
    assert stall.recovery_after(30.0, good_in_a_row=1, within=30.0) == pytest.approx(30.0)
    # the bad bin starts 29 s after 26 (inside the horizon), 30 s after 25 (outside)
    assert stall.recovery_after(26.0, good_in_a_row=1, within=30.0) == pytest.approx(34.0)
    assert stall.recovery_after(25.0, good_in_a_row=1, within=30.0) == 0.0


def test_quantile_of_client_latencies() -> None:
    rec = _recording({})
    assert rec.quantile_ms(0, 10) == pytest.approx(20.0)
    assert math.isnan(rec.quantile_ms(100, 110))
    rec.requests[0] = RequestRecord(0.0, 0.01, 503, "w1", "", 0.0)
    rec.requests[1] = RequestRecord(0.05, 0.01, 503, "w1", "", 0.0)
    rec.requests[2] = RequestRecord(0.1, 0.01, 503, "w1", "", 0.0)
    assert rec.quantile_ms(0, 1) == math.inf  # 3 of 20 failed: the p99 is a failure


def test_untrusted_actions_are_found() -> None:
    rec = _recording({})
    assert untrusted_actions(rec.steps) == []
    bad = Step(40.0, None, 20.0, "no data", None, "ScaleDown", "x", True, FAST, FULL, False)
    assert untrusted_actions([*rec.steps, bad]) == [bad]


def test_files(tmp_path: Path) -> None:
    rec = _recording({t: 0.3 for t in range(20, 26)})
    rec.write_csv(tmp_path / "timeline.csv")
    rec.write_requests_csv(tmp_path / "requests.csv")
    rec.write_png(tmp_path / "timeline.png", "test")
    rows = list(csv.DictReader((tmp_path / "timeline.csv").open()))
    assert len(rows) == 60
    assert rows[30]["action"] == "DegradeVariant"
    assert rows[30]["applied"] == "True"
    assert rows[31]["variant"] == "quantized"
    assert float(rows[22]["p99_ms_1s"]) == pytest.approx(300.0)
    assert rows[40]["observed_p99_ms"] == "150.0"  # the last view, carried forward
    assert (tmp_path / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "requests.csv").read_text().splitlines()
    assert len(lines) == 1 + 1200
    trace = rec.to_trace()
    assert np.array_equal(trace.desired[28:32], [1, 1, 2, 2])
