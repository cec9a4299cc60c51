"""Failure behaviour of the operator, with figures (run with `-s` to see them).

- Prometheus unreachable for a whole stabilization window: zero writes to the workload,
  `MetricsAvailable=False` within 2 steps, exactly one `MetricsUnavailable` Warning, recovery
  within 2 steps of Prometheus returning, and no scale-down before a new stabilization window
  of fresh data.
- The operator process SIGKILLed in the middle of a change (before and after the write lands)
  and started again: it finishes the recorded change and never acts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

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
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.filterwarnings("ignore:read_binary is deprecated:DeprecationWarning")


def figure(label: str, value: Any) -> None:
    print(f"FIGURE {label}: {value}")


@pytest.mark.slow
async def test_prometheus_unreachable_for_a_stabilization_window(
    kube, prometheus_api, pods, profiles_file
):
    interval = 0.3
    stabilization = 3
    outage = stabilization + 2 * interval
    await seed_workload(kube, pods)
    # 10 req/s at 50 ms: one replica would do, so a scale-down 2 -> 1 is due after one
    # stabilization window of fresh data. Acting on missing data would show up as writes.
    prometheus_api.set(p99_ms=50, rate=10)

    trace: list[tuple[float, str | None]] = []  # (time, MetricsAvailable) per status write
    scale_writes: list[float] = []

    async def record(request: Any) -> None:
        path = request.url.path
        if path.endswith(f"/latencyslos/{NAME}/status"):
            found = condition(status_of(kube), "MetricsAvailable")
            trace.append((time.monotonic(), found["status"] if found else None))
        if path.endswith("/scale") and request.method.value in ("PUT", "PATCH"):
            scale_writes.append(time.monotonic())

    kube.after_hooks.append(record)
    spec = slo_spec(scaleDownStabilizationSeconds=stabilization)
    settings = operator_settings(prometheus_api.url, profiles_file)
    async with running_operator(kube, settings, interval_s=interval):
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, spec))
        # the status is written when it changes: the first report says the data is fresh
        await kb.wait_for(lambda: len(trace) >= 1 and trace[-1][1] == "True", what="fresh data")

        # --- outage: the port is closed (connection refused) for a whole window
        writes_before = actuation_writes(kube)
        assert writes_before == []  # the stabilization window had not passed yet
        down_at = time.monotonic()
        seen = len(trace)
        await prometheus_api.stop()
        await kb.wait_for(
            lambda: any(v == "False" for _, v in trace[seen:]), what="MetricsAvailable=False"
        )
        first_false = next(i for i, (_, v) in enumerate(trace[seen:]) if v == "False")
        steps_at_false = steps_made()
        steps_to_false = first_false + 1
        time_to_false = trace[seen + first_false][0] - down_at
        await asyncio.sleep(max(0.0, down_at + outage - time.monotonic()))
        during = trace[seen + first_false :]
        steps_during = steps_made() - steps_at_false
        writes_during = actuation_writes(kube)
        unavailable = [
            e for e in kb.events_for(kube, NAMESPACE, NAME) if e["reason"] == "MetricsUnavailable"
        ]
        status = status_of(kube)

        # --- Prometheus comes back on the same port
        up_at = time.monotonic()
        seen = len(trace)
        await prometheus_api.start()
        await kb.wait_for(lambda: any(v == "True" for _, v in trace[seen:]), what="recovery")
        first_true = next(i for i, (_, v) in enumerate(trace[seen:]) if v == "True")
        steps_to_recover = first_true + 1
        time_to_recover = trace[seen + first_true][0] - up_at

        # --- the due scale-down waits for a new stabilization window of fresh data
        await kb.wait_for(lambda: scale_writes, within=stabilization + 10, what="a scale-down")
        scale_down_after = scale_writes[0] - up_at

    figure("interval_s", interval)
    figure("stabilization_window_s", stabilization)
    figure("outage_s", round(outage, 2))
    figure("steps_to_MetricsAvailable_False", steps_to_false)
    figure("seconds_to_MetricsAvailable_False", round(time_to_false, 3))
    figure("workload_writes_during_outage", len(writes_during) - len(writes_before))
    figure("MetricsUnavailable_warnings", len(unavailable))
    figure("steps_to_recovery", steps_to_recover)
    figure("seconds_to_recovery", round(time_to_recover, 3))
    figure("first_scale_down_after_recovery_s", round(scale_down_after, 3))

    assert steps_to_false <= 2
    assert all(v == "False" for _, v in during), during
    assert steps_during >= stabilization / interval / 2  # the loop kept running
    assert writes_during == writes_before == []
    assert len(unavailable) == 1
    assert unavailable[0]["type"] == "Warning"
    assert "cannot connect" in unavailable[0]["message"]
    assert status["lastDecision"]["action"] == "Hold"
    assert "metrics unavailable" in status["lastDecision"]["reason"]
    assert condition(status, "MetricsAvailable")["reason"] == "QueryFailed"
    assert condition(status, "SLOMet")["status"] == "Unknown"
    assert steps_to_recover <= 2
    assert scale_down_after >= stabilization - interval
    assert kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 1


# ------------------------------------------------------------------ kill -9 and restart


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "kmock", "cluster": {"server": server}}],
                "users": [{"name": "test", "user": {"token": "test"}}],
                "contexts": [
                    {
                        "name": "kmock",
                        "context": {"cluster": "kmock", "user": "test", "namespace": NAMESPACE},
                    }
                ],
                "current-context": "kmock",
            }
        )
    )
    return path


@contextlib.asynccontextmanager
async def operator_process(
    kube: kb.KubeEmulator, prometheus_url: str, profiles: Path, workdir: Path, tag: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`latencyslo operator` as its own process (the real command), killed on exit."""
    config = kubeconfig(workdir / "kubeconfig", str(kube.url).rstrip("/"))
    log = (workdir / f"operator-{tag}.log").open("wb")
    env = {
        **os.environ,
        "KUBECONFIG": str(config),
        "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "slo_operator.cli",
        "operator",
        "--standalone",
        "--namespace",
        NAMESPACE,
        "--prometheus-url",
        prometheus_url,
        "--profiles",
        str(profiles),
        "--metrics-port",
        "0",
        "--liveness",
        "",
        "--query-timeout",
        "1",
        "--push-timeout",
        "1",
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        log.close()


@pytest.mark.slow
@pytest.mark.parametrize("landed", [False, True], ids=["before-write", "after-write"])
async def test_operator_killed_mid_change_converges_without_acting_twice(
    kube, prometheus_api, pods, profiles_file, tmp_path, landed
):
    await seed_workload(kube, pods)
    prometheus_api.set(p99_ms=400, rate=300)  # the policy scales 2 -> 5
    reached = asyncio.Event()
    release = asyncio.Event()

    async def hold_scale(request: Any) -> None:
        is_scale = request.url.path.endswith("/scale") and request.method.value == "PUT"
        if is_scale and not reached.is_set():
            reached.set()
            await release.wait()  # the operator is killed while waiting here

    # before-write: held before the emulator applies it (the request dies with the process);
    # after-write: applied, but the answer never reaches the operator.
    (kube.after_hooks if landed else kube.hooks).append(hold_scale)
    await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))

    started = time.monotonic()
    async with operator_process(kube, prometheus_api.url, profiles_file, tmp_path, "1") as proc:
        await kb.wait_for(lambda: reached.is_set(), within=60, what="the scale write")
        intent = status_of(kube).get("pending")
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    killed_at = time.monotonic()
    release.set()
    await asyncio.sleep(0.2)
    assert intent is not None, "the change must be recorded before it is made"
    assert intent["to"]["replicas"] == 5
    replicas_at_kill = kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"]
    assert replicas_at_kill == (5 if landed else 2)

    async with operator_process(kube, prometheus_api.url, profiles_file, tmp_path, "2"):
        await kb.wait_for(
            lambda: (
                status_of(kube).get("pending") is None
                and kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)["spec"]["replicas"] == 5
            ),
            within=60,
            what="the restarted operator to finish the change",
        )
        converged_at = time.monotonic()
        # One more full interval (5 s, the API's minimum) of the restarted operator.
        writes = status_of(kube)
        await kb.wait_for(
            lambda: status_of(kube)["lastDecision"]["time"] != writes["lastDecision"]["time"],
            within=30,
            what="the next step",
        )
        await kb.wait_for(
            lambda: "ScaledUp" in [e["reason"] for e in kb.events_for(kube, NAMESPACE, NAME)],
            what="the ScaledUp Event",
        )
    status = status_of(kube)

    applied_scale_writes = [
        v["spec"]["replicas"] for v in kube.versions(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT)
    ]
    scale_requests = [
        r for r in kube.writes("/scale") if not r.headers.get("User-Agent", "").startswith("kmock/")
    ]
    configmap_writes = [
        r for r in kube.writes("/configmaps") if "kmock/" not in r.headers.get("User-Agent", "")
    ]
    finished = next(h for h in status["history"] if h["action"] == "ScaleUp")
    scaled_up = [e for e in kb.events_for(kube, NAMESPACE, NAME) if e["reason"] == "ScaledUp"]

    case = "after-write" if landed else "before-write"
    figure(f"[{case}] kill_to_converged_s", round(converged_at - killed_at, 2))
    figure(f"[{case}] start_to_converged_s", round(converged_at - started, 2))
    figure(f"[{case}] replicas_history", applied_scale_writes)
    figure(f"[{case}] scale_requests", len(scale_requests))

    assert applied_scale_writes == [2, 5]  # one move 2 -> 5, never 5 -> 8
    # before-write: the killed request never landed, the restarted operator made it (2 PUTs);
    # after-write: it landed, the restarted operator saw 5 and wrote nothing (1 PUT).
    assert len(scale_requests) == (1 if landed else 2)
    # The ConfigMap was created once, before the kill; the restarted operator found it
    # holding the target and did not write it again for that change (a later decision,
    # such as a wider window, may of course write it).
    assert [r.method.value for r in configmap_writes][:1] == ["POST"]
    assert [r.method.value for r in configmap_writes].count("POST") == 1
    assert status["current"]["replicas"] == 5
    assert status.get("pending") is None
    assert finished["applied"] is True
    assert "finished after an interruption" in finished["reason"]
    assert [h["action"] for h in status["history"]].count("ScaleUp") == 1
    assert len(scaled_up) == 1
