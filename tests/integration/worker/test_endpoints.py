"""Every endpoint of a real worker process (tiny fixture family)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slo_contracts.buckets import LATENCY_BUCKETS_S
from tests.support.worker import WorkerProcess, run_worker


@pytest.fixture(scope="module")
def worker(fixture_model: Path) -> Iterator[WorkerProcess]:
    with run_worker(fixture_model, ["--batch-window-ms", "2", "--max-inputs", "8"]) as w:
        yield w


def predict(w: WorkerProcess, inputs: object) -> httpx.Response:
    return httpx.post(w.url + "/v1/predict", json={"inputs": inputs}, timeout=10)


def samples(w: WorkerProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(w.url + "/metrics").text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_predict(worker: WorkerProcess) -> None:
    resp = predict(worker, ["the food was great", "awful service"])
    assert resp.status_code == 200
    body = resp.json()
    assert body["variant"] == "full"
    assert len(body["outputs"]) == 2
    for out in body["outputs"]:
        assert out["label"] in ("negative", "positive")
        assert set(out["scores"]) == {"negative", "positive"}
        assert out["score"] == max(out["scores"].values())


def test_health_and_readiness(worker: WorkerProcess) -> None:
    assert httpx.get(worker.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(worker.url + "/readyz").json() == {"ready": True, "variant": "full"}


def test_metrics(worker: WorkerProcess, fixture_model: Path) -> None:
    before = samples(worker)
    for _ in range(3):
        assert predict(worker, ["good"]).status_code == 200
    assert predict(worker, []).status_code == 422
    after = samples(worker)

    def value(s: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
        return sum(v for lab, v in s.get(name, []) if labels.items() <= lab.items())

    assert (
        value(after, "inference_requests_total", variant="full", code="200")
        - value(before, "inference_requests_total", variant="full", code="200")
        == 3
    )
    assert value(after, "inference_requests_total", code="422") >= 1
    assert (
        value(after, "inference_request_duration_seconds_count", variant="full")
        - value(before, "inference_request_duration_seconds_count", variant="full")
        == 3  # the 422 is not a served request
    )
    assert value(after, "inference_batch_duration_seconds_count", variant="full") >= 3
    assert value(after, "inference_batch_size_count") >= 3
    assert "inference_queue_depth" in after
    edges = sorted(
        {
            float(lab["le"])
            for lab, _ in after["inference_request_duration_seconds_bucket"]
            if lab["le"] != "+Inf"
        }
    )
    assert edges == list(LATENCY_BUCKETS_S)
    accuracy = {lab["variant"]: v for lab, v in after["inference_variant_accuracy"]}
    manifest = json.loads((fixture_model / "variants.json").read_text())
    assert accuracy == {n: v["accuracy"] for n, v in manifest["variants"].items()}
    info = after["inference_runtime_config_info"]
    config = {"variant": "full", "batch_window_ms": "2", "max_batch_size": "32"}
    assert info == [({**config, "max_queue_wait_ms": "0"}, 1.0)]


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"content": b'{"inputs": ["a"]}'}, 415, "Content-Type"),
        ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ({"json": {"inputs": ["x" * (1 << 20)]}}, 413, "bytes"),
        ({"json": {"inputs": []}}, 422, "must not be empty"),
        ({"json": {"inputs": ["a"] * 9}}, 422, "limit of 8"),
        ({"json": {"inputs": [1]}}, 422, "must be a string"),
        ({"json": {"text": "a"}}, 422, "unknown field"),
        ({"json": ["a"]}, 422, "JSON object"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_reason(
    worker: WorkerProcess, kwargs: dict[str, object], status: int, words: str
) -> None:
    resp = httpx.post(worker.url + "/v1/predict", timeout=10, **kwargs)  # type: ignore[arg-type]
    assert resp.status_code == status
    assert words in resp.json()["error"]
    assert predict(worker, ["still serving"]).status_code == 200


def test_unknown_paths_and_methods(worker: WorkerProcess) -> None:
    assert httpx.get(worker.url + "/v1/predict").status_code == 405
    resp = httpx.get(worker.url + "/admin/config")  # the admin API is not on the public port
    assert resp.status_code == 404
    assert "error" in resp.json()


def test_admin_requires_the_token(worker: WorkerProcess) -> None:
    url = worker.admin_url + "/admin/config"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        resp = httpx.get(url, headers=headers)
        assert resp.status_code == 401
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Bearer" in resp.json()["error"]
    resp = httpx.put(url, json={"variant": "distilled"}, headers={"Authorization": "Bearer no"})
    assert resp.status_code == 401
    assert httpx.get(url, headers=worker.admin_headers).json()["variant"] == "full"


def test_admin_config_get_put(worker: WorkerProcess) -> None:
    url = worker.admin_url + "/admin/config"
    h = worker.admin_headers
    assert httpx.get(url, headers=h).json() == {
        "variant": "full",
        "batchWindowMs": 2,
        "maxBatchSize": 32,
        "maxQueueWaitMs": 0,
    }
    new = {"variant": "distilled", "batchWindowMs": 4, "maxBatchSize": 16, "maxQueueWaitMs": 80}
    resp = httpx.put(url, json=new, headers=h, timeout=30)
    assert resp.status_code == 200
    assert resp.json() == new
    assert httpx.get(url, headers=h).json() == new
    assert predict(worker, ["ok"]).json()["variant"] == "distilled"  # active when PUT returned
    info = samples(worker)["inference_runtime_config_info"]
    config = {"variant": "distilled", "batch_window_ms": "4", "max_batch_size": "16"}
    assert info == [({**config, "max_queue_wait_ms": "80"}, 1.0)]
    # invalid: 422 with the reason, nothing changes
    for body, field in (
        ({"variant": "tiny"}, "variant"),
        ({"variant": "full", "batchWindowMs": 5000}, "batchWindowMs"),
        ({"maxBatchSize": 0}, "maxBatchSize"),
        ({"maxQueueWaitMs": "80"}, "maxQueueWaitMs"),
        ({"replicas": 2}, "replicas"),
    ):
        resp = httpx.put(url, json=body, headers=h)
        assert resp.status_code == 422
        assert resp.json()["field"] == field
        assert httpx.get(url, headers=h).json() == new
    resp = httpx.put(url, content=b"{", headers={**h, "Content-Type": "application/json"})
    assert resp.status_code == 400
    resp = httpx.put(url, content=b"{}", headers=h)
    assert resp.status_code == 415
    # partial update keeps the other fields
    resp = httpx.put(url, json={"variant": "full"}, headers=h, timeout=30)
    assert resp.json() == {**new, "variant": "full"}
    httpx.put(url, json={"batchWindowMs": 2, "maxBatchSize": 32, "maxQueueWaitMs": 0}, headers=h)


def test_admin_variants(worker: WorkerProcess) -> None:
    body = httpx.get(worker.admin_url + "/admin/variants", headers=worker.admin_headers).json()
    assert body["active"] == "full"
    assert body["device"] == "cpu"
    assert set(body["variants"]) == {"full", "quantized", "distilled"}
    assert body["variants"]["quantized"]["recipe"] == "dynamic_int8"
    assert body["variants"]["full"]["loaded"] is True


def test_openapi_documents(worker: WorkerProcess) -> None:
    public = httpx.get(worker.url + "/openapi.json").json()
    assert public["openapi"].startswith("3.")
    assert set(public["paths"]) == {
        "/v1/predict",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
    }
    body = public["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["properties"]["inputs"]["maxItems"] == 8  # --max-inputs
    assert httpx.get(worker.admin_url + "/admin/openapi.json").status_code == 401
    admin = httpx.get(worker.admin_url + "/admin/openapi.json", headers=worker.admin_headers).json()
    assert set(admin["paths"]) == {"/admin/config", "/admin/variants", "/admin/openapi.json"}
    put = admin["paths"]["/admin/config"]["put"]["requestBody"]["content"]["application/json"]
    assert put["schema"]["properties"]["variant"]["enum"] == ["full", "quantized", "distilled"]
