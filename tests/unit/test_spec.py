"""The spec model applies the API's defaults and rejects what the API forbids."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from slo_operator.spec import CurrentStatus, LatencySLOSpec, LatencySLOStatus, Mode, ObservedStatus


def minimal(**over):
    raw = {"targetRef": {"name": "resnet-worker"}, "objective": {"latencyMs": 150}}
    raw.update(over)
    return raw


def test_defaults_match_api():
    spec = LatencySLOSpec.model_validate(minimal())
    assert spec.objective.percentile == 99
    assert spec.objective.window_seconds == 60
    assert spec.objective.min_request_rate == 1.0
    assert spec.metrics.histogram == "inference_request_duration_seconds"
    assert (spec.replicas.min, spec.replicas.max) == (1, 8)
    assert (spec.batching.min_window_ms, spec.batching.max_window_ms) == (0, 50)
    assert spec.batching.max_batch_size == 32
    assert spec.variants.allowed == ["full", "quantized", "distilled"]
    assert spec.variants.effective_preferred == "full"
    assert spec.variants.quality_budget.max_degraded_fraction == 0.2
    assert spec.policy.mode is Mode.ENFORCE
    assert spec.policy.headroom == 0.85
    assert spec.aim_latency_ms == pytest.approx(127.5)


def test_round_trip_is_camel_case():
    spec = LatencySLOSpec.model_validate(minimal())
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["targetRef"]["apiVersion"] == "apps/v1"
    assert dumped["policy"]["scaleDownStabilizationSeconds"] == 300
    assert LatencySLOSpec.model_validate(dumped) == spec


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"replicas": {"min": 5, "max": 2}}, "replicas.min must be <= replicas.max"),
        ({"batching": {"minWindowMs": 9, "maxWindowMs": 3}}, "minWindowMs must be <="),
        ({"variants": {"allowed": ["quantized"], "preferred": "full"}}, "preferred must be one"),
        ({"variants": {"allowed": ["full", "full"]}}, "must not repeat"),
        ({"bogus": 1}, "Extra inputs are not permitted"),
    ],
)
def test_rejects(override, needle):
    with pytest.raises(ValidationError, match=needle):
        LatencySLOSpec.model_validate(minimal(**override))


# ------------------------------------------------ values are read as the API server reads them


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"replicas": {"max": "3"}}, "valid integer"),
        ({"replicas": {"min": True}}, "valid integer"),
        ({"objective": {"latencyMs": "150"}}, "valid number"),
        ({"objective": {"latencyMs": False}}, "valid number"),
        ({"replicas": {"max": 2.5}}, "fractional part"),
        ({"targetRef": {"name": "w", "kind": "StatefulSet"}}, "targetRef.kind must be Deployment"),
        ({"targetRef": {"name": "w", "apiVersion": "apps/v1beta1"}}, "apiVersion must be apps/v1"),
        ({"metrics": {"labels": {"le": "0.5"}}}, "must not set 'le'"),
        ({"metrics": {"labels": {"__name__": "x"}}}, "Prometheus label names"),
        ({"metrics": {"labels": {"a-b": "x"}}}, "Prometheus label names"),
    ],
)
def test_rejects_what_the_api_server_rejects(override, needle):
    with pytest.raises(ValidationError, match=needle):
        LatencySLOSpec.model_validate(minimal(**override))


def test_null_means_omitted():
    spec = LatencySLOSpec.model_validate(
        minimal(
            replicas=None,
            batching={"maxWindowMs": None, "minWindowMs": 3},
            metrics={"labels": {"tier": None, "app": "a"}},
            variants={"preferred": None, "allowed": ["quantized"]},
        )
    )
    assert (spec.replicas.min, spec.replicas.max) == (1, 8)
    assert spec.batching.max_window_ms == 50
    assert spec.metrics.labels == {"app": "a"}
    assert spec.variants.effective_preferred == "quantized"
    with pytest.raises(ValidationError, match="Field required"):
        LatencySLOSpec.model_validate(minimal(objective={"latencyMs": None}))


def test_integral_floats_and_numpy_values_are_accepted():
    import numpy as np

    spec = LatencySLOSpec.model_validate(minimal(replicas={"max": 4.0}))
    assert spec.replicas.max == 4
    assert isinstance(spec.replicas.max, int)
    current = CurrentStatus(replicas=np.int64(3), batch_window_ms=np.int64(8))
    assert current.replicas == 3
    assert ObservedStatus(latency_ms=np.float64(12.5)).latency_ms == 12.5


def test_status_timestamps_and_conditions():
    now = datetime.now(UTC)
    condition = {"type": "Ready", "status": "True", "reason": "Ok", "lastTransitionTime": now}
    status = LatencySLOStatus.model_validate({"conditions": [condition]})
    assert status.conditions[0].last_transition_time == now
    assert ObservedStatus(sampled_at="2024-05-01T12:00:00.25+02:00").sampled_at is not None
    with pytest.raises(ValidationError, match="RFC 3339"):
        ObservedStatus(sampled_at="2024-05-01")
    with pytest.raises(ValidationError, match="must not repeat a type"):
        LatencySLOStatus.model_validate({"conditions": [condition, condition]})
