"""The operator's calls to pod admin ports are bounded: an overall deadline (not per read), a
size cap, and a concurrency limit shared by every LatencySLO of the operator.

Each test puts the real `KubernetesActuator` (against the emulated API server) in front of a
misbehaving pod on loopback (`tests/support/badpeer.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from kubernetes.aio import client as k8s

from slo_operator.actuate.kubernetes import KubernetesActuator
from slo_operator.errors import ActuationError
from slo_operator.types import RuntimeConfig
from tests.support import kube as kb
from tests.support.badpeer import BadPeer

NAMESPACE = "ml"
DEPLOYMENT = "sentiment-worker"
CONFIG = RuntimeConfig(2, 5, 32, "full")
OWNER = {"apiVersion": "latencyslo.io/v1alpha1", "kind": "LatencySLO", "name": "s", "uid": "u-1"}

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


async def seed(kube: kb.KubeEmulator, port: int, pods: int = 1, namespace: str = NAMESPACE) -> None:
    labels = {"app": DEPLOYMENT}
    await kube.create(kb.DEPLOYMENTS, kb.deployment(namespace, DEPLOYMENT, replicas=pods))
    for i in range(pods):
        await kube.create(
            kb.PODS, kb.pod(namespace, f"{DEPLOYMENT}-{i}", labels=labels, admin_port=port)
        )
    await kube.create(kb.SECRETS, kb.secret(namespace, "latencyslo-admin-token", "t"))


@contextlib.asynccontextmanager
async def actuators(
    kube: kb.KubeEmulator, *namespaces: str, push_timeout_s: float = 1.0
) -> AsyncIterator[list[KubernetesActuator]]:
    url = str(kube.url).rstrip("/")
    async with (
        k8s.ApiClient(k8s.Configuration(host=url)) as api,
        httpx.AsyncClient(timeout=httpx.Timeout(push_timeout_s)) as http,  # shared, as run.py
    ):
        yield [
            KubernetesActuator(
                api,
                namespace=ns,
                deployment=DEPLOYMENT,
                owner=OWNER,
                fallback=CONFIG,
                push_timeout_s=push_timeout_s,
                http=http,
            )
            for ns in namespaces or (NAMESPACE,)
        ]


async def test_a_pod_dripping_one_byte_every_half_second_is_cut_at_the_deadline(kube) -> None:
    async with BadPeer("drip", drip_s=0.5) as peer:
        await seed(kube, peer.port)
        async with actuators(kube) as (actuator,):
            started = time.monotonic()
            total, acked, errors = await asyncio.wait_for(actuator.push(CONFIG), 15)
            took = time.monotonic() - started
    assert (total, acked) == (1, 0)
    assert "within 1s" in errors[0]
    assert took < 3.0, f"a 1 s push took {took:.1f}s"
    assert peer.sent <= 4


@pytest.mark.parametrize("mode", ["huge", "declared"])
async def test_a_huge_answer_is_abandoned_at_the_size_cap(kube, mode: str) -> None:
    async with BadPeer(mode, huge_bytes=300 * 1024 * 1024) as peer:
        await seed(kube, peer.port)
        async with actuators(kube, push_timeout_s=5.0) as (actuator,):
            total, acked, errors = await asyncio.wait_for(actuator.push(CONFIG), 15)
    assert (total, acked) == (1, 0)
    assert "size cap" in errors[0]
    assert peer.sent < 32 * 1024 * 1024  # read stopped at the cap, not after 300 MiB


async def test_pushes_share_a_bounded_number_of_slots(kube) -> None:
    """40 pods that never answer, in two namespaces: at most 16 calls are open at once, and
    a push returns within its fan-out bound with every pod accounted for."""
    async with BadPeer("silent") as peer:
        await seed(kube, peer.port, pods=20, namespace="a")
        await seed(kube, peer.port, pods=20, namespace="b")
        async with actuators(kube, "a", "b", push_timeout_s=0.5) as (one, two):
            started = time.monotonic()
            results = await asyncio.wait_for(asyncio.gather(one.push(CONFIG), two.push(CONFIG)), 15)
            took = time.monotonic() - started
    assert [r[:2] for r in results] == [(20, 0), (20, 0)]
    assert all(len(r[2]) == 20 for r in results)
    assert peer.most_open <= 16
    assert took < 3.0


async def test_a_good_pod_is_still_acknowledged(kube) -> None:
    async with BadPeer("ok") as peer:
        await seed(kube, peer.port, pods=2)
        async with actuators(kube) as (actuator,):
            assert await actuator.push(CONFIG) == (2, 2, [])
            # no ConfigMap: the bootstrap read asks a pod, through the same bounded call
            config, _ = await actuator.read()
    assert config == RuntimeConfig(2, 5, 32, "full")


@pytest.mark.parametrize("mode", ["drip", "huge"])
async def test_an_api_server_answer_is_bounded_in_time_and_size(mode: str) -> None:
    """The operator's reads from the API server: an overall deadline and a size cap too."""
    async with BadPeer(mode, drip_s=0.3, huge_bytes=300 * 1024 * 1024) as peer:
        configuration = k8s.Configuration(host=f"http://127.0.0.1:{peer.port}")
        async with k8s.ApiClient(configuration) as api:
            actuator = KubernetesActuator(
                api,
                namespace=NAMESPACE,
                deployment=DEPLOYMENT,
                owner=OWNER,
                fallback=CONFIG,
                request_timeout_s=1.0,
                max_response_bytes=4 * 1024 * 1024,
            )
            started = time.monotonic()
            with pytest.raises(ActuationError) as caught:
                await asyncio.wait_for(actuator.read(), 15)
            took = time.monotonic() - started
            await actuator.aclose()
    assert took < 3.0
    assert peer.sent < 64 * 1024 * 1024  # not read to the end of 300 MiB
    if mode == "huge":
        assert "size cap" in str(caught.value)
