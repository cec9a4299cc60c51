"""The operator end to end: kopf's real reactor against kmock's Kubernetes emulator.

Each test seeds a worker Deployment with two Ready pods (their admin endpoints are aiohttp
stand-ins on loopback), the admin-token Secret, and a scriptable Prometheus API; then runs the
real operator (`slo_operator.run.run_operator`: kopf, handlers, control loop, decision core,
KubernetesActuator, PrometheusSource) with a 0.3 s control interval.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
    TOKEN,
    actuation_writes,
    condition,
    operator_settings,
    running_operator,
    seed_workload,
    slo_spec,
    status_of,
    steps_made,
)
from tests.support import kube as kb

NAME = "sentiment"

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


def reasons(kube: kb.KubeEmulator, name: str = NAME) -> list[str]:
    return [e["reason"] for e in kb.events_for(kube, NAMESPACE, name)]


def status_writes(kube: kb.KubeEmulator, name: str = NAME) -> int:
    return len(kube.writes(f"/latencyslos/{name}/status"))


async def steps(kube: kb.KubeEmulator, count: int, loops: int = 1) -> None:
    """Wait until `loops` control loops on the target have made `count` more steps each."""
    target = steps_made() + count * loops
    await kb.wait_for(lambda: steps_made() >= target, within=15, what=f"{count} steps")


async def test_create_fills_status(kube, prometheus_api, pods, profiles_file):
    await seed_workload(kube, pods)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(lambda: condition(status_of(kube), "SLOMet"), what="a first step")
        await steps(kube, 2)
        obj = kube.get(kb.LATENCYSLOS, NAMESPACE, NAME)
    status = obj["status"]

    assert status["observedGeneration"] == 1
    assert status["observed"]["latencyMs"] == pytest.approx(60.0)
    assert status["observed"]["percentile"] == 99
    assert status["observed"]["requestRate"] == pytest.approx(100.0)
    assert status["observed"]["sampledAt"]
    assert status["current"] == {
        "replicas": 2,
        "readyReplicas": 2,
        "batchWindowMs": 0,
        "maxBatchSize": 32,
        "variant": "full",
    }
    assert status["lastDecision"]["action"] == "Hold"
    assert status["lastDecision"]["applied"] is False
    assert "p99 60ms <= 150ms" in status["lastDecision"]["reason"]
    assert status["lastDecision"]["predictedLatencyMs"] > 0
    assert status["history"] == []
    assert status.get("pending") is None
    assert status["qualityBudget"] == {"degradedFraction": 0.0}
    assert status["attainment"]["lastHour"] == 1.0
    expected = {
        "Ready": ("True", "Reconciling"),
        "SLOMet": ("True", "WithinTarget"),
        "MetricsAvailable": ("True", "MetricsFresh"),
        "QualityDegraded": ("False", "PreferredVariant"),
        "Conflict": ("False", "NoConflict"),
    }
    for type_, (value, reason) in expected.items():
        found = condition(status, type_)
        assert found is not None, type_
        assert (found["status"], found["reason"]) == (value, reason), found
        assert found["observedGeneration"] == 1
        assert found["lastTransitionTime"]
    # The controller memory lives in an annotation of the LatencySLO (docs/operator.md).
    memory = json.loads(obj["metadata"]["annotations"]["latencyslo.io/controller-state"])
    assert memory["policy"]["version"] == 1
    # Every query is scoped to the LatencySLO's namespace.
    assert prometheus_api.queries
    assert all(f'namespace="{NAMESPACE}"' in q for q in prometheus_api.queries)
    # A hold writes nothing to the workload, and no change Event is posted.
    assert actuation_writes(kube) == []
    assert reasons(kube) == []


async def test_breach_scales_through_scale_subresource_and_pushes(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        slo = await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(
            lambda: (status_of(kube).get("lastDecision") or {}).get("action") == "ScaleUp",
            what="a scale-up",
        )
        await steps(kube, 2)
        await kb.wait_for(lambda: "ScaledUp" in reasons(kube), what="the ScaledUp Event")
    status = status_of(kube)
    deployment = kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)

    # Replicas moved through /scale only, never by writing the Deployment object itself.
    writes = actuation_writes(kube)
    assert f"PUT /apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}/scale" in writes
    assert not [w for w in writes if w.endswith(f"/deployments/{DEPLOYMENT}")]
    assert deployment["spec"]["replicas"] == 5
    scaled = [d["spec"]["replicas"] for d in kube.versions(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)]
    assert scaled == [2, 5]  # one absolute move, no steps in between, no repeats

    # Runtime config in the owned ConfigMap (key config.json), garbage-collectable.
    cm = kube.get(kb.CONFIGMAPS, NAMESPACE, f"{DEPLOYMENT}-latencyslo")
    assert cm is not None
    config = json.loads(cm["data"]["config.json"])
    assert config == {
        "variant": status["current"]["variant"],
        "batchWindowMs": status["current"]["batchWindowMs"],
        "maxBatchSize": 32,
    }
    assert cm["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "latencyslo.io/v1alpha1",
            "kind": "LatencySLO",
            "name": NAME,
            "uid": slo["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]

    # Every Ready pod of the Deployment got the same document with the bearer token.
    for pod in pods:
        assert pod.puts, pod.name
        assert pod.puts[-1] == config

    # Status tells what happened and why; Events say it too.
    last = next(h for h in status["history"] if h["action"] == "ScaleUp")
    assert last["applied"] is True
    assert last["from"]["replicas"] == 2
    assert last["to"]["replicas"] == 5
    assert "400ms > 150ms" in last["reason"]
    assert status["current"]["replicas"] == 5
    assert status.get("pending") is None
    assert condition(status, "SLOMet")["status"] == "False"
    posted = reasons(kube)
    assert posted.count("ScaledUp") == 1
    assert posted.count("SLOBreached") == 1
    events = kb.events_for(kube, NAMESPACE, NAME)
    scaled_up = next(e for e in events if e["reason"] == "ScaledUp")
    assert scaled_up["type"] == "Normal"
    assert f"Scaled {DEPLOYMENT} from 2 to 5 replicas" in scaled_up["message"]
    breached = next(e for e in events if e["reason"] == "SLOBreached")
    assert breached["type"] == "Warning"
    assert breached["involvedObject"]["uid"] == slo["metadata"]["uid"]


async def test_recommend_mode_writes_only_status_and_events(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    spec = slo_spec(mode="Recommend")
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        await kb.wait_for(lambda: "Recommended" in reasons(kube), what="a recommendation")
        await steps(kube, 4)
    status = status_of(kube)

    assert actuation_writes(kube) == []
    assert all(not pod.puts for pod in pods)
    assert kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 2
    assert status["lastDecision"]["action"] == "ScaleUp"
    assert status["lastDecision"]["applied"] is False
    assert status["lastDecision"]["to"]["replicas"] == 5
    assert "Recommend mode" in status["lastDecision"]["reason"]
    assert status["current"]["replicas"] == 2
    assert condition(status, "Ready")["reason"] == "Recommending"
    # The same recommendation is posted and recorded once, not every interval.
    assert reasons(kube).count("Recommended") == 1
    assert len(status["history"]) == 1
    message = next(
        e["message"] for e in kb.events_for(kube, NAMESPACE, NAME) if e["reason"] == "Recommended"
    )
    assert "replicas 2->5" in message


async def test_paused_holds(kube, prometheus_api, pods, profiles_file):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec(mode="Paused")))
        await kb.wait_for(lambda: condition(status_of(kube), "Ready"), what="a first step")
        await steps(kube, 3)
        status = status_of(kube)
        assert status["lastDecision"]["action"] == "Hold"
        assert "paused" in status["lastDecision"]["reason"]
        assert condition(status, "Ready")["reason"] == "Paused"
        assert condition(status, "SLOMet")["status"] == "False"  # still observed and reported
        assert actuation_writes(kube) == []

        # Un-pausing acts on the next step.
        await kube.patch_object(
            kb.LATENCYSLOS, NAMESPACE, NAME, {"spec": {"policy": {"mode": "Enforce"}}}
        )
        await kb.wait_for(
            lambda: kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5,
            what="a scale-up after un-pausing",
        )
        await kb.wait_for(lambda: status_of(kube).get("observedGeneration") == 2)
        await kb.wait_for(lambda: "ScaledUp" in reasons(kube), what="the ScaledUp Event")
    assert any(pod.puts for pod in pods)


async def test_hpa_on_the_target_is_a_conflict(kube, prometheus_api, pods, profiles_file):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    await kube.create(kb.HPAS, kb.hpa(NAMESPACE, "sentiment-hpa", DEPLOYMENT))
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(lambda: condition(status_of(kube), "Conflict"), what="a first step")
        await steps(kube, 4)
        status = status_of(kube)
        conflict = condition(status, "Conflict")
        assert conflict["status"] == "True"
        assert conflict["reason"] == "HorizontalPodAutoscaler"
        assert "sentiment-hpa" in conflict["message"]
        assert condition(status, "Ready")["status"] == "False"
        assert actuation_writes(kube) == []
        assert all(not pod.puts for pod in pods)
        assert reasons(kube).count("ConflictDetected") == 1
        warning = next(
            e for e in kb.events_for(kube, NAMESPACE, NAME) if e["reason"] == "ConflictDetected"
        )
        assert warning["type"] == "Warning"

        # Once the HPA is gone, the LatencySLO steers again.
        await kube.delete_object(kb.HPAS, NAMESPACE, "sentiment-hpa")
        await kb.wait_for(
            lambda: kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5,
            what="a scale-up after the HPA left",
        )
        await kb.wait_for(lambda: condition(status_of(kube), "Conflict")["status"] == "False")


async def test_second_latencyslo_on_the_same_target_is_a_conflict(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(
            kb.LATENCYSLOS,
            kb.latencyslo(NAMESPACE, NAME, slo_spec(), created="2026-01-01T00:00:00Z"),
        )
        await kb.wait_for(lambda: condition(status_of(kube), "Conflict"), what="the first one")
        await kube.create(
            kb.LATENCYSLOS,
            kb.latencyslo(NAMESPACE, "sentiment-copy", slo_spec(), created="2026-02-01T00:00:00Z"),
        )
        await kb.wait_for(
            lambda: condition(status_of(kube, "sentiment-copy"), "Conflict"), what="the second"
        )
        await steps(kube, 2, loops=2)
        younger = condition(status_of(kube, "sentiment-copy"), "Conflict")
        older = condition(status_of(kube), "Conflict")
    assert younger["status"] == "True"
    assert younger["reason"] == "DuplicateLatencySLO"
    assert f"LatencySLO {NAME} (older)" in younger["message"]
    assert older["status"] == "False"  # the older one keeps working
    assert reasons(kube, "sentiment-copy") == ["ConflictDetected"]


async def test_delete_cleans_up(kube, prometheus_api, pods, profiles_file):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        slo = await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        configmap = f"{DEPLOYMENT}-latencyslo"
        await kb.wait_for(
            lambda: kube.get(kb.CONFIGMAPS, NAMESPACE, configmap), what="the runtime ConfigMap"
        )
        owner = kube.get(kb.CONFIGMAPS, NAMESPACE, configmap)["metadata"]["ownerReferences"][0]
        assert owner["uid"] == slo["metadata"]["uid"]
        assert owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True
        await kb.wait_for(lambda: "ScaledUp" in reasons(kube), what="the Events of the change")

        await kube.delete_object(kb.LATENCYSLOS, NAMESPACE, NAME)
        # kopf's finalizer lets the daemon stop first, then the object goes away...
        await kb.wait_for(
            lambda: kube.get(kb.LATENCYSLOS, NAMESPACE, NAME) is None, what="the deletion"
        )
        # ...and the API server's garbage collector removes what it owned (emulated).
        assert kube.get(kb.CONFIGMAPS, NAMESPACE, configmap) is None
        seen = len(list(kube))
        await asyncio.sleep(1.0)  # > 3 intervals
        later = [r for r in list(kube)[seen:] if r.method.value != "GET"]
        assert [(r.url.path, r.data) for r in later] == []
    # The workload itself is left as it was last set.
    assert kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5


async def test_pods_without_token_converge_from_the_configmap(
    kube, prometheus_api, pods, profiles_file
):
    """A missing admin token skips the push (reported), the ConfigMap is still written."""
    await seed_workload(kube, pods)
    await kube.delete_object(kb.SECRETS, NAMESPACE, "latencyslo-admin-token")
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(
            lambda: (status_of(kube).get("lastDecision") or {}).get("action") == "ScaleUp",
            what="a scale-up",
        )
    status = status_of(kube)
    assert all(not pod.puts for pod in pods)
    assert kube.get(kb.CONFIGMAPS, NAMESPACE, f"{DEPLOYMENT}-latencyslo") is not None
    scale_up = status["history"][0]  # the change itself (a later hold may follow it)
    assert scale_up["action"] == "ScaleUp"
    assert "no admin token" in scale_up["reason"]
    assert scale_up["applied"] is True
    assert TOKEN not in json.dumps(status)


async def test_an_invalid_spec_is_reported_and_nothing_is_done(
    kube, prometheus_api, pods, profiles_file
):
    """The API server refuses such specs (CRD schema and CEL); an outdated CRD might not."""
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    bad = slo_spec()
    bad["replicas"] = {"min": 6, "max": 2}
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, bad))
        await kb.wait_for(lambda: condition(status_of(kube), "Ready"), what="a report")
        ready = condition(status_of(kube), "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
        assert "replicas.min must be <= replicas.max" in ready["message"]
        assert actuation_writes(kube) == []

        # Fixed: the loop starts.
        await kube.patch_object(
            kb.LATENCYSLOS, NAMESPACE, NAME, {"spec": {"replicas": {"min": 1, "max": 8}}}
        )
        await kb.wait_for(
            lambda: kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5,
            within=15,
            what="the scale-up once the spec is valid",
        )


async def test_the_specs_worker_settings_reach_the_workers_while_the_controller_holds(
    kube, prometheus_api, pods, profiles_file
):
    """`maxBatchSize` and `maxQueueWaitMs` are written and pushed at the next step even where
    no knob moves (a hold), said in the decision and an Event; a change of them in the spec is
    pushed again, once."""
    await seed_workload(kube, pods)
    spec = slo_spec()
    spec["batching"] = {**spec["batching"], "maxBatchSize": 16, "maxQueueWaitMs": 60}
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        await kb.wait_for(
            lambda: all(p.config.get("maxQueueWaitMs") == 60 for p in pods), what="the push"
        )
        await kb.wait_for(
            lambda: (status_of(kube).get("current") or {}).get("maxQueueWaitMs") == 60,
            what="the limit in status",
        )
        cm = kube.get(kb.CONFIGMAPS, NAMESPACE, f"{DEPLOYMENT}-latencyslo")
        assert json.loads(cm["data"]["config.json"]) == {
            "variant": "full", "batchWindowMs": 0, "maxBatchSize": 16, "maxQueueWaitMs": 60,
        }  # fmt: skip
        assert all(p.config["maxBatchSize"] == 16 for p in pods)
        status = status_of(kube)
        first = status["history"][-1]
        assert first["action"] == "Hold"
        assert first["applied"] is True
        assert "max batch size 32 -> 16 and queue wait limit unknown -> 60ms" in first["reason"]
        assert (first["from"]["maxQueueWaitMs"], first["to"]["maxQueueWaitMs"]) == (None, 60)
        assert kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 2
        events = kb.events_for(kube, NAMESPACE, NAME)
        batching = [e["message"] for e in events if e["reason"] == "BatchWindowChanged"]
        assert any("queue wait limit unknown -> 60ms" in m for m in batching), batching

        await kube.patch_object(
            kb.LATENCYSLOS, NAMESPACE, NAME, {"spec": {"batching": {"maxQueueWaitMs": 0}}}
        )
        await kb.wait_for(
            lambda: all(p.config.get("maxQueueWaitMs") == 0 for p in pods), what="the new limit"
        )
        puts = [len(p.puts) for p in pods]
        await steps(kube, 3)
        assert [len(p.puts) for p in pods] == puts  # in force: not pushed again
        assert (status_of(kube).get("current") or {}).get("maxQueueWaitMs") == 0


async def test_a_limit_the_spec_leaves_stays_the_workers_own(
    kube, prometheus_api, pods, profiles_file
):
    """Workers started with their own limit (read from a pod: no ConfigMap yet) and a spec
    without one: the change writes no limit, so pods started later keep their flag's."""
    for pod in pods:
        pod.config["maxQueueWaitMs"] = 60
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(lambda: all(p.puts for p in pods), what="the push of a scale-up")
    cm = kube.get(kb.CONFIGMAPS, NAMESPACE, f"{DEPLOYMENT}-latencyslo")
    assert "maxQueueWaitMs" not in json.loads(cm["data"]["config.json"])
    for pod in pods:
        assert all("maxQueueWaitMs" not in put for put in pod.puts)
        assert pod.config["maxQueueWaitMs"] == 60
