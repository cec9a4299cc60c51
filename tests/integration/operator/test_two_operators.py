"""Two operators on one LatencySLO at once (a misconfigured shard, a rolling update that
overlaps): every write of the status and the memory is a compare-and-swap on the object's
resourceVersion, so neither overwrites what the other wrote, and a change is made once.

Both operators run the real reactor (kopf, handlers, control loop, KubernetesActuator)
against the emulated API server, which refuses a write over a stale resourceVersion with 409
as the API server does. The second runs in its own thread and event loop (as a second process
would: kopf owns the tasks of the loop it runs in).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest
from kubernetes.aio import client as k8s

from slo_operator.run import run_operator
from slo_operator.settings import OperatorSettings
from tests.integration.operator.conftest import (
    DEPLOYMENT,
    NAMESPACE,
    actuation_writes,
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


@contextlib.asynccontextmanager
async def operator_in_a_thread(
    kube: kb.KubeEmulator, settings: OperatorSettings, interval_s: float = 0.3
) -> AsyncIterator[None]:
    url = str(kube.url).rstrip("/")
    stop, ready = threading.Event(), threading.Event()
    failed: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(
                run_operator(
                    settings,
                    api_configuration=k8s.Configuration(host=url),
                    connection=kopf.ConnectionInfo(server=url, insecure=True),
                    stop_flag=stop,  # type: ignore[arg-type]  # kopf takes threading flags
                    ready_flag=ready,  # type: ignore[arg-type]
                    runtime_options={
                        "interval": lambda _spec: interval_s,
                        "invalid_spec_retry_s": interval_s,
                    },
                )
            )
        except BaseException as exc:  # reported by the test
            failed.append(exc)

    thread = threading.Thread(target=main, name="second-operator", daemon=True)
    thread.start()
    try:
        assert await asyncio.to_thread(ready.wait, 20), failed
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)
    assert not thread.is_alive()
    assert not failed, failed


def memory_of(version: dict[str, Any]) -> dict[str, Any]:
    raw = (version.get("metadata", {}).get("annotations") or {}).get(
        "latencyslo.io/controller-state"
    )
    return json.loads(raw) if raw else {}


def scale_ups(version: dict[str, Any]) -> list[dict[str, Any]]:
    history = (version.get("status") or {}).get("history") or []
    return [h for h in history if h.get("action") == "ScaleUp"]


async def test_two_operators_on_one_object_act_once_and_lose_nothing(
    kube, prometheus_api, pods, profiles_file
):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)  # the policy scales 2 -> 5
    settings = operator_settings(prometheus_api.url, profiles_file)
    async with running_operator(kube, settings), operator_in_a_thread(kube, settings):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        await kb.wait_for(lambda: scale_ups({"status": status_of(kube)}), what="a scale-up")
        # both loops keep stepping for a while on the scaled Deployment
        reads = steps_made()
        await kb.wait_for(lambda: steps_made() >= reads + 20, within=30, what="steps")

    # Both wrote against the same object: the stale writer was refused at least once.
    assert [c for c in kube.conflicts if f"/latencyslos/{NAME}" in c], "no write was contended"

    # The change was made once: one scale write, one history entry. Its ScaledUp Event is
    # posted at least once and at most once per operator: when the acting operator's last
    # status write is refused (the other wrote meanwhile), the other finds the change still
    # pending, finishes it (nothing left to write) and reports it again (docs/operator.md).
    scale_writes = [w for w in actuation_writes(kube) if w.endswith("/scale")]
    assert scale_writes == [
        f"PUT /apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}/scale"
    ]
    scaled = [d["spec"]["replicas"] for d in kube.versions(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)]
    assert scaled == [2, 5]
    events = [e["reason"] for e in kb.events_for(kube, NAMESPACE, NAME)]
    assert 1 <= events.count("ScaledUp") <= 2, events
    assert len(scale_ups({"status": status_of(kube)})) == 1

    # No lost update: once the scale-up is in the status history and its cooldown in the
    # memory, no later version of the object is without them (a stale writer would have put
    # back its own older status and memory).
    versions = kube.versions(kb.LATENCYSLOS, NAMESPACE, NAME)
    first = next(i for i, v in enumerate(versions) if scale_ups(v))
    entry = scale_ups(versions[first])[0]
    for later in versions[first:]:
        assert scale_ups(later) == [entry], later.get("status", {}).get("history")
    remembered = next(
        i for i, v in enumerate(versions) if memory_of(v).get("policy", {}).get("lastScaleUpAt")
    )
    for later in versions[remembered:]:
        assert memory_of(later)["policy"]["lastScaleUpAt"] is not None
