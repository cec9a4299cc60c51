"""Every dashboard panel and alert rule, evaluated by a real Prometheus on real series.

- Worker series come from two real inference worker processes (tests/support/worker.py, the
  tiny fixture model family) serving real requests, scraped by a real Prometheus with the
  `namespace`/`pod` target labels a PodMonitor gives.
- Operator series come from the operator's own exporter, `slo_operator.opmetrics.
  OperatorMetrics`, served on a free port and fed by `record_step` with real spec and status
  objects (two LatencySLOs: one breached, degraded, in conflict and out of quality budget; one
  without metrics). No operator process runs here: the control loop that would call
  `record_step` is exercised by the operator's own tests; this test checks that what the
  exporter exposes is what the dashboard and the alerts query. The scrape job is the one the
  chart's ServiceMonitor gives (job = the operator Service's name, honor_labels).
- The rules are the chart's PrometheusRule, rendered with short `for` durations and loaded
  into the same Prometheus, so each alert is seen firing on the real series.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from slo_local.promserver import PrometheusServer, free_port
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.spec import (
    Action,
    Condition,
    CurrentStatus,
    LatencySLOStatus,
    ObservedStatus,
    QualityBudgetStatus,
    parse_spec,
)
from tests.integration.monitoring.exprs import (
    dashboard_queries,
    rule_queries,
    substitute,
    template_queries,
)
from tests.unit.helm.render import rendered_rule_groups

pytestmark = [pytest.mark.prometheus, pytest.mark.slow]

OPERATOR_JOB = "latencyslo-operator"  # the operator Service's name for release "latencyslo"
FAST_ALERTS = {
    "monitoring": {
        "prometheusRule": {
            "breachedFor": "2s",
            "metricsUnavailableFor": "2s",
            "conflictFor": "2s",
            "qualityBudgetFor": "2s",
            "operatorDownFor": "2s",
        }
    }
}
METRIC_NAME = re.compile(r"\b(?:latencyslo|inference)_[a-z0-9_]+\b")


def _spec(latency_ms: float) -> Any:
    return parse_spec(
        {
            "targetRef": {"name": "sentiment-worker"},
            "objective": {"latencyMs": latency_ms},
            "variants": {"qualityBudget": {"maxDegradedFraction": 0.1}},
        }
    )


def _condition(ctype: str, status: str, reason: str) -> Condition:
    return Condition(
        type=ctype, status=status, reason=reason, last_transition_time=datetime.now(UTC)
    )


def _breached_status(replicas: int) -> LatencySLOStatus:
    return LatencySLOStatus(
        observed=ObservedStatus(p99_ms=212.0, request_rate=40.0),
        current=CurrentStatus(
            replicas=replicas, ready_replicas=replicas, batch_window_ms=8, variant="quantized"
        ),
        quality_budget=QualityBudgetStatus(degraded_fraction=0.15),
        conditions=[
            _condition("Ready", "True", "Reconciling"),
            _condition("SLOMet", "False", "Breached"),
            _condition("MetricsAvailable", "True", "Observed"),
            _condition("QualityDegraded", "True", "Degraded"),
            _condition("Conflict", "True", "AnotherLatencySLO"),
        ],
    )


def _idle_status() -> LatencySLOStatus:
    return LatencySLOStatus(
        observed=ObservedStatus(p99_ms=None, request_rate=0.0),
        current=CurrentStatus(replicas=1, batch_window_ms=0, variant="full"),
        conditions=[
            _condition("Ready", "True", "Reconciling"),
            _condition("SLOMet", "Unknown", "NoData"),
            _condition("MetricsAvailable", "False", "BelowMinRequestRate"),
            _condition("Conflict", "False", "NoConflict"),
        ],
    )


class _Traffic:
    """Predict requests to the workers from a background thread until stopped."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while not self._stop.is_set():
                for url in self.urls:
                    client.post(f"{url}/v1/predict", json={"inputs": ["good", "awful film"]})
                    self.sent += 1
                self._stop.wait(0.05)

    def __enter__(self) -> _Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[list[Any]]:
    worker_support = pytest.importorskip("tests.support.worker")
    model_dir = worker_support.build_fixture_family(tmp_path / "model")
    with (
        worker_support.run_worker(model_dir, workdir=_mkdir(tmp_path / "w1")) as w1,
        worker_support.run_worker(model_dir, workdir=_mkdir(tmp_path / "w2")) as w2,
    ):
        yield [w1, w2]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _alerts(prom: PrometheusServer) -> list[dict[str, Any]]:
    body = httpx.get(f"{prom.url}/api/v1/alerts", timeout=5.0).json()
    return list(body["data"]["alerts"])


def _firing(prom: PrometheusServer) -> set[tuple[str, str]]:
    return {
        (a["labels"]["alertname"], a["labels"].get("name", ""))
        for a in _alerts(prom)
        if a["state"] == "firing"
    }


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what}")
        time.sleep(0.5)


def test_dashboard_and_alerts_on_real_series(tmp_path: Path, workers: list[Any]) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rendered_rule_groups(FAST_ALERTS)}, sort_keys=False))
    op_port = free_port()
    metrics = OperatorMetrics()
    metrics.serve(op_port, addr="127.0.0.1")
    operator_job = {
        "job_name": OPERATOR_JOB,
        "honor_labels": True,
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [{"targets": [f"127.0.0.1:{op_port}"]}],
    }
    try:
        with PrometheusServer(
            scrape_interval_s=1.0,
            workdir=tmp_path / "prom",
            rule_files=[rules],
            extra_scrape_configs=[operator_job],
        ) as prom:
            prom.set_targets(
                [
                    ([f"127.0.0.1:{w.port}"], {"namespace": "ml", "pod": f"worker-{i}"})
                    for i, w in enumerate(workers)
                ]
            )
            # one worker switches variant, as an operator push would do
            resp = httpx.put(
                f"{workers[1].admin_url}/admin/config",
                json={"variant": "quantized", "batchWindowMs": 5},
                headers=workers[1].admin_headers,
                timeout=10.0,
            )
            assert resp.status_code == 200, resp.text
            with _Traffic([w.url for w in workers]) as traffic:
                # a control loop's worth of steps: decisions, errors, durations over time
                plan = [Action.DEGRADE_VARIANT, Action.SCALE_UP, Action.HOLD, Action.WIDEN_WINDOW]
                for step in range(12):
                    metrics.record_step(
                        "ml",
                        "sentiment",
                        spec=_spec(150),
                        status=_breached_status(replicas=2 + step // 4),
                        action=plan[step % len(plan)],
                        duration_s=0.02 + 0.01 * (step % 3),
                    )
                    metrics.record_step(
                        "ml",
                        "idle",
                        spec=_spec(100),
                        status=_idle_status(),
                        action=Action.HOLD,
                        duration_s=0.01,
                    )
                    metrics.prometheus_error("ml", "sentiment")
                    time.sleep(1.0)
                assert traffic.sent > 0
                _check_dashboard(prom)
            _check_rules_and_alerts(prom)
            # the operator goes away: OperatorDown fires
            metrics.close()
            _wait(
                lambda: ("LatencySLOOperatorDown", "") in _firing(prom),
                timeout=30,
                what="LatencySLOOperatorDown firing after the operator stopped",
            )
    finally:
        metrics.close()


def _check_dashboard(prom: PrometheusServer) -> None:
    names = set(httpx.get(f"{prom.url}/api/v1/label/__name__/values", timeout=5.0).json()["data"])
    empty, unknown = [], []
    for where, expr in dashboard_queries():
        query = substitute(expr, rate_interval="1m", range_="1h", interval="15s")
        for metric in METRIC_NAME.findall(query):
            base = re.sub(r"_(bucket|count|sum)$", "", metric)
            if metric not in names and f"{base}_bucket" not in names:
                unknown.append(f"{where}: {metric}")
        if not prom.query(query):  # raises on a PromQL error
            empty.append(f"{where}: {query}")
    assert not unknown, f"metrics nothing exposes: {unknown}"
    assert not empty, "panels with no data:\n" + "\n".join(empty)

    for variable, selector, label in template_queries():
        resp = httpx.get(
            f"{prom.url}/api/v1/label/{label}/values",
            params={"match[]": substitute(selector)},
            timeout=5.0,
        ).json()
        assert resp["status"] == "success", resp
        assert resp["data"], f"variable {variable} has no values"
    assert {"sentiment", "idle"} <= set(
        httpx.get(
            f"{prom.url}/api/v1/label/name/values",
            params={"match[]": "latencyslo_target_seconds"},
            timeout=5.0,
        ).json()["data"]
    )


def _check_rules_and_alerts(prom: PrometheusServer) -> None:
    groups = httpx.get(f"{prom.url}/api/v1/rules", timeout=5.0).json()["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {name for name, _ in rule_queries(FAST_ALERTS)}
    for _name, expr in rule_queries(FAST_ALERTS):
        prom.query(expr)  # parses and evaluates
    expected = {
        ("LatencySLOBreached", "sentiment"),
        ("LatencySLOConflict", "sentiment"),
        ("LatencySLOQualityBudgetExhausted", "sentiment"),
        ("LatencySLOMetricsUnavailable", "idle"),
    }
    firing = _wait(
        lambda: (f := _firing(prom)) >= expected and f,
        timeout=30,
        what=f"alerts {sorted(expected)} firing; firing now: {sorted(_firing(prom))}",
    )
    for rule in loaded.values():
        assert rule["health"] == "ok", rule
    # and nothing fires that should not: the idle one is not breached, the operator is up
    assert firing == expected, sorted(firing)
