"""The steps read the target's Deployment and runtime ConfigMap from the operator's watches,
not from the API server: a steady LatencySLO makes no GET of either, and a change made by
someone else (the Deployment scaled, the ConfigMap edited) still reaches the next steps
through the watch. A ConfigMap of the runtime name that is not the operator's is not in the
watch (label selector) and is still read, and refused, as before (test_foreign_configmap.py).
"""

from __future__ import annotations

import json

import pytest

from slo_operator.actuate.kubernetes import CONFIG_KEY, configmap_name
from slo_operator.actuate.watched import MANAGED_BY, MANAGED_BY_LABEL, MANAGED_SELECTOR
from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
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


def operator_gets(kube: kb.KubeEmulator, path_end: str) -> int:
    """GETs by name (not lists or watches) the operator made of the object at `path_end`."""
    return sum(
        1
        for r in kube
        if r.method.value == "GET"
        and r.url.path.endswith(path_end)
        and not r.headers.get("User-Agent", "").startswith("kmock/")
    )


def runtime_configmap(variant: str, labelled: bool = True) -> dict[str, object]:
    config = {"variant": variant, "batchWindowMs": 0, "maxBatchSize": 32}
    meta: dict[str, object] = {"name": configmap_name(DEPLOYMENT), "namespace": NAMESPACE}
    if labelled:
        meta["labels"] = {MANAGED_BY_LABEL: MANAGED_BY}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {
        CONFIG_KEY: json.dumps(config)}}  # fmt: skip


def current(kube: kb.KubeEmulator) -> dict[str, object]:
    return dict(status_of(kube, NAME).get("current") or {})


async def test_steady_steps_read_the_watches_and_see_changes_made_elsewhere(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    await kube.create(kb.CONFIGMAPS, runtime_configmap("full"))  # written by an earlier run
    spec = slo_spec(mode="Recommend")  # decides, never writes: only the reads are counted
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        await kb.wait_for(lambda: current(kube).get("variant") == "full", what="a first step")
        deployment_path = f"/deployments/{DEPLOYMENT}"
        configmap_path = f"/configmaps/{configmap_name(DEPLOYMENT)}"
        before = (operator_gets(kube, deployment_path), operator_gets(kube, configmap_path))
        made = steps_made()
        await kb.wait_for(lambda: steps_made() >= made + 5, within=15, what="5 steps")
        after = (operator_gets(kube, deployment_path), operator_gets(kube, configmap_path))
        assert after == before, f"GETs (Deployment, ConfigMap) {before} -> {after} in 5 steps"
        # the ConfigMaps are listed and watched with the operator's label selector only
        lists = [r for r in kube if r.method.value == "GET" and r.url.path.endswith("/configmaps")]
        assert lists
        assert {r.url.query.get("labelSelector") for r in lists} == {MANAGED_SELECTOR}

        # someone else edits the ConfigMap and scales the Deployment: seen through the watch
        await kube.patch_object(
            kb.CONFIGMAPS,
            NAMESPACE,
            configmap_name(DEPLOYMENT),
            {"data": runtime_configmap("quantized")["data"]},
        )
        await kube.patch_object(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT, {"spec": {"replicas": 3}})
        await kb.wait_for(
            lambda: (
                current(kube).get("variant") == "quantized" and current(kube).get("replicas") == 3
            ),
            within=15,
            what="the edited ConfigMap and the new replicas in status.current",
        )


async def test_without_the_operators_label_the_configmap_is_read_by_name(
    kube, prometheus_api, pods, profiles_file
):
    """A ConfigMap of the runtime name that is not labelled as the operator's is outside the
    watch: the steps read it by name (and refuse it, test_foreign_configmap.py)."""
    await seed_workload(kube, pods)
    await kube.create(kb.CONFIGMAPS, runtime_configmap("full", labelled=False))
    spec = slo_spec(mode="Recommend")
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        made = steps_made()
        await kb.wait_for(lambda: steps_made() >= made + 3, within=15, what="3 steps")
        assert operator_gets(kube, f"/configmaps/{configmap_name(DEPLOYMENT)}") >= 3


async def test_a_configmap_found_absent_is_not_asked_for_at_every_step(
    kube, prometheus_api, pods, profiles_file
):
    """A LatencySLO that never acts has no runtime ConfigMap: once a GET found none, the steps
    take the watch's word for it (the operator's own would show there at once) instead of
    asking the API server every interval."""
    await seed_workload(kube, pods)
    spec = slo_spec(mode="Recommend")
    async with running_operator(kube, operator_settings(prometheus_api.url, profiles_file)):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        made = steps_made()
        await kb.wait_for(lambda: steps_made() >= made + 5, within=15, what="5 steps")
        assert operator_gets(kube, f"/configmaps/{configmap_name(DEPLOYMENT)}") == 1
