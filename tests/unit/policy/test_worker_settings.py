"""The workers' settings the spec sets (max batch size, queue wait limit): written at the next
decision, a hold included, and only where the workers lack them."""

from __future__ import annotations

import pytest

from slo_operator.policy import decide
from slo_operator.spec import Action
from tests.unit.policy.helpers import NOW, PROFILES, cfg, make_spec, obs, settled


@pytest.mark.parametrize(
    ("batching", "in_force", "note"),
    [
        ({}, (32, None), None),
        ({}, (32, 60), None),  # the spec leaves the limit to the workers: kept, not written
        ({"maxBatchSize": 16}, (32, None), "max batch size 32 -> 16"),
        ({"maxQueueWaitMs": 60}, (32, None), "queue wait limit unknown -> 60ms"),
        ({"maxQueueWaitMs": 60}, (32, 0), "queue wait limit none -> 60ms"),
        ({"maxQueueWaitMs": 0}, (32, 60), "queue wait limit 60ms -> none"),
        ({"maxQueueWaitMs": 60}, (32, 60), None),
        (
            {"maxBatchSize": 16, "maxQueueWaitMs": 70},
            (32, 60),
            "max batch size 32 -> 16 and queue wait limit 60ms -> 70ms",
        ),
    ],
)
def test_the_specs_worker_settings_are_written_at_a_hold(
    batching: dict[str, int], in_force: tuple[int, int | None], note: str | None
) -> None:
    spec = make_spec(batching=batching)
    current = cfg(replicas=2, batch=in_force[0]).with_(max_queue_wait_ms=in_force[1])
    d, _ = decide(spec, obs(rate=500, ready=2, current=current), current, PROFILES, settled(), NOW)
    assert d.action is Action.HOLD
    assert d.actions == ()
    assert (d.target.replicas, d.target.variant) == (2, "full")
    if note is None:
        assert d.target == current
        assert not d.apply
        assert "as the spec sets" not in d.reason
    else:
        assert d.apply
        assert d.target.max_batch_size == spec.batching.max_batch_size
        assert d.target.max_queue_wait_ms == spec.batching.max_queue_wait_ms
        assert f"{note}, as the spec sets" in d.reason


def test_a_change_carries_the_specs_worker_settings() -> None:
    spec = make_spec(batching={"maxQueueWaitMs": 60})
    current = cfg(replicas=2)
    d, _ = decide(spec, obs(rate=3000, p99=400, ready=2), current, PROFILES, settled(), NOW)
    assert Action.SCALE_UP in d.actions
    assert d.target.replicas > 2
    assert d.target.max_queue_wait_ms == 60
    assert "queue wait limit unknown -> 60ms, as the spec sets" in d.reason


@pytest.mark.parametrize("mode", ["Recommend", "Paused"])
def test_only_enforce_writes_them(mode: str) -> None:
    spec = make_spec(batching={"maxQueueWaitMs": 60}, policy={"mode": mode})
    current = cfg(replicas=2)
    d, _ = decide(spec, obs(rate=500, ready=2, current=current), current, PROFILES, settled(), NOW)
    assert not d.apply
    if mode == "Recommend":
        assert "queue wait limit unknown -> 60ms, as the spec sets" in d.reason
        assert "Recommend mode: not applied" in d.reason
    else:
        assert d.target == current


def test_missing_data_still_writes_them() -> None:
    """Not a blind action: no knob moves on missing data, the user's settings are written."""
    spec = make_spec(batching={"maxBatchSize": 8})
    current = cfg(replicas=2)
    d, _ = decide(spec, obs(rate=None, p99=None), current, PROFILES, settled(), NOW)
    assert d.action is Action.HOLD
    assert d.apply
    assert (d.target.replicas, d.target.variant, d.target.max_batch_size) == (2, "full", 8)


def test_a_limit_the_spec_leaves_to_the_workers_is_never_written() -> None:
    """Read from a worker (60 ms) with the spec silent: a change carries no limit (None: the
    ConfigMap and the push leave it out), a hold keeps the configuration read and says so."""
    spec = make_spec()
    current = cfg(replicas=2).with_(max_queue_wait_ms=60)
    up, _ = decide(spec, obs(rate=3000, p99=400, ready=2), current, PROFILES, settled(), NOW)
    assert up.actions
    assert up.target.max_queue_wait_ms is None
    assert "maxQueueWaitMs" not in up.target.worker_payload()
    assert "queue wait limit" not in up.reason
    hold, _ = decide(
        spec, obs(rate=500, ready=2, current=current), current, PROFILES, settled(), NOW
    )
    assert hold.target == current
    assert not hold.apply
    assert "holding 2 replica(s)" in hold.reason
