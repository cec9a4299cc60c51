"""Every dashboard panel and alert rule, evaluated by a real Prometheus on real series.

- Worker series come from two real inference worker processes (tests/support/worker.py, the
  tiny fixture model family) serving real requests, scraped by a real Prometheus with the
  `namespace`/`pod` target labels a PodMonitor gives.
- Operator series come from the operator's own exporter, `slo_operator.opmetrics.
  OperatorMetrics`, served on a free port. Two LatencySLOs are fed by `record_step` with real
  spec, status and decision objects (one breached, degraded, in conflict and out of quality
  budget; one without metrics); a third is run by the operator's own control loop
  (`ControlLoop` with the exporter as its recorder, its metrics source and actuator faked),
  so the series the dashboard reads are those the loop records. The scrape job is the one the
  chart's ServiceMonitor gives (job = the operator Service's name, honor_labels).
- The rules are the chart's PrometheusRule, rendered with short `for` durations and loaded
  into the same Prometheus, so each alert is seen firing on the real series.
"""

from __future__ import annotations

import asyncio
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
from slo_operator.loop import ControlLoop
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.policy.trust import Trust
from slo_operator.spec import (
    Action,
    Condition,
    CurrentStatus,
    LatencySLOSpec,
    LatencySLOStatus,
    ObservedStatus,
    QualityBudgetStatus,
    parse_spec,
)
from slo_operator.types import (
    ApplyResult,
    Decision,
    Observation,
    ProfileSet,
    Ranges,
    RuntimeConfig,
    VariantProfile,
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
LOOPED = "looped"
"""The LatencySLO run by the control loop itself."""
PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(10.0, 8.0, 0.90),
        "quantized": VariantProfile(5.0, 4.0, 0.88),
        "distilled": VariantProfile(2.0, 2.0, 0.85),
    }
)
TRUSTED = Trust(True, True, True)
NO_DATA = Trust(False, False, True, "low traffic")
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
        observed=ObservedStatus(latency_ms=212.0, request_rate=40.0),
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
        observed=ObservedStatus(latency_ms=None, request_rate=0.0),
        current=CurrentStatus(replicas=1, batch_window_ms=0, variant="full"),
        conditions=[
            _condition("Ready", "True", "Reconciling"),
            _condition("SLOMet", "Unknown", "NoData"),
            _condition("MetricsAvailable", "False", "BelowMinRequestRate"),
            _condition("Conflict", "False", "NoConflict"),
        ],
    )


def _decision(action: Action, predicted_ms: float | None) -> Decision:
    config = RuntimeConfig(2, 8, 32, "quantized")
    return Decision(action, config, "reason in words", predicted_latency_ms=predicted_ms)


class _BreachingMetrics:
    """A metrics source that always sees a breach (400 ms at 300 req/s), fresh."""

    async def observe(
        self,
        spec: LatencySLOSpec,
        namespace: str,
        ready_replicas: int,
        now: float,
        ranges: Ranges | None = None,
    ) -> Observation:
        return Observation(now, 400.0, 300.0, 4500.0, 1.0, ready_replicas, ranges=ranges)


class _Actuator:
    def __init__(self) -> None:
        self.config = RuntimeConfig(1, 0, 32, "full")

    async def read(self) -> tuple[RuntimeConfig, int]:
        return self.config, self.config.replicas

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        self.config = target
        return ApplyResult(replicas_set=True, config_written=True)


def _looped(metrics: OperatorMetrics) -> ControlLoop:
    return ControlLoop(
        name=LOOPED,
        namespace="ml",
        metrics=_BreachingMetrics(),
        actuator=_Actuator(),
        profiles=PROFILES,
        recorder=metrics,
    )


LOOPED_SPEC = {
    "targetRef": {"name": "looped-worker"},
    "objective": {"latencyMs": 150, "percentile": 95, "windowSeconds": 15},
    "metrics": {"histogram": "looped_latency_seconds"},
    "policy": {"intervalSeconds": 5, "scaleUpCooldownSeconds": 0},
}


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
                    (
                        [f"127.0.0.1:{w.port}"],
                        {"namespace": "ml", "pod": f"worker-{i}", "deployment": "sentiment-worker"},
                    )
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
                plan = [
                    (Action.DEGRADE_VARIANT, 140.0),
                    (Action.SCALE_UP, 120.0),
                    (Action.HOLD, None),
                    (Action.WIDEN_WINDOW, 130.0),
                ]
                looped = _looped(metrics)
                for step in range(12):
                    action, predicted = plan[step % len(plan)]
                    metrics.record_step(
                        "ml",
                        "sentiment",
                        spec=_spec(150),
                        status=_breached_status(replicas=2 + step // 4),
                        decision=_decision(action, predicted),
                        trust=TRUSTED,
                        duration_s=0.02 + 0.01 * (step % 3),
                    )
                    metrics.record_step(
                        "ml",
                        "idle",
                        spec=_spec(100),
                        status=_idle_status(),
                        decision=_decision(Action.HOLD, None),
                        trust=NO_DATA,
                        duration_s=0.01,
                    )
                    metrics.prometheus_error("ml", "sentiment")
                    asyncio.run(looped.step(LOOPED_SPEC))
                    time.sleep(1.0)
                assert traffic.sent > 0
                _check_dashboard(prom)
                _check_decisions(prom)
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


def _check_decisions(prom: PrometheusServer) -> None:
    """The annotation shows action, reason, observed and predicted latency, for the objects
    fed by hand and for the one the control loop ran."""
    annotation = next(e for w, e in dashboard_queries() if w == "annotation 'Decisions'")
    series = prom.query(substitute(annotation, range_="1h"))
    shown = {r["metric"]["name"]: r["metric"] for r in series}
    assert set(shown) == {"sentiment", LOOPED}, series  # idle only holds: no annotation
    for labels in (r["metric"] for r in series):
        assert labels["action"] != "Hold"
        assert labels["reason"] == "Breach"
        float(labels["predicted_ms"])  # a number (NaN when nothing was predicted)
    assert shown["sentiment"]["observed_ms"] == "212"
    # the loop scaled up at its very first step (a counter born at 1 still shows)
    assert shown[LOOPED]["observed_ms"] == "400"
    assert shown[LOOPED]["action"] == "ScaleUp"
    predicted = float(shown[LOOPED]["predicted_ms"])
    assert 0 < predicted < 400  # the loop's controller predicted its change to help
    # the loop's objective reaches the dashboard's objective variables
    info = prom.query(f'latencyslo_objective_info{{name="{LOOPED}"}}')
    assert len(info) == 1
    assert info[0]["metric"]["quantile"] == "0.95"
    assert info[0]["metric"]["histogram"] == "looped_latency_seconds"
    assert info[0]["metric"]["target"] == "looped-worker"
    reasons = prom.query(f'sum by (reason) (latencyslo_decisions_total{{name=~"idle|{LOOPED}"}})')
    assert {r["metric"]["reason"] for r in reasons} >= {"LowTraffic", "Breach"}
    # the predicted latency lies next to the observed one
    assert prom.query(f'latencyslo_predicted_latency_seconds{{name="{LOOPED}"}} < 0.4')


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
        ("LatencySLOBreached", LOOPED),  # the loop's own series: 400 ms > 150 ms
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
