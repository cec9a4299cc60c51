"""The runtime ConfigMap `<deployment>-latencyslo` is written only when it is the operator's.

Someone else's ConfigMap of that name (no owner reference to the LatencySLO, no
`app.kubernetes.io/managed-by: latencyslo-operator` label) is neither adopted nor overwritten:
the LatencySLO reports a Conflict naming it and changes nothing (deleting the LatencySLO would
otherwise garbage-collect a ConfigMap it never created). Once it is gone, the LatencySLO steers.
"""

from __future__ import annotations

import pytest

from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
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
CONFIGMAP = f"{DEPLOYMENT}-latencyslo"

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


def configmap(labels: dict[str, str] | None = None) -> dict[str, object]:
    other_owner = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "someone-else",
        "uid": "0000-someone-else",
        "controller": True,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": CONFIGMAP,
            "namespace": NAMESPACE,
            "labels": labels or {"app": "unrelated"},
            "ownerReferences": [other_owner],
        },
        "data": {"config.json": '{"note": "not the operator\'s"}'},
    }


async def test_someone_elses_configmap_is_a_conflict_and_left_alone(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    await kube.create(kb.CONFIGMAPS, configmap())
    before = kube.get(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)
    prometheus_api.set(p99_ms=400, rate=300)  # a breach: the LatencySLO would scale 2 -> 5
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(lambda: condition(status_of(kube), "Conflict"), what="a first step")
        reads = steps_made()
        await kb.wait_for(lambda: steps_made() >= reads + 3, within=15, what="3 steps")
        status = status_of(kube)
        conflict = condition(status, "Conflict")
        assert conflict["status"] == "True", conflict
        assert conflict["reason"] == "ForeignConfigMap"
        assert f"ConfigMap {NAMESPACE}/{CONFIGMAP}" in conflict["message"]
        assert condition(status, "Ready")["status"] == "False"
        assert actuation_writes(kube) == []
        assert all(not pod.puts for pod in pods)
        after = kube.get(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)
        assert after["metadata"]["ownerReferences"] == before["metadata"]["ownerReferences"]
        assert after["data"] == before["data"]
        assert kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 2
        warnings = [
            e for e in kb.events_for(kube, NAMESPACE, NAME) if e["reason"] == "ConflictDetected"
        ]
        assert len(warnings) == 1
        assert CONFIGMAP in warnings[0]["message"]

        # Once the ConfigMap is gone, the LatencySLO creates its own and steers.
        await kube.delete_object(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)
        await kb.wait_for(
            lambda: kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5,
            what="a scale-up once the foreign ConfigMap left",
        )
        await kb.wait_for(lambda: condition(status_of(kube), "Conflict")["status"] == "False")
        owners = kube.get(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)["metadata"]["ownerReferences"]
        assert [o["name"] for o in owners] == [NAME]


async def test_a_configmap_labelled_as_the_operators_is_taken_over(
    kube, prometheus_api, pods, profiles_file
):
    """One the operator made (its managed-by label), e.g. for a LatencySLO deleted with
    `--cascade=orphan`, is written as before."""
    await seed_workload(kube, pods)
    await kube.create(
        kb.CONFIGMAPS, configmap(labels={"app.kubernetes.io/managed-by": "latencyslo-operator"})
    )
    prometheus_api.set(p99_ms=400, rate=300)
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(
            lambda: kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5,
            what="the scale-up",
        )
        await kb.wait_for(
            lambda: (condition(status_of(kube), "Conflict") or {}).get("status") == "False",
            what="the step's status",  # written after the scale, in the same step
        )
        cm = kube.get(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)
        assert "batchWindowMs" in cm["data"]["config.json"]
