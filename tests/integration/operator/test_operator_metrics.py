"""The operator's own metrics as the running operator serves them: kopf's real reactor
against kmock's Kubernetes emulator, a scriptable Prometheus API, the real control loop, and
the exporter on its port (what the dashboard and the alerts read)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slo_local.promserver import free_port
from slo_operator.opmetrics import DecisionReason
from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
    operator_settings,
    running_operator,
    seed_workload,
    slo_spec,
)
from tests.support import kube as kb

NAME = "sentiment"

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The exporter's samples (its HTTP server runs in a thread: a blocking get is fine)."""
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def of(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, **labels: str
) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of `metric` for the LatencySLO, matching `labels`."""
    want = {"namespace": NAMESPACE, "name": NAME, **labels}
    return [
        (dict(lbls), value)
        for (name, lbls), value in samples.items()
        if name == metric and want.items() <= dict(lbls).items()
    ]


async def test_the_running_operator_serves_decisions_reasons_predictions_and_objective(
    kube: kb.KubeEmulator,
    prometheus_api: Any,
    pods: list[Any],
    profiles_file: Path,
) -> None:
    port = free_port()
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)  # a breach: the policy scales up
    settings = operator_settings(prometheus_api.url, profiles_file, metrics_port=port)
    async with running_operator(kube, settings):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))

        def scaled() -> bool:
            got = scrape(port)
            return bool(of(got, "latencyslo_decisions_total", action="ScaleUp"))

        await kb.wait_for(scaled, within=20, what="a ScaleUp counted")
        got = scrape(port)

        decided = of(got, "latencyslo_decisions_total", action="ScaleUp")
        assert [labels["reason"] for labels, _ in decided] == [DecisionReason.BREACH.value]
        assert of(got, "latencyslo_observed_latency_seconds")[0][1] == pytest.approx(0.4)
        predicted = of(got, "latencyslo_predicted_latency_seconds")[0][1]
        assert math.isfinite(predicted)
        assert 0 < predicted < 0.4
        assert of(got, "latencyslo_last_change_observed_latency_seconds")[0][1] == pytest.approx(
            0.4
        )
        assert 0 < of(got, "latencyslo_last_change_predicted_latency_seconds")[0][1] < 0.4
        info = of(got, "latencyslo_objective_info")
        assert [(labels, value) for labels, value in info] == [
            (
                {
                    "namespace": NAMESPACE,
                    "name": NAME,
                    "percentile": "99",
                    "quantile": "0.99",
                    "histogram": "inference_request_duration_seconds",
                    "target": DEPLOYMENT,
                },
                1.0,
            )
        ]
        reasons = {labels["reason"] for labels, _ in of(got, "latencyslo_decisions_total")}
        assert reasons <= {r.value for r in DecisionReason}

        # the metrics go away: holds are counted with the data's fault as their reason
        prometheus_api.set(p99_ms=None, rate=None)

        def held_for_no_data() -> bool:
            got = scrape(port)
            return any(
                labels["action"] == "Hold" and labels["reason"] in {"NoData", "QueryFailed"}
                for labels, _ in of(got, "latencyslo_decisions_total")
            )

        await kb.wait_for(held_for_no_data, within=20, what="a Hold for missing data")
        got = scrape(port)
        assert math.isnan(of(got, "latencyslo_predicted_latency_seconds")[0][1])

        # deleted: every series of the object goes
        await kube.delete_object(kb.LATENCYSLOS, NAMESPACE, NAME)

        def forgotten() -> bool:
            got = scrape(port)
            return not any(dict(lbls).get("name") == NAME for (_, lbls) in got)

        await kb.wait_for(forgotten, within=20, what="the deleted object's series gone")
