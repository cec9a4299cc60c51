"""kubectl and in-cluster Prometheus helpers for the kind suite.

Everything goes through `kubectl` (what a user types); Prometheus is reached through the API
server's service proxy, so no port-forward is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
CLUSTER = os.environ.get("KIND_CLUSTER", "latencyslo-e2e")
NAMESPACE = os.environ.get("E2E_NAMESPACE", "latencyslo-e2e")
RELEASE = "latencyslo"
WORKER = f"{RELEASE}-demo-worker"
OPERATOR = f"{RELEASE}-operator"
PROMETHEUS_PROXY = "/api/v1/namespaces/monitoring/services/prometheus:web/proxy"

T = TypeVar("T")


def current_context() -> str:
    """E2E_CONTEXT, else the kubeconfig's current context (KUBECONFIG is honoured), else the
    kind cluster's."""
    if os.environ.get("E2E_CONTEXT"):
        return os.environ["E2E_CONTEXT"]
    if shutil.which("kubectl"):
        proc = subprocess.run(
            ["kubectl", "config", "current-context"], capture_output=True, text=True, check=False
        )
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip()
    return f"kind-{CLUSTER}"


def missing_prerequisite(context: str | None = None) -> str | None:
    """Why the suite cannot run, or None: it needs kubectl and a cluster that answers, with
    the chart installed in E2E_NAMESPACE (`make kind-up`, or hack/e2e-install.sh on any
    cluster). The suite never creates the cluster itself."""
    if shutil.which("kubectl") is None:
        return "'kubectl' is not on PATH"
    context = context or current_context()
    base = ["kubectl", "--context", context, "--request-timeout=20s"]
    try:
        ready = subprocess.run(
            [*base, "get", "--raw", "/readyz"], capture_output=True, text=True, timeout=30
        )
        if ready.returncode != 0:
            return (
                f"no cluster answers on context {context!r} (make kind-up, or make e2e "
                "KUBECONFIG=...)"
            )
        installed = subprocess.run(
            [*base, "-n", NAMESPACE, "get", "deployment", OPERATOR, WORKER],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        return f"the cluster on context {context!r} did not answer within 30 s"
    if installed.returncode != 0:
        return (
            f"the chart with the demo worker is not installed in namespace {NAMESPACE!r} "
            "(make kind-up, or hack/e2e-install.sh)"
        )
    return None


class KubectlError(RuntimeError):
    def __init__(self, args: Sequence[str], proc: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"kubectl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}"
        )
        self.proc = proc


@dataclass(frozen=True)
class Kube:
    context: str
    namespace: str = NAMESPACE

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        namespaced: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--context", self.context]
        if namespaced:
            cmd += ["--namespace", self.namespace]
        proc = subprocess.run(
            [*cmd, *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and proc.returncode != 0:
            raise KubectlError(args, proc)
        return proc

    def json(self, *args: str, namespaced: bool = True) -> Any:
        return json.loads(self.run(*args, "-o", "json", namespaced=namespaced).stdout)

    def apply(
        self, manifest: dict[str, Any] | str, *extra: str
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.run("apply", "-f", "-", *extra, input=text, check=False)

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.run("get", kind, name, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr or "not found" in proc.stderr:
                return None
            raise KubectlError(("get", kind, name), proc)
        return dict(json.loads(proc.stdout))

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.json(
            "get",
            "events",
            "--field-selector",
            f"involvedObject.kind=LatencySLO,involvedObject.name={name}",
        )["items"]
        return list(items)

    def _prom(self, endpoint: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        path = f"{PROMETHEUS_PROXY}/api/v1/{endpoint}?" + urllib.parse.urlencode(params)
        body = json.loads(self.run("get", "--raw", path, namespaced=False).stdout)
        if body.get("status") != "success":
            raise RuntimeError(f"{endpoint} {params} failed: {body}")
        return list(body["data"]["result"])

    def prom_query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query against the in-cluster Prometheus (via the API server proxy)."""
        return self._prom("query", {"query": expr})

    def prom_query_range(
        self, expr: str, *, minutes: float = 30, step_s: float = 15
    ) -> list[dict[str, Any]]:
        """A range query over the last `minutes`, as Grafana runs panels and annotations."""
        end = time.time()
        return self._prom(
            "query_range",
            {"query": expr, "start": end - minutes * 60, "end": end, "step": step_s},
        )

    def reset(self) -> None:
        """Remove what an earlier run of the suite left: LatencySLOs, the load Job, scale."""
        leftovers = self.json("get", "latencyslos")["items"]
        self.run("delete", "job", "e2e-load", "--ignore-not-found", "--wait=true")
        if not leftovers:
            return
        self.run("delete", "latencyslos", "--all", "--wait=true", timeout=180)
        self.run("scale", f"deployment/{WORKER}", "--replicas=1")
        # a pod keeps the last runtime config it read: start from fresh pods
        self.run("rollout", "restart", f"deployment/{WORKER}")
        self.run("rollout", "status", f"deployment/{WORKER}", "--timeout=600s", timeout=660)


def wait_until(
    probe: Callable[[], T | None], *, timeout: float, what: str, interval: float = 5.0
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def condition(obj: dict[str, Any] | None, ctype: str) -> dict[str, Any] | None:
    for cond in (obj or {}).get("status", {}).get("conditions", []):
        if cond.get("type") == ctype:
            return dict(cond)
    return None


def actions(obj: dict[str, Any] | None) -> list[str]:
    """Actions of the decision history, oldest first (status.history is newest first)."""
    status = (obj or {}).get("status", {})
    history = [d.get("action") for d in status.get("history", [])]
    return list(reversed(history))
