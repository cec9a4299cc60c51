"""End to end on kind: the chart, the operator and the demo worker in a real cluster.

`make kind-up` (hack/kind-up.sh) creates the cluster, builds and loads both images, and runs
hack/e2e-install.sh: a plain Prometheus and the chart with the demo worker in a namespace that
enforces Pod Security "restricted" (on any other cluster, run hack/e2e-install.sh and `make
e2e KUBECONFIG=...`). The tests then act as a user would, with kubectl, each under its own
timeout, and run in file order (later tests build on the LatencySLO the earlier ones created):

1. the API server rejects bad LatencySLOs with the CEL messages, and accepts the chart's sample;
2. with no traffic the operator holds (MetricsAvailable False) and changes nothing;
3. a load step driven by a Job inside the cluster: the operator degrades the variant and scales
   up, pushes the config to the pods, then restores and scales down when the load drops; no
   request is lost on the way; `kubectl get lslo` / `describe` show the columns and Events;
4. every dashboard panel has data in the in-cluster Prometheus and the operator is up;
5. a second LatencySLO on the same Deployment is put in Conflict;
6. deleting the LatencySLO garbage-collects its runtime ConfigMap.

The load level and target are tunable for slower or faster machines (a GPU cluster):
E2E_TARGET_MS, E2E_STEP_RPS; the load Job's image: E2E_WORKER_IMAGE, E2E_IMAGE_PULL_POLICY.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Any

import pytest

from tests.e2e.cluster import (
    NAMESPACE,
    OPERATOR,
    REPO,
    WORKER,
    Kube,
    actions,
    condition,
    wait_until,
)
from tests.integration.monitoring.exprs import dashboard_queries, rule_queries, substitute
from tests.unit.helm.render import render_objects

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLO = "e2e"
CONFIGMAP = f"{WORKER}-latencyslo"
TARGET_MS = float(os.environ.get("E2E_TARGET_MS", "60"))
STEP_RPS = float(os.environ.get("E2E_STEP_RPS", "150"))
PHASES = [
    {"name": "warm", "rps": 3, "seconds": 60},
    {"name": "step", "rps": STEP_RPS, "seconds": 240},
    {"name": "cool", "rps": 3, "seconds": 330},
]
LOAD_SECONDS = sum(p["seconds"] for p in PHASES)
SETUP_S = 900
"""The first test also waits for the session's reset (a rollout of fresh worker pods)."""
BATCHING = {"minWindowMs": 0, "maxWindowMs": 20, "maxBatchSize": 32}
ONLY_AFTER_A_FAILURE = ("latencyslo_prometheus_errors_total",)
"""Series that exist only once something failed: their panels may be empty in a good run."""
PRINTER_COLUMNS = [
    "NAME",
    "TARGET",
    "LATENCY",
    "REPLICAS",
    "WINDOW",
    "VARIANT",
    "MODE",
    "SLO MET",
    "AGE",
]


def latencyslo(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKER},
        "objective": {
            "percentile": 99,
            "latencyMs": TARGET_MS,
            "windowSeconds": 30,
            "minRequestRate": 1.0,
        },
        "replicas": {"min": 1, "max": 3},
        "batching": dict(BATCHING),
        "variants": {
            "allowed": ["full", "quantized", "distilled"],
            "preferred": "full",
            "qualityBudget": {"maxDegradedFraction": 0.5, "windowMinutes": 30},
        },
        "policy": {
            "mode": "Enforce",
            "headroom": 0.85,
            "intervalSeconds": 5,
            "scaleUpCooldownSeconds": 15,
            "scaleDownStabilizationSeconds": 45,
            "variantMinDwellSeconds": 20,
        },
    }
    for key, value in spec.items():
        body[key] = {**body.get(key, {}), **value}
    return {
        "apiVersion": "latencyslo.io/v1alpha1",
        "kind": "LatencySLO",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": body,
    }


def runtime_config(kube: Kube) -> dict[str, Any] | None:
    cm = kube.get("configmap", CONFIGMAP)
    if cm is None or "config.json" not in cm.get("data", {}):
        return None
    return dict(json.loads(cm["data"]["config.json"]))


def replicas(kube: Kube) -> int:
    return int(kube.json("get", "deployment", WORKER)["spec"]["replicas"])


# ------------------------------------------------------------------------------ the API


@pytest.mark.timeout(SETUP_S)
def test_operator_and_worker_are_running(kube: Kube) -> None:
    for name in (OPERATOR, WORKER):
        status = kube.json("get", "deployment", name)["status"]
        assert status.get("readyReplicas", 0) >= 1, f"{name}: {status}"
    crd = kube.json("get", "crd", "latencyslos.latencyslo.io", namespaced=False)
    assert crd["spec"]["names"]["shortNames"] == ["lslo"]


BAD = [
    ({"replicas": {"min": 5, "max": 2}}, "replicas.min must be <= replicas.max"),
    (
        {"batching": {"minWindowMs": 30, "maxWindowMs": 10}},
        "batching.minWindowMs must be <= batching.maxWindowMs",
    ),
    (
        {"variants": {"allowed": ["quantized"], "preferred": "full"}},
        "variants.preferred must be one of variants.allowed",
    ),
]


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("spec", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_latencyslo_is_rejected_with_the_cel_message(
    kube: Kube, spec: dict[str, Any], message: str
) -> None:
    proc = kube.apply(latencyslo("e2e-bad", **spec))
    assert proc.returncode != 0, proc.stdout
    assert message in proc.stderr
    assert kube.get("latencyslo", "e2e-bad") is None


@pytest.mark.timeout(120)
def test_the_charts_sample_latencyslo_is_accepted(kube: Kube) -> None:
    objects = render_objects(
        {"demo": {"enabled": True, "adminToken": {"value": "offline-render"}}}, namespace=NAMESPACE
    )
    (sample,) = [o for o in objects if o["kind"] == "LatencySLO"]
    proc = kube.apply(sample, "--dry-run=server")
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- the loop


@pytest.mark.timeout(300)
def test_holds_without_traffic(kube: Kube) -> None:
    proc = kube.apply(latencyslo(SLO))
    assert proc.returncode == 0, proc.stderr

    def holding() -> dict[str, Any] | None:
        obj = kube.get("latencyslo", SLO)
        metrics = condition(obj, "MetricsAvailable")
        decision = (obj or {}).get("status", {}).get("lastDecision") or {}
        if metrics and metrics["status"] == "False" and decision.get("action") == "Hold":
            return obj
        return None

    wait_until(holding, timeout=120, what="MetricsAvailable=False and a Hold without traffic")
    reasons = {e["reason"] for e in kube.events(SLO)}
    assert "MetricsUnavailable" in reasons, reasons
    assert replicas(kube) == 1, "no blind action: replicas unchanged without metrics"
    # the immutable targetRef is enforced by the API server (CEL transition rule)
    proc = kube.run(
        "patch",
        "latencyslo",
        SLO,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"targetRef": {"name": "another"}}}),
        check=False,
    )
    assert proc.returncode != 0
    assert "targetRef is immutable" in proc.stderr


def _loadgen_job() -> dict[str, Any]:
    # the worker image has Python and aiohttp, all the load generator needs
    image = os.environ.get(
        "E2E_WORKER_IMAGE", f"latencyslo/worker:{os.environ.get('IMAGE_TAG', 'e2e')}"
    )
    restricted = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "e2e-load", "namespace": NAMESPACE},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 1200,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "load",
                            "image": image,
                            "imagePullPolicy": os.environ.get("E2E_IMAGE_PULL_POLICY", "Never"),
                            "command": ["python", "/load/loadgen.py"],
                            "env": [
                                {
                                    "name": "TARGET_URL",
                                    "value": f"http://{WORKER}.{NAMESPACE}.svc:8080/v1/predict",
                                },
                                {"name": "PHASES", "value": json.dumps(PHASES)},
                            ],
                            "resources": {
                                "requests": {"cpu": "250m", "memory": "128Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "securityContext": restricted,
                            "volumeMounts": [{"name": "load", "mountPath": "/load"}],
                        }
                    ],
                    "volumes": [{"name": "load", "configMap": {"name": "e2e-loadgen"}}],
                }
            },
        },
    }


@pytest.mark.timeout(LOAD_SECONDS + 900)
def test_load_step_scales_switches_and_returns(kube: Kube) -> None:
    kube.run("delete", "job", "e2e-load", "--ignore-not-found", "--wait=true")
    script = (REPO / "tests" / "e2e" / "loadgen.py").read_text()
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "e2e-loadgen", "namespace": NAMESPACE},
        "data": {"loadgen.py": script},
    }
    assert kube.apply(configmap).returncode == 0
    proc = kube.apply(_loadgen_job())
    assert proc.returncode == 0, proc.stderr

    seen_actions: list[str] = []
    seen_conditions: dict[str, set[str]] = {}
    seen_variants: set[str] = set()
    seen_windows: set[int] = set()
    pods_on_degraded_variant = False
    max_replicas = 0
    table = ""
    deadline = time.monotonic() + sum(p["seconds"] for p in PHASES) + 300
    while time.monotonic() < deadline:
        obj = kube.get("latencyslo", SLO) or {}
        for action in [*actions(obj), obj.get("status", {}).get("lastDecision", {}).get("action")]:
            if action and action not in seen_actions:
                seen_actions.append(action)
        for cond in obj.get("status", {}).get("conditions", []):
            seen_conditions.setdefault(cond["type"], set()).add(cond["status"])
        max_replicas = max(max_replicas, replicas(kube))
        config = runtime_config(kube)
        if config:
            seen_variants.add(config["variant"])
            seen_windows.add(int(config["batchWindowMs"]))
        window = ((obj.get("status") or {}).get("current") or {}).get("batchWindowMs")
        if window is not None:
            seen_windows.add(int(window))
        if not pods_on_degraded_variant and seen_variants - {"full"}:
            degraded = kube.prom_query(
                f'inference_runtime_config_info{{namespace="{NAMESPACE}", variant!="full"}}'
            )
            pods_on_degraded_variant = bool(degraded)
        if max_replicas > 1 and not table:
            table = kube.run("get", "lslo", SLO).stdout
        job = kube.json("get", "job", "e2e-load")["status"]
        if job.get("succeeded") or job.get("failed"):
            break
        time.sleep(5)

    logs = kube.run("logs", "job/e2e-load", timeout=60).stdout
    reports = {
        r["phase"]: r
        for r in (json.loads(line) for line in logs.splitlines() if line.startswith("{"))
        if r["phase"] != "total"
    }
    summary = (
        f"actions {seen_actions}, conditions {seen_conditions}, variants {seen_variants}, "
        f"windows {sorted(seen_windows)}, max replicas {max_replicas}, load {json.dumps(reports)}"
    )
    assert set(reports) == {"warm", "step", "cool"}, summary

    # the operator used both knobs on the step and undid them after it
    assert "DegradeVariant" in seen_actions, summary
    assert "ScaleUp" in seen_actions, summary
    assert max_replicas > 1, summary
    assert "RestoreVariant" in seen_actions, summary
    assert seen_actions.index("DegradeVariant") < seen_actions.index("RestoreVariant"), summary
    assert "ScaleDown" in seen_actions, summary
    # the new variant reached the ConfigMap and the pods (push or file), then full came back
    assert seen_variants - {"full"}, summary
    assert pods_on_degraded_variant, summary
    wait_until(
        lambda: (runtime_config(kube) or {}).get("variant") == "full",
        timeout=180,
        what="the preferred variant back in the runtime ConfigMap",
    )
    # the batch window: set, always within the LatencySLO's bounds, and what the pods run
    assert seen_windows, summary
    assert all(BATCHING["minWindowMs"] <= w <= BATCHING["maxWindowMs"] for w in seen_windows)

    def pods_run_the_window() -> bool:
        config = runtime_config(kube) or {}
        series = kube.prom_query(f'inference_runtime_config_info{{namespace="{NAMESPACE}"}}')
        windows = {s["metric"].get("batch_window_ms") for s in series}
        return bool(config) and windows == {str(config["batchWindowMs"])}

    wait_until(pods_run_the_window, timeout=120, what="every pod on the ConfigMap's batch window")
    # conditions moved as the SLO was breached and recovered
    assert "True" in seen_conditions.get("MetricsAvailable", set()), summary
    assert "False" in seen_conditions.get("SLOMet", set()), summary
    assert "True" in seen_conditions.get("QualityDegraded", set()), summary
    final = kube.get("latencyslo", SLO)
    ready = condition(final, "Ready")
    assert ready is not None, final
    assert ready["status"] == "True", final
    # no request lost to a scale-up, a switch or a scale-down
    for phase, report in reports.items():
        assert report["errors"] == {}, f"{phase}: {report}"
    for phase in ("warm", "cool"):
        codes = reports[phase]["codes"]
        assert set(codes) == {"200"}, f"{phase}: {reports[phase]}"

    # what a user sees
    header = re.split(r"\s{2,}", table.splitlines()[0].strip()) if table else []
    assert header == PRINTER_COLUMNS, table
    described = kube.run("describe", "latencyslo", SLO).stdout
    assert "Events:" in described
    reasons = {e["reason"] for e in kube.events(SLO)}
    for reason in ("ScaledUp", "VariantDegraded", "VariantRestored", "ScaledDown", "SLOBreached"):
        assert reason in reasons, f"{reason} not in {reasons}"
    assert "ScaledUp" in described, described
    assert "VariantDegraded" in described, described


# ------------------------------------------------------------------------ observability


@pytest.mark.timeout(300)
def test_dashboard_panels_have_data_and_the_operator_is_up(kube: Kube) -> None:
    # as Grafana runs them: range queries over the dashboard's time range (the last 30 min);
    # a panel of a series that exists only after a failure must evaluate, data or not
    empty = []
    for where, expr in dashboard_queries():
        query = substitute(expr, rate_interval="1m", range_="30m", interval="15s")
        result = kube.prom_query_range(query, minutes=30)
        if not result and not any(name in expr for name in ONLY_AFTER_A_FAILURE):
            empty.append(where)
    assert not empty, f"panels with no data in the cluster: {empty}"
    for alert, expr in rule_queries():
        result = kube.prom_query(expr)  # every rule evaluates
        if alert == "LatencySLOOperatorDown":
            assert result == [], "the operator's scrape job must match the alert's job label"


# ----------------------------------------------------------------------------- conflict


@pytest.mark.timeout(300)
def test_a_second_latencyslo_on_the_same_deployment_is_a_conflict(kube: Kube) -> None:
    before = replicas(kube)
    assert kube.apply(latencyslo("e2e-conflict")).returncode == 0
    try:

        def conflicted() -> dict[str, Any] | None:
            obj = kube.get("latencyslo", "e2e-conflict")
            cond = condition(obj, "Conflict")
            return obj if cond and cond["status"] == "True" else None

        wait_until(conflicted, timeout=120, what="Conflict=True on the second LatencySLO")
        assert "ConflictDetected" in {e["reason"] for e in kube.events("e2e-conflict")}
        assert replicas(kube) == before
    finally:
        kube.run("delete", "latencyslo", "e2e-conflict", "--ignore-not-found")


# ------------------------------------------------------------------------------ cleanup


@pytest.mark.timeout(420)
def test_deleting_the_latencyslo_removes_its_configmap(kube: Kube) -> None:
    cm = kube.get("configmap", CONFIGMAP)
    assert cm is not None, "the runtime ConfigMap exists while the LatencySLO does"
    owners = cm["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"]) for o in owners] == [("LatencySLO", SLO)]
    kube.run("delete", "latencyslo", SLO, "--wait=true", timeout=180)
    wait_until(
        lambda: kube.get("configmap", CONFIGMAP) is None,
        timeout=120,
        what=f"ConfigMap {CONFIGMAP} garbage-collected",
    )
    assert kube.get("deployment", WORKER) is not None, "the workload itself stays"
