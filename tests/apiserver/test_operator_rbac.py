"""The operator, run through its CLI under the chart's own ServiceAccount and RBAC (and the
chart's ValidatingAdmissionPolicy), against a real API server with an audit log, through a
scripted scenario that reaches every write path: status, annotations (kopf state, controller
memory), Events, the owned runtime ConfigMap (create, then replace), scale. Asserts: no
request refused (no 403, no admission denial), and every granted verb used.

Workers are real processes on loopback (tiny fixture model made slow, so a tight target is
breached), scraped by a real Prometheus; `PodHarness` plays the ReplicaSet controller and the
kubelet (Pod objects with the workers' real addresses, ports and readiness).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from slo_local.promserver import PrometheusServer
from tests.apiserver.conftest import OPERATOR_USER, namespace
from tests.apiserver.envtest import ControlPlane
from tests.apiserver.harness import PodHarness, Worker
from tests.support.worker import FIXTURE_TOKEN, build_fixture_family, start_worker
from tests.unit.helm.render import NAMESPACE, render_value_set

pytestmark = [pytest.mark.apiserver, pytest.mark.prometheus, pytest.mark.slow]

NS = "ml"
TARGET = "sentiment-worker"
LABELS = {"app.kubernetes.io/name": "sentiment", "latencyslo.io/worker": "true"}
# used through an admission check, not a request: blockOwnerDeletion on the owned ConfigMap
NOT_A_REQUEST = {("latencyslo.io", "latencyslos/finalizers", "update")}


def granted(plane_objects: Any) -> set[tuple[str, str, str]]:
    (role,) = [o for o in plane_objects if o["kind"] == "ClusterRole"]
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


FIRST_WINDOW_MS, SECOND_WINDOW_MS = 7, 11
"""Batch-window bounds pinned to one value that the workers do not run (they start at 0): the
operator must write the runtime ConfigMap (create), and after the change of bounds write it
again (replace)."""


def latencyslo(latency_ms: float) -> dict[str, Any]:
    return {
        "apiVersion": "latencyslo.io/v1alpha1",
        "kind": "LatencySLO",
        "metadata": {"name": TARGET, "namespace": NS},
        "spec": {
            "targetRef": {"name": TARGET},
            "objective": {"latencyMs": latency_ms, "windowSeconds": 15, "minRequestRate": 1},
            "replicas": {"min": 1, "max": 3},
            "batching": {"minWindowMs": FIRST_WINDOW_MS, "maxWindowMs": FIRST_WINDOW_MS},
            "policy": {
                "intervalSeconds": 5,
                "scaleUpCooldownSeconds": 0,
                "scaleDownStabilizationSeconds": 0,
                "variantMinDwellSeconds": 0,
            },
        },
    }


class Load:
    """Steady requests to every running worker, round robin, until stopped."""

    def __init__(self, harness: PodHarness, rate: float = 20.0) -> None:
        self.harness, self.period = harness, 1.0 / rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10.0) as client:
            while not self._stop.wait(self.period):
                workers = list(self.harness.workers)
                if not workers:
                    continue
                worker = workers[self.sent % len(workers)]
                with contextlib.suppress(httpx.HTTPError):
                    client.post(
                        f"http://127.0.0.1:{worker.port}/v1/predict",
                        json={"inputs": ["a fine day"]},
                    )
                self.sent += 1

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


@contextlib.contextmanager
def operator(
    plane: ControlPlane, prometheus_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}
    env["KUBECONFIG"] = str(plane.kubeconfig(OPERATOR_USER))
    cli = Path(sys.executable).with_name("latencyslo")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(cli), "operator", "--prometheus-url", prometheus_url, "--standalone",
                "--metrics-port", "0", "--max-replicas", "32", "--push-timeout", "2",
            ],
            env=env, stdout=out, stderr=subprocess.STDOUT, process_group=0,
        )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def wait_until(check: Any, timeout_s: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(1.0)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    pytest.fail(f"{what}: not within {timeout_s:.0f}s; operator log:\n{tail}")


def get(plane: ControlPlane, *args: str) -> dict[str, Any] | None:
    proc = plane.kubectl("get", *args, "-o", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def test_operator_under_the_charts_rbac(
    crd: ControlPlane, prometheus: PrometheusServer, tmp_path: Path
) -> None:
    plane = crd
    namespace(plane, NAMESPACE)
    namespace(plane, NS)
    chart = [
        o
        for o in render_value_set("defaults")
        if o["kind"] not in ("Deployment", "Service")  # the operator runs here, not in a pod
    ]
    proc = plane.apply(chart)
    assert proc.returncode == 0, proc.stderr
    token = base64.b64encode(FIXTURE_TOKEN.encode()).decode()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "latencyslo-admin-token", "namespace": NS},
        "data": {"token": token},
    }
    assert plane.apply([secret]).returncode == 0

    model = build_fixture_family(tmp_path / "model", delay_ms=40.0)

    def start(name: str) -> Worker:
        (tmp_path / name).mkdir(exist_ok=True)
        process = start_worker(model, workdir=tmp_path / name)
        process.wait_ready(60.0)
        return Worker(name, process.port, process.admin_port, process.terminate)

    harness = PodHarness(plane, NS, TARGET, LABELS, start).start()

    def targets() -> None:
        prometheus.set_targets(
            [
                (
                    [f"127.0.0.1:{w.port}"],
                    {"namespace": NS, "pod": w.name, "deployment": TARGET, "container": "worker"},
                )
                for w in harness.workers
            ]
        )

    log = tmp_path / "operator.log"
    try:
        targets()
        with Load(harness), operator(plane, prometheus.url, log):
            assert plane.apply([latencyslo(5.0)]).returncode == 0

            # breach: a decision in status, a scale-up, the runtime ConfigMap created
            def decision() -> Any:
                slo = get(plane, "latencyslo", TARGET, "-n", NS) or {}
                return (slo.get("status") or {}).get("lastDecision")

            wait_until(decision, 180, "a decision in status", log)
            wait_until(
                lambda: (targets(), max(harness.replicas_seen) > 1)[1], 180, "a scale-up", log
            )
            created = wait_until(
                lambda: get(plane, "configmap", f"{TARGET}-latencyslo", "-n", NS),
                180, "the runtime ConfigMap", log,
            )  # fmt: skip
            # relax the target and move the window bounds: replicas come down, the runtime
            # ConfigMap is replaced with the new window
            window = {"minWindowMs": SECOND_WINDOW_MS, "maxWindowMs": SECOND_WINDOW_MS}
            patch = json.dumps({"spec": {"objective": {"latencyMs": 60000}, "batching": window}})
            assert (
                plane.kubectl(
                    "patch", "latencyslo", TARGET, "-n", NS, "--type=merge", "-p", patch
                ).returncode
                == 0
            )
            rv = created["metadata"]["resourceVersion"]
            wait_until(
                lambda: (get(plane, "configmap", f"{TARGET}-latencyslo", "-n", NS) or {})
                .get("metadata", {}).get("resourceVersion") not in (None, rv),
                240, "the runtime ConfigMap replaced", log,
            )  # fmt: skip
            rules = granted(chart)

            def used() -> set[tuple[str, str, str]]:
                return {
                    (e.api_group, e.resource, e.verb) for e in plane.audit_events(OPERATOR_USER)
                }

            wait_until(lambda: rules - NOT_A_REQUEST <= used(), 120, "every granted verb used", log)
            events = get(
                plane, "events", "-n", NS, "--field-selector", f"involvedObject.name={TARGET}"
            )
            assert events is not None
            assert events["items"], "no Event on the LatencySLO"

            # the loop closes the other way too: with the target relaxed, back to one replica
            # (checked after the RBAC verdict below, which must not wait on it)
            # and the preferred variant back in the runtime ConfigMap
            def variant() -> str | None:
                cm = get(plane, "configmap", f"{TARGET}-latencyslo", "-n", NS) or {}
                raw = (cm.get("data") or {}).get("config.json")
                return json.loads(raw).get("variant") if raw else None

            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                targets()
                final_variant = variant()
                if harness.replicas_seen[-1] == 1 and final_variant == "full":
                    break
                time.sleep(2.0)
            released = harness.replicas_seen[-1] == 1
    finally:
        harness.close()
    audit = plane.audit_events(OPERATOR_USER)
    refused = [e for e in audit if e.code in (401, 403)]
    assert refused == [], refused
    # nor did the chart's ValidatingAdmissionPolicy deny any of the operator's writes
    denied = [e for e in audit if "ValidatingAdmissionPolicy" in e.message]
    assert denied == [], denied
    assert harness.errors == []
    unused = granted(chart) - NOT_A_REQUEST - {(e.api_group, e.resource, e.verb) for e in audit}
    assert unused == set()
    # nothing the rules do not grant was even tried (a 403 would show it; this names it)
    beyond = {(e.api_group, e.resource, e.verb) for e in audit} - granted(chart)
    assert beyond == set(), beyond
    assert released, f"replicas over time {harness.replicas_seen}: not back to 1"
    assert final_variant == "full", f"runtime ConfigMap variant {final_variant!r} at the end"
    assert harness.replicas_seen[0] == 1
    assert max(harness.replicas_seen) > 1
