"""The fault-injection campaign's short run (`bench/fault_injection.py --short`): the real
operator against the emulated API server, Prometheus and pods with a fault on one kind of
outbound call at a time; nothing is applied twice, nothing is lost, nothing is marked done
that was not. The long run and its figures: docs/reliability.md, "Fault injection"."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench" / "fault_injection.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning"),
]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fault_injection_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FI = _bench()


@pytest.mark.parametrize("fault", FI.short_faults(), ids=lambda f: f.name.replace(" ", "-"))
async def test_no_fault_applies_twice_loses_or_overstates_a_change(fault, profiles_file) -> None:
    result = await FI.run_fault(fault, profiles_file, fault_s=2.0, recover_s=15.0)
    assert result["violations"] == [], result
    assert result["converged_after_s"] is not None, result
    writes = result["writes"]
    if fault.target in FI.WRITES:
        assert writes[fault.target]["faulted"] >= 1, result  # the fault met a write
    if fault.target == "scale":
        assert writes["scale"]["landed"] == 1, result  # the change made once, after the fault
    if fault.target == "prometheus":
        assert "MetricsAvailable=False/QueryFailed" in result["conditions_seen"], result
        assert writes.get("scale", {}).get("landed") == 1, result


def test_the_checks_see_a_double_write_and_an_overstated_change() -> None:
    """The invariants themselves can fail: a scale written twice to the same number, a history
    entry marked applied with no write behind it."""
    kube = FI.FaultyKube()
    entry = {"applied": True, "from": {"replicas": 2}, "to": {"replicas": 7}, "reason": "x"}
    kube.log = [
        FI.Write("status", [entry], landed=True),
        FI.Write("scale", 5, landed=True),
        FI.Write("scale", 5, landed=True),
        FI.Write("scale", 7, landed=True),  # after the status said so: still overstated
    ]
    status = {"current": {"replicas": 5}, "history": [entry]}
    violations = FI.check(kube, status)
    assert any("already in force" in v for v in violations)
    assert any("never scaled" in v for v in violations)
    assert any("lost" in v for v in violations)  # no Deployment in this empty emulator
