"""Metric names, labels and buckets are the contract of docs/contracts.md."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from inference_worker.config import RuntimeSettings
from inference_worker.metrics import NOT_SERVED_SECONDS, WorkerMetrics
from slo_contracts.buckets import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_S


def families(m: WorkerMetrics) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(m.render().decode())}


def test_names_labels_and_buckets() -> None:
    m = WorkerMetrics(queue_depth=lambda: 7)
    m.observe_request("full", 200, 0.004)
    m.batch_duration.labels("full").observe(0.003)
    m.batch_size.observe(3)
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
    m.set_config(RuntimeSettings("quantized", 2.5, 16, 60.0))
    lines = [
        line
        for line in m.render().decode().splitlines()
        if line.startswith("inference_runtime_config_info{")
    ]
    assert lines == [
        'inference_runtime_config_info{batch_window_ms="2.5",max_batch_size="16",'
        'max_queue_wait_ms="60",variant="quantized"} 1.0'
    ]


def buckets(m: WorkerMetrics) -> dict[tuple[str, str], float]:
    """(outcome, le) -> cumulative count of the request histogram, summed over variants."""
    out: dict[tuple[str, str], float] = {}
    for s in families(m)["inference_request_duration_seconds"].samples:  # type: ignore[attr-defined]
        if s.name.endswith("_bucket"):
            key = (s.labels["outcome"], s.labels["le"])
            out[key] = out.get(key, 0.0) + s.value
    return out


def test_refused_and_failed_requests_count_as_breaches() -> None:
    m = WorkerMetrics(queue_depth=lambda: 0)
    for _ in range(90):
        m.observe_request("full", 200, 0.004)
    m.observe_request("full", 504, 0.150)
    for code in (503, 503, 503, 429, 500, 502):
        m.observe_request("full", code, 0.0005)  # answered fast, but not served
    for code in (400, 413, 415, 422):
        m.observe_request("full", code, 0.0005)  # client errors: not load, not observed
    b = buckets(m)
    top = str(LATENCY_BUCKETS_S[-1])
    assert b[("served", "0.005")] == 90
    assert b[("timeout", "0.15")] == 1
    assert b[("refused", "+Inf")] == 4
    assert b[("refused", top)] == 0
    assert b[("failed", "+Inf")] == 2
    assert b[("failed", top)] == 0
    # what a histogram_quantile over `sum by (le)` sees: 97 requests, 6 above every edge, so
    # the p95 falls in the +Inf bucket (a breach of any target) where it was 4 ms before
    total = sum(v for (_, le), v in b.items() if le == "+Inf")
    under_top = sum(v for (_, le), v in b.items() if le == top)
    assert total == 97
    assert under_top == 91
    assert (total - under_top) / total > 0.05
    text = m.render().decode()
    assert 'inference_requests_total{code="422",variant="full"} 1.0' in text
    assert LATENCY_BUCKETS_S[-1] < NOT_SERVED_SECONDS
    sums = {
        s.labels["outcome"]: s.value
        for s in families(m)["inference_request_duration_seconds"].samples  # type: ignore[attr-defined]
        if s.name.endswith("_sum")
    }
    assert sums["refused"] == 4 * NOT_SERVED_SECONDS  # finite: mean latencies stay computable
