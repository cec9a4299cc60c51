"""Metric names, labels and buckets are the contract of docs/contracts.md."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from inference_worker.config import RuntimeSettings
from inference_worker.metrics import WorkerMetrics
from slo_contracts.buckets import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S


def families(m: WorkerMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_names_labels_and_buckets() -> None:
    m = WorkerMetrics(queue_depth=lambda: 7)
    m.request_duration.labels("full").observe(0.004)
    m.batch_duration.labels("full").observe(0.003)
    m.batch_size.observe(3)
    m.requests.labels("full", "200").inc()
    m.set_config(RuntimeSettings("full", 5.0, 32))
    m.set_accuracy({"full": 0.93, "distilled": None})
    text = m.render().decode()
    fams = families(m)
    for name in (
        "inference_request_duration_seconds",
        "inference_batch_size",
        "inference_batch_duration_seconds",
        "inference_queue_depth",
        "inference_requests",
        "inference_runtime_config_info",
        "inference_variant_accuracy",
    ):
        assert name in fams, name
    assert 'inference_requests_total{code="200",variant="full"} 1.0' in text
    assert "inference_queue_depth 7.0" in text
    assert 'inference_variant_accuracy{variant="full"} 0.93' in text
    assert 'variant="distilled"' not in text.split("inference_variant_accuracy")[-1]
    assert "_created" not in text
    edges = [
        float(s.labels["le"])
        for s in fams["inference_request_duration_seconds"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    ]
    assert edges == list(LATENCY_BUCKETS_S)
    sizes = [
        float(s.labels["le"])
        for s in fams["inference_batch_size"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_bucket") and s.labels["le"] != "+Inf"
    ]
    assert sizes == list(BATCH_SIZE_BUCKETS)


def test_runtime_config_info_keeps_one_series() -> None:
    m = WorkerMetrics(queue_depth=lambda: 0)
    m.set_config(RuntimeSettings("full", 5.0, 32))
    m.set_config(RuntimeSettings("quantized", 2.5, 16))
    lines = [
        line
        for line in m.render().decode().splitlines()
        if line.startswith("inference_runtime_config_info{")
    ]
    assert lines == [
        'inference_runtime_config_info{batch_window_ms="2.5",max_batch_size="16",'
        'variant="quantized"} 1.0'
    ]
