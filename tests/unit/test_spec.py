"""The spec model applies the API's defaults and rejects what the API forbids."""

import pytest
from pydantic import ValidationError

from slo_operator.spec import LatencySLOSpec, Mode


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
    assert spec.policy.headroom == 0.8
    assert spec.aim_latency_ms == pytest.approx(120.0)


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
