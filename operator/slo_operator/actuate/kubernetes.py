"""`KubernetesActuator`: the `Actuator` port on a Deployment, its runtime ConfigMap and its pods.

Uses the official client's asyncio flavour (`kubernetes.aio`), so nothing blocks the event
loop and the operator's own API calls share kopf's loop. What it writes, and how:

- **replicas** only through the Deployment's `scale` subresource (never the Deployment object
  itself), with optimistic concurrency: the Scale is read fresh, its `spec.replicas` must still
  be what `read()` saw, and the PUT carries the Scale's `resourceVersion`. Any mismatch or a 409
  means someone else changed it: nothing is written, the error is reported, and the control
  loop reads and decides again on its next step. No blind retry.
- **batch window, max batch size, variant** into the ConfigMap `<deployment>-latencyslo`, key
  `config.json` (docs/contracts.md), owned by the LatencySLO (`controller: true`,
  `blockOwnerDeletion: true`) so it is garbage-collected with it. Created when absent; replaced
  with the `resourceVersion` read when present (409 -> reported, not retried).
- then a **push** of the same document to every Ready pod of the Deployment (the Deployment's
  own selector), at the container port named `admin`, `PUT /admin/config` with the bearer token
  from the admin-token Secret, all pods in parallel with a short timeout. How many pods
  acknowledged is reported; a pod that missed the push converges from the mounted ConfigMap.

All values written are absolute (the target configuration), so finishing an interrupted
change twice has the effect of doing it once.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from kubernetes.aio import client as k8s

from slo_operator.spec import VARIANTS
from slo_operator.types import ApplyResult, RuntimeConfig

CONFIG_KEY = "config.json"
ADMIN_PORT_NAME = "admin"
ADMIN_CONFIG_PATH = "/admin/config"
MANAGED_BY = "latencyslo-operator"


def configmap_name(deployment: str) -> str:
    """The runtime-config ConfigMap of a Deployment (docs/contracts.md)."""
    return f"{deployment}-latencyslo"


class TargetNotFoundError(Exception):
    """The target Deployment does not exist."""


class ActuationError(Exception):
    """Reading or writing the target failed (API error, network)."""


def label_selector(selector: k8s.V1LabelSelector | None) -> str:
    """A Deployment's `spec.selector` as a label-selector string for list calls."""
    if selector is None:
        raise ActuationError("the Deployment has no selector")
    terms = [f"{k}={v}" for k, v in sorted((selector.match_labels or {}).items())]
    for expr in selector.match_expressions or []:
        values = ",".join(sorted(expr.values or []))
        match expr.operator:
            case "In":
                terms.append(f"{expr.key} in ({values})")
            case "NotIn":
                terms.append(f"{expr.key} notin ({values})")
            case "Exists":
                terms.append(expr.key)
            case "DoesNotExist":
                terms.append(f"!{expr.key}")
            case other:
                raise ActuationError(f"unsupported selector operator {other!r}")
    if not terms:
        raise ActuationError("the Deployment's selector is empty")
    return ",".join(terms)


def parse_runtime_config(text: str, replicas: int) -> RuntimeConfig:
    """`config.json` (or a worker's `GET /admin/config` body) as a RuntimeConfig."""
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("runtime config is not a JSON object")
    variant = data.get("variant")
    if variant not in VARIANTS:
        raise ValueError(f"runtime config: unknown variant {variant!r}")
    window = data.get("batchWindowMs")
    size = data.get("maxBatchSize")
    if not isinstance(window, int | float) or not isinstance(size, int | float):
        raise ValueError("runtime config: batchWindowMs and maxBatchSize must be numbers")
    return RuntimeConfig(
        replicas=replicas,
        batch_window_ms=round(window),
        max_batch_size=int(size),
        variant=str(variant),
    )


def render_runtime_config(config: RuntimeConfig) -> str:
    return json.dumps(config.worker_payload(), sort_keys=True)


def pod_admin_url(pod: k8s.V1Pod) -> str | None:
    """`http://<podIP>:<admin port>/admin/config` of a Ready, running pod; else None."""
    if pod.metadata is not None and pod.metadata.deletion_timestamp is not None:
        return None
    status = pod.status
    if status is None or not status.pod_ip:
        return None
    ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
    if not ready or pod.spec is None:
        return None
    for container in pod.spec.containers:
        for port in container.ports or []:
            if port.name == ADMIN_PORT_NAME:
                host = f"[{status.pod_ip}]" if ":" in status.pod_ip else status.pod_ip
                return f"http://{host}:{port.container_port}{ADMIN_CONFIG_PATH}"
    return None


@dataclass(slots=True)
class _Seen:
    """What the last `read()` saw, for the compare-and-swap of `apply()`."""

    replicas: int
    config: RuntimeConfig
    configmap_data: str | None


class KubernetesActuator:
    """Reads and applies the runtime configuration of one Deployment (see module docs)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        *,
        namespace: str,
        deployment: str,
        owner: Mapping[str, Any],
        fallback: RuntimeConfig,
        token_secret: str = "latencyslo-admin-token",
        push_timeout_s: float = 2.0,
        request_timeout_s: float = 10.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.namespace = namespace
        self.deployment = deployment
        self.configmap = configmap_name(deployment)
        self.owner = dict(owner)
        self.fallback = fallback
        self.token_secret = token_secret
        self.push_timeout_s = push_timeout_s
        self.request_timeout_s = request_timeout_s
        self._apps = k8s.AppsV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(push_timeout_s))
        self._seen: _Seen | None = None

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ reading

    def _where(self) -> str:
        return f"Deployment {self.namespace}/{self.deployment}"

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            return await coro
        except k8s.ApiException as exc:
            raise ActuationError(f"{what}: HTTP {exc.status} {exc.reason or ''}".strip()) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def _read_deployment(self) -> k8s.V1Deployment:
        try:
            return await self._apps.read_namespaced_deployment(
                self.deployment, self.namespace, _request_timeout=self.request_timeout_s
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                raise TargetNotFoundError(f"{self._where()} not found") from exc
            raise ActuationError(f"reading {self._where()}: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"reading {self._where()}: {type(exc).__name__}: {exc}") from exc

    async def _read_configmap(self) -> k8s.V1ConfigMap | None:
        try:
            return await self._core.read_namespaced_config_map(
                self.configmap, self.namespace, _request_timeout=self.request_timeout_s
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise ActuationError(
                f"reading ConfigMap {self.namespace}/{self.configmap}: HTTP {exc.status}"
            ) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"reading ConfigMap: {type(exc).__name__}: {exc}") from exc

    async def read(self) -> tuple[RuntimeConfig, int]:
        deployment = await self._read_deployment()
        replicas = 1
        if deployment.spec is not None and deployment.spec.replicas is not None:
            replicas = deployment.spec.replicas
        ready = 0
        if deployment.status is not None and deployment.status.ready_replicas is not None:
            ready = deployment.status.ready_replicas

        configmap = await self._read_configmap()
        data = (configmap.data or {}).get(CONFIG_KEY) if configmap is not None else None
        config: RuntimeConfig | None = None
        if data is not None:
            try:
                config = parse_runtime_config(data, replicas)
            except ValueError:
                config = None  # unreadable: replaced by the next apply
        if config is None:
            config = await self._config_from_pods(deployment, replicas)
        if config is None:
            config = self.fallback.with_(replicas=replicas)
        self._seen = _Seen(replicas=replicas, config=config, configmap_data=data)
        return config, ready

    async def _config_from_pods(
        self, deployment: k8s.V1Deployment, replicas: int
    ) -> RuntimeConfig | None:
        """Without a ConfigMap, ask one Ready pod what it runs (bootstrap only)."""
        try:
            urls = await self._pod_urls(deployment)
            token = await self._token()
        except ActuationError:
            return None
        if not urls or token is None:
            return None
        try:
            resp = await self._http.get(urls[0], headers={"Authorization": f"Bearer {token}"})
            if resp.status_code != 200:
                return None
            return parse_runtime_config(resp.text, replicas)
        except (httpx.HTTPError, ValueError):
            return None

    async def _pod_urls(self, deployment: k8s.V1Deployment) -> list[str]:
        selector = label_selector(deployment.spec.selector if deployment.spec else None)
        pods = await self._call(
            f"listing pods of {self._where()}",
            self._core.list_namespaced_pod(
                self.namespace, label_selector=selector, _request_timeout=self.request_timeout_s
            ),
        )
        urls = [pod_admin_url(pod) for pod in pods.items]
        return sorted(url for url in urls if url)

    async def _token(self) -> str | None:
        try:
            secret = await self._core.read_namespaced_secret(
                self.token_secret, self.namespace, _request_timeout=self.request_timeout_s
            )
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise ActuationError(f"reading Secret {self.token_secret}: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"reading Secret: {type(exc).__name__}: {exc}") from exc
        raw = (secret.data or {}).get("token")
        if not raw:
            return None
        return base64.b64decode(raw).decode().strip() or None

    # ------------------------------------------------------------------ writing

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        if self._seen is None:
            await self.read()
        assert self._seen is not None
        seen = self._seen
        errors: list[str] = []

        config_ok = False
        try:
            config_ok = await self._write_configmap(target, seen)
        except ActuationError as exc:
            errors.append(str(exc))

        pods_total = pods_acked = 0
        if config_ok:
            try:
                pods_total, pods_acked, push_errors = await self.push(target)
                errors.extend(push_errors)
            except ActuationError as exc:
                errors.append(f"push skipped: {exc}")

        replicas_ok = False
        try:
            replicas_ok = await self._write_replicas(target.replicas, seen.replicas)
        except ActuationError as exc:
            errors.append(str(exc))

        self._seen = None  # the next apply starts from a fresh read
        return ApplyResult(
            replicas_set=replicas_ok,
            config_written=config_ok,
            pods_total=pods_total,
            pods_acknowledged=pods_acked,
            errors=tuple(errors),
        )

    def _owner_references(self, existing: list[k8s.V1OwnerReference] | None) -> list[Any]:
        ours = k8s.V1OwnerReference.model_validate(
            {**self.owner, "controller": True, "blockOwnerDeletion": True}
        )
        kept = [ref for ref in existing or [] if not ref.controller and ref.uid != ours.uid]
        return [ours, *kept]

    async def _write_configmap(self, target: RuntimeConfig, seen: _Seen) -> bool:
        """Make the ConfigMap hold `target`; True when it does afterwards."""
        wanted = render_runtime_config(target)
        current = await self._read_configmap()
        what = f"ConfigMap {self.namespace}/{self.configmap}"
        if current is None:
            if seen.configmap_data is not None:
                raise ActuationError(f"{what} was deleted since it was read; deciding again")
            body = k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(
                    name=self.configmap,
                    namespace=self.namespace,
                    labels={"app.kubernetes.io/managed-by": MANAGED_BY},
                    owner_references=self._owner_references(None),
                ),
                data={CONFIG_KEY: wanted},
            )
            try:
                await self._core.create_namespaced_config_map(
                    self.namespace, body, _request_timeout=self.request_timeout_s
                )
            except k8s.ApiException as exc:
                if exc.status == 409:
                    raise ActuationError(
                        f"{what} was created by someone else meanwhile (409); deciding again"
                    ) from exc
                raise ActuationError(f"creating {what}: HTTP {exc.status}") from exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise ActuationError(f"creating {what}: {type(exc).__name__}") from exc
            return True

        data = dict(current.data or {})
        if data.get(CONFIG_KEY) != seen.configmap_data:
            raise ActuationError(f"{what} was changed by someone else since it was read")
        owners = self._owner_references(current.metadata.owner_references)
        if data.get(CONFIG_KEY) == wanted and current.metadata.owner_references == owners:
            return True
        data[CONFIG_KEY] = wanted
        current.data = data
        current.metadata.owner_references = owners
        try:
            await self._core.replace_namespaced_config_map(
                self.configmap, self.namespace, current, _request_timeout=self.request_timeout_s
            )
        except k8s.ApiException as exc:
            if exc.status == 409:
                raise ActuationError(
                    f"{what} changed while writing it (409); deciding again next interval"
                ) from exc
            raise ActuationError(f"writing {what}: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"writing {what}: {type(exc).__name__}") from exc
        return True

    async def _write_replicas(self, replicas: int, seen_replicas: int) -> bool:
        """Set replicas through /scale (compare-and-swap); True when in force afterwards."""
        scale = await self._call(
            f"reading the scale of {self._where()}",
            self._apps.read_namespaced_deployment_scale(
                self.deployment, self.namespace, _request_timeout=self.request_timeout_s
            ),
        )
        now = scale.spec.replicas if scale.spec and scale.spec.replicas is not None else 1
        if now == replicas:
            return True
        if now != seen_replicas:
            raise ActuationError(
                f"replicas of {self._where()} changed from {seen_replicas} to {now} by someone "
                "else since they were read; deciding again next interval"
            )
        body = k8s.V1Scale(
            metadata=k8s.V1ObjectMeta(
                name=self.deployment,
                namespace=self.namespace,
                resource_version=scale.metadata.resource_version if scale.metadata else None,
            ),
            spec=k8s.V1ScaleSpec(replicas=replicas),
        )
        try:
            await self._apps.replace_namespaced_deployment_scale(
                self.deployment, self.namespace, body, _request_timeout=self.request_timeout_s
            )
        except k8s.ApiException as exc:
            if exc.status == 409:
                raise ActuationError(
                    f"the scale of {self._where()} changed while writing it (409); deciding "
                    "again next interval"
                ) from exc
            raise ActuationError(f"scaling {self._where()}: HTTP {exc.status}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"scaling {self._where()}: {type(exc).__name__}") from exc
        return True

    async def push(self, config: RuntimeConfig) -> tuple[int, int, list[str]]:
        """PUT the config to every Ready pod's admin port: (pods, acknowledged, errors)."""
        deployment = await self._read_deployment()
        urls = await self._pod_urls(deployment)
        if not urls:
            return 0, 0, []
        token = await self._token()
        if token is None:
            return (
                len(urls),
                0,
                [
                    f"no admin token (Secret {self.namespace}/{self.token_secret}, key token): "
                    "pods converge from the ConfigMap"
                ],
            )
        payload = config.worker_payload()
        headers = {"Authorization": f"Bearer {token}"}

        async def put(url: str) -> str | None:
            try:
                resp = await self._http.put(
                    url, json=payload, headers=headers, timeout=self.push_timeout_s
                )
            except httpx.HTTPError as exc:
                return f"{url}: {type(exc).__name__}"
            if 200 <= resp.status_code < 300:
                return None
            return f"{url}: HTTP {resp.status_code}"

        outcomes = await asyncio.gather(*(put(url) for url in urls))
        failures = [o for o in outcomes if o is not None]
        return len(urls), len(urls) - len(failures), failures
