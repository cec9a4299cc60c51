"""A daemon's first write lands: kopf adds its finalizer to the LatencySLO after handing the
daemon the object, so the first compare-and-swap write is made over a version that is already
stale (409). Only metadata moved, the status and memory are those the daemon read: the store
adopts the version and writes, and the first step's status is there at once, not one interval
later (at 1,000 LatencySLOs every first write met this, and each waited an interval)."""

from __future__ import annotations

import pytest
from kubernetes.aio import client as k8s

from slo_operator.actuate.store import KubernetesStateStore, StoreConflict
from tests.integration.operator.conftest import (
    NAMESPACE,
    operator_settings,
    running_operator,
    seed_workload,
    slo_spec,
    status_of,
)
from tests.support import kube as kb

NAME = "sentiment"

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


async def test_the_first_step_is_saved_although_kopf_moved_the_version(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
    settings = operator_settings(prometheus_api.url, profiles_file)
    async with running_operator(kube, settings, interval_s=60.0):
        # one step only in this time: the next is an interval (60 s) away
        await kb.wait_for(lambda: status_of(kube).get("observed"), within=10, what="a status")
        saved = kube.get(kb.LATENCYSLOS, NAMESPACE, NAME)
    assert saved is not None
    assert "latencyslo.io/controller-state" in saved["metadata"]["annotations"]
    assert saved["metadata"].get("finalizers"), "kopf's finalizer was added first"
    assert status_of(kube)["observed"]["latencyMs"] == pytest.approx(60.0)


async def test_a_status_written_by_another_writer_is_still_refused(
    kube, prometheus_api, pods, profiles_file
):
    """The retry is only for a version that moved without the status or memory: a status
    another writer put there in the meantime is not overwritten by a stale step."""
    created = await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
    version = str(created["metadata"]["resourceVersion"])
    other = {"observed": {"latencyMs": 99.0}}
    await kube.patch_object(kb.LATENCYSLOS, NAMESPACE, NAME, {"status": other}, "status")
    api = k8s.ApiClient(k8s.Configuration(host=str(kube.url).rstrip("/")))
    try:
        store = KubernetesStateStore(api, namespace=NAMESPACE, name=NAME, resource_version=version)
        with pytest.raises(StoreConflict):
            await store.save({"observed": {"latencyMs": 1.0}}, None)
    finally:
        await api.close()
    assert status_of(kube) == other
