"""While a target has no runtime ConfigMap, `KubernetesActuator.read()` asks a pod what it
runs. The answer is reused while the Deployment is unchanged (its resourceVersion), so a
LatencySLO that never acts does not call its pods every interval; any change of the
Deployment (a rollout, a pod's readiness, a scale) or a failed answer asks again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from kubernetes.aio import client as k8s

from slo_local.promserver import free_port
from slo_operator.actuate import kubernetes as actuate_k8s
from slo_operator.actuate.kubernetes import KubernetesActuator
from slo_operator.types import RuntimeConfig
from tests.support import kube as kb

NAMESPACE, DEPLOYMENT, TOKEN = "ml", "sentiment-worker", "t"
FALLBACK = RuntimeConfig(1, 0, 32, "full")
OWNER = {"apiVersion": "latencyslo.io/v1alpha1", "kind": "LatencySLO", "name": "s", "uid": "u-1"}

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


class Pod:
    """One pod's admin API: counts the GETs, answers with `config` (or `status`)."""

    def __init__(self) -> None:
        self.gets = 0
        self.status = 200
        self.config = {"variant": "quantized", "batchWindowMs": 7, "maxBatchSize": 16}
        self.port = free_port()

    async def handle(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
        self.gets += 1
        return web.json_response(self.config, status=self.status)


@pytest.fixture
async def pod() -> AsyncIterator[Pod]:
    stand_in = Pod()
    app = web.Application()
    app.router.add_get("/admin/config", stand_in.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", stand_in.port).start()
    try:
        yield stand_in
    finally:
        await runner.cleanup()


@pytest.fixture
async def actuator(kube: kb.KubeEmulator, pod: Pod) -> AsyncIterator[KubernetesActuator]:
    await kube.create(kb.DEPLOYMENTS, kb.deployment(NAMESPACE, DEPLOYMENT, replicas=1))
    await kube.create(
        kb.PODS,
        kb.pod(NAMESPACE, f"{DEPLOYMENT}-0", labels={"app": DEPLOYMENT}, admin_port=pod.port),
    )
    await kube.create(kb.SECRETS, kb.secret(NAMESPACE, "latencyslo-admin-token", TOKEN))
    async with k8s.ApiClient(k8s.Configuration(host=str(kube.url).rstrip("/"))) as api:
        one = KubernetesActuator(
            api, namespace=NAMESPACE, deployment=DEPLOYMENT, owner=OWNER, fallback=FALLBACK
        )
        try:
            yield one
        finally:
            await one.aclose()


async def test_the_pods_answer_is_reused_while_the_deployment_is_unchanged(
    kube: kb.KubeEmulator, pod: Pod, actuator: KubernetesActuator
) -> None:
    said = RuntimeConfig(1, 7, 16, "quantized")
    for _ in range(5):
        assert (await actuator.read())[0] == said
    assert pod.gets == 1

    # the Deployment changes (here its status, as when a pod's readiness moves): ask again
    pod.config = {"variant": "distilled", "batchWindowMs": 3, "maxBatchSize": 8}
    await kube.patch_object(
        kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT, {"status": {"readyReplicas": 1}}, "status"
    )
    assert (await actuator.read())[0] == RuntimeConfig(1, 3, 8, "distilled")
    assert (await actuator.read())[0] == RuntimeConfig(1, 3, 8, "distilled")
    assert pod.gets == 2


async def test_a_failed_answer_is_not_reused(pod: Pod, actuator: KubernetesActuator) -> None:
    pod.status = 503
    assert (await actuator.read())[0] == FALLBACK
    pod.status = 200
    assert (await actuator.read())[0] == RuntimeConfig(1, 7, 16, "quantized")
    assert pod.gets == 2


async def test_the_answer_expires(
    pod: Pod, actuator: KubernetesActuator, monkeypatch: pytest.MonkeyPatch
) -> None:
    await actuator.read()
    monkeypatch.setattr(actuate_k8s, "POD_CONFIG_TTL_S", 0.0)
    await actuator.read()
    assert pod.gets == 2
