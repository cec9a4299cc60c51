"""Fixtures for the operator's integration tests: the Kubernetes emulator, a scriptable
Prometheus HTTP API, stand-ins for the pods' admin endpoints, and the operator itself.

The operator runs for real: kopf's reactor (`kopf.operator`), the handlers, the control loop,
`KubernetesActuator` (kubernetes.aio over HTTP), `PrometheusSource` (prometheus-api-client over
HTTP) and httpx pushes, all against loopback servers on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import kopf
import pytest
from aiohttp import web
from kubernetes.aio import client as k8s

from slo_local.promserver import free_port
from slo_operator.run import run_operator
from slo_operator.settings import OperatorSettings
from slo_operator.types import ProfileSet, VariantProfile
from tests.support import kube as kb

NAMESPACE = "ml"
DEPLOYMENT = "sentiment-worker"
TOKEN = "test-admin-token"

# A model that needs one replica per ~100 req/s with the preferred variant: 300 req/s at a
# p99 of 400 ms makes the policy scale 2 -> 5; 100 req/s at 60 ms holds.
PROFILES = ProfileSet(
    variants={
        "full": VariantProfile(alpha_ms=10.0, beta_ms=8.0, accuracy=0.90),
        "quantized": VariantProfile(alpha_ms=5.0, beta_ms=4.0, accuracy=0.88),
        "distilled": VariantProfile(alpha_ms=2.0, beta_ms=2.0, accuracy=0.85),
    },
    source="operator integration tests",
)


def slo_spec(**policy: Any) -> dict[str, Any]:
    return {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT},
        "objective": {"percentile": 99, "latencyMs": 150, "windowSeconds": 15},
        "replicas": {"min": 1, "max": 8},
        "batching": {"minWindowMs": 0, "maxWindowMs": 50, "maxBatchSize": 32},
        "policy": {
            "mode": "Enforce",
            "intervalSeconds": 5,
            "scaleUpCooldownSeconds": 0,
            **policy,
        },
    }


# ------------------------------------------------------------------------ fake Prometheus


@dataclass
class FakePrometheus:
    """The Prometheus HTTP API (`/api/v1/query`) answering from settable values.

    Which value a query gets is read from its shape (the queries `PrometheusSource` builds);
    every query is recorded. `stop()` closes the port (connection refused), `start()` opens
    it again on the same port.
    """

    p99_seconds: float | None = 0.060
    rate: float | None = 100.0
    samples: float | None = 1500.0
    age_seconds: float = 1.0
    port: int = field(default_factory=free_port)
    queries: list[str] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, *, p99_ms: float | None, rate: float | None) -> None:
        self.p99_seconds = None if p99_ms is None else p99_ms / 1000.0
        self.rate = rate
        self.samples = None if rate is None else rate * 15

    def _value(self, expr: str) -> float | None:
        expr = re.sub(r" by \([^)]*\) ", "", expr)  # a batched query's shape: as one object's
        if expr.startswith("histogram_quantile("):
            return self.p99_seconds
        if expr.startswith("sum(rate(") and "_count{" in expr:
            return self.rate
        if expr.startswith("sum(increase("):
            return self.samples
        if expr.startswith("time() - max(timestamp("):
            return self.age_seconds if self.rate is not None else None
        return None  # batch-time queries: no series

    async def _query(self, request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update(await request.post())
        expr = str(params.get("query", ""))
        self.queries.append(expr)
        value = self._value(expr)
        result = []
        if value is not None:
            text = "NaN" if math.isnan(value) else repr(float(value))
            result = [
                {"metric": labels, "value": [time.time(), text]} for labels in _series_of(expr)
            ]
        return web.json_response(
            {"status": "success", "data": {"resultType": "vector", "result": result}}
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v1/query", self._query)  # GET, or POST when long
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


def _series_of(expr: str) -> list[dict[str, str]]:
    """The label sets a batched query's answer holds: one per namespace and Deployment its
    regex matchers name (one unlabelled series for a single object's query)."""
    found = {
        name: [v.replace("\\\\", "") for v in values.split("|")]
        for name, values in re.findall(r'(namespace|deployment)=~?"([^"]*)"', expr)
    }
    if not re.search(r" by \([^)]*namespace", expr):
        return [{}]
    return [
        {"namespace": ns, **({"deployment": dep} if dep is not None else {})}
        for ns in found.get("namespace", [""])
        for dep in found.get("deployment", [None])
    ]


# ------------------------------------------------------------------ pods' admin endpoints


@dataclass
class AdminPod:
    """One pod's admin API (`GET/PUT /admin/config`, bearer token), recording the PUTs."""

    name: str
    token: str = TOKEN
    config: dict[str, Any] = field(
        default_factory=lambda: {"variant": "full", "batchWindowMs": 0, "maxBatchSize": 32}
    )
    puts: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.method == "PUT":
            body = await request.json()
            self.puts.append(body)
            self.config.update(body)
        return web.json_response(self.config)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/admin/config", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture
async def kube() -> AsyncIterator[kb.KubeEmulator]:
    async with kb.KubeEmulator() as emulator, kmock.Server(emulator):
        yield emulator


@pytest.fixture
async def prometheus_api() -> AsyncIterator[FakePrometheus]:
    fake = FakePrometheus()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def pods() -> AsyncIterator[list[AdminPod]]:
    started = [AdminPod(f"{DEPLOYMENT}-{i}") for i in range(2)]
    for pod in started:
        await pod.start()
    try:
        yield started
    finally:
        for pod in started:
            await pod.stop()


@pytest.fixture
def profiles_file(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.json"
    PROFILES.save(path)
    return path


async def seed_workload(kube: kb.KubeEmulator, pods: list[AdminPod], replicas: int = 2) -> None:
    """The worker Deployment, its Ready pods (pointing at the stand-ins) and the token."""
    labels = {"app": DEPLOYMENT}
    await kube.create(kb.DEPLOYMENTS, kb.deployment(NAMESPACE, DEPLOYMENT, replicas=replicas))
    for pod in pods:
        await kube.create(kb.PODS, kb.pod(NAMESPACE, pod.name, labels=labels, admin_port=pod.port))
    # A pod of another app must never be pushed to.
    await kube.create(
        kb.PODS, kb.pod(NAMESPACE, "other-app-0", labels={"app": "other"}, admin_port=1)
    )
    await kube.create(kb.SECRETS, kb.secret(NAMESPACE, "latencyslo-admin-token", TOKEN))


def operator_settings(prometheus_url: str, profiles: Path, **overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {
        "prometheus_url": prometheus_url,
        "namespaces": (NAMESPACE,),
        "standalone": True,
        "metrics_port": 0,
        "liveness": None,
        "profiles": str(profiles),
        "push_timeout_s": 1.0,
        "query_timeout_s": 1.0,
        "query_share_s": 0.0,  # steps far shorter than the spec's interval: no shared cells
        **overrides,
    }
    return OperatorSettings(**values)


@contextlib.asynccontextmanager
async def running_operator(
    kube: kb.KubeEmulator,
    settings: OperatorSettings,
    *,
    interval_s: float = 0.3,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[asyncio.Task[None]]:
    """kopf's real reactor running the operator in this event loop, stopped on exit."""
    url = str(kube.url).rstrip("/")
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(
        run_operator(
            settings,
            api_configuration=k8s.Configuration(host=url),
            connection=kopf.ConnectionInfo(server=url, insecure=True),
            stop_flag=stop,
            ready_flag=ready,
            runtime_options={
                "interval": _counting(interval_s),
                "clock": clock,
                "invalid_spec_retry_s": interval_s,
            },
        )
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=20)
        yield task
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=20)


def status_of(kube: kb.KubeEmulator, name: str = "sentiment") -> dict[str, Any]:
    obj = kube.get(kb.LATENCYSLOS, NAMESPACE, name) or {}
    return dict(obj.get("status") or {})


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == type_), None)


def actuation_writes(kube: kb.KubeEmulator) -> list[str]:
    """Every write the operator made to the workload (not to its own LatencySLO or Events)."""
    found = []
    for request in kube.writes():
        if request.headers.get("User-Agent", "").startswith("kmock/"):
            continue  # the test's own set-up
        path = request.url.path
        if "/deployments/" in path or "/configmaps" in path or "/pods" in path:
            found.append(f"{request.method.value} {path}")
    return found


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)


_STEPS = [0]


def steps_made() -> int:
    """Control steps finished by the operators `running_operator` started in this process
    (each step asks the runtime for its interval once, when it is done). The target's
    Deployment is no count of steps: the steps read it from the operator's watch."""
    return _STEPS[0]


def _counting(interval_s: float) -> Callable[[Any], float]:
    def interval(_spec: Any) -> float:
        _STEPS[0] += 1
        return interval_s

    return interval
