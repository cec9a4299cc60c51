"""The Kubernetes actuator's pure parts, and conflict detection."""

from __future__ import annotations

import json

import pytest

from slo_operator.actuate.kubernetes import (
    ActuationError,
    configmap_name,
    label_selector,
    parse_runtime_config,
    pod_admin_url,
    render_runtime_config,
)
from slo_operator.actuate.store import STATE_ANNOTATION, load_memory
from slo_operator.loop import Claim, find_conflict
from slo_operator.types import RuntimeConfig


def test_configmap_name_is_the_contract() -> None:
    assert configmap_name("sentiment-worker") == "sentiment-worker-latencyslo"


def test_label_selector() -> None:
    selector = {
        "matchLabels": {"app": "w", "tier": "gpu"},
        "matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["b", "a"]},
            {"key": "canary", "operator": "NotIn", "values": ["true"]},
            {"key": "model", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector(selector) == (
        "app=w,tier=gpu,zone in (a,b),canary notin (true),model,!legacy"
    )


@pytest.mark.parametrize("selector", [None, {}, {"matchLabels": {}}])
def test_an_empty_selector_is_refused(selector) -> None:
    with pytest.raises(ActuationError):
        label_selector(selector)


def test_runtime_config_round_trip() -> None:
    config = RuntimeConfig(3, 12, 32, "quantized")
    text = render_runtime_config(config)
    assert text == '{"batchWindowMs": 12, "maxBatchSize": 32, "variant": "quantized"}'
    assert parse_runtime_config(text, 3) == config
    assert parse_runtime_config('{"variant":"full","batchWindowMs":7.6,"maxBatchSize":8}', 1) == (
        RuntimeConfig(1, 8, 8, "full")
    )


def test_the_queue_wait_limit_is_written_only_where_set() -> None:
    limited = RuntimeConfig(3, 12, 32, "quantized", max_queue_wait_ms=60)
    text = render_runtime_config(limited)
    assert json.loads(text)["maxQueueWaitMs"] == 60
    assert parse_runtime_config(text, 3) == limited
    assert "maxQueueWaitMs" not in render_runtime_config(limited.with_(max_queue_wait_ms=None))
    # a worker's GET answer carries its own (a float where an admin set one)
    body = '{"variant":"full","batchWindowMs":0,"maxBatchSize":8,"maxQueueWaitMs":70.4}'
    assert parse_runtime_config(body, 1).max_queue_wait_ms == 70


def test_a_written_configuration_keeps_a_limit_the_target_leaves() -> None:
    """What is in force after a target's configuration is written, in every adapter."""
    workers = RuntimeConfig(3, 0, 32, "full", max_queue_wait_ms=70)
    target = RuntimeConfig(5, 8, 16, "quantized")
    assert target.config_over(workers) == RuntimeConfig(3, 8, 16, "quantized", 70)
    assert target.with_(max_queue_wait_ms=0).config_over(workers).max_queue_wait_ms == 0
    assert not target.with_(batch_window_ms=0, max_batch_size=32, variant="full").config_differs(
        workers
    )  # a limit the target leaves is no difference


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"variant": "turbo", "batchWindowMs": 1, "maxBatchSize": 1}',
        '{"variant": "full", "batchWindowMs": "1", "maxBatchSize": 1}',
        '{"variant": "full", "batchWindowMs": 1}',
        '{"variant": "full", "batchWindowMs": 1, "maxBatchSize": 1, "maxQueueWaitMs": -1}',
        '{"variant": "full", "batchWindowMs": 1, "maxBatchSize": 1, "maxQueueWaitMs": "60"}',
        '{"variant": "full", "batchWindowMs": 1, "maxBatchSize": 1, "maxQueueWaitMs": 1e400}',
        '{"variant": "full", "batchWindowMs": 1, "maxBatchSize": 1, "maxQueueWaitMs": true}',
    ],
)
def test_bad_runtime_config_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"runtime config|Expecting value"):
        parse_runtime_config(text, 1)


def pod(ready: bool = True, ip: str | None = "10.0.0.7", port_name: str = "admin", **meta):
    return {
        "metadata": {"name": "p", **meta},
        "spec": {
            "containers": [
                {"name": "sidecar"},
                {
                    "name": "w",
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": port_name, "containerPort": 8081},
                    ],
                },
            ]
        },
        "status": {
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_pod_admin_url() -> None:
    assert pod_admin_url(pod()) == "http://10.0.0.7:8081/admin/config"
    assert pod_admin_url(pod(ip="fd00::7")) == "http://[fd00::7]:8081/admin/config"


@pytest.mark.parametrize(
    "candidate",
    [
        pod(ready=False),
        pod(ip=None),
        pod(port_name="metrics"),
        pod(deletionTimestamp="2026-01-01T00:00:00Z"),
        {"metadata": {}, "spec": {}, "status": {}},
    ],
)
def test_pods_that_are_not_pushed_to(candidate) -> None:
    assert pod_admin_url(candidate) is None


def test_memory_annotation() -> None:
    assert load_memory({STATE_ANNOTATION: '{"version": 1}'}) == {"version": 1}
    assert load_memory({STATE_ANNOTATION: "garbage"}) is None
    assert load_memory({STATE_ANNOTATION: "[1]"}) is None
    assert load_memory(None) is None


# ------------------------------------------------------------------------------ conflicts


def test_an_hpa_is_a_conflict() -> None:
    conflict = find_conflict(
        name="a", deployment="d", hpas=["h2", "h1"], claims=[Claim("2026-01-01T00:00:00Z", "a")]
    )
    assert conflict is not None
    assert conflict.reason == "HorizontalPodAutoscaler"
    assert conflict.message.startswith("HorizontalPodAutoscaler h1, h2 also scales Deployment d")


def test_the_older_latencyslo_wins() -> None:
    claims = [Claim("2026-02-01T00:00:00Z", "young"), Claim("2026-01-01T00:00:00Z", "old")]
    assert find_conflict(name="old", deployment="d", hpas=[], claims=claims) is None
    conflict = find_conflict(name="young", deployment="d", hpas=[], claims=claims)
    assert conflict is not None
    assert conflict.reason == "DuplicateLatencySLO"
    assert conflict.message.startswith("LatencySLO old (older) already steers Deployment d")


def test_same_age_is_decided_by_name() -> None:
    claims = [Claim("2026-01-01T00:00:00Z", "b"), Claim("2026-01-01T00:00:00Z", "a")]
    assert find_conflict(name="a", deployment="d", hpas=[], claims=claims) is None
    assert find_conflict(name="b", deployment="d", hpas=[], claims=claims) is not None


def test_alone_is_no_conflict() -> None:
    assert find_conflict(name="a", deployment="d", hpas=[], claims=[]) is None
    assert find_conflict(name="a", deployment="d", hpas=[], claims=[Claim("t", "a")]) is None
