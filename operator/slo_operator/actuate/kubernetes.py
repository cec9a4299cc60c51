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
  with the `resourceVersion` read when present (409 -> reported, not retried). A ConfigMap of
  that name that is not ours (not owned by this LatencySLO's uid, not labelled
  `app.kubernetes.io/managed-by: latencyslo-operator`) is never adopted or overwritten:
  `read()` raises `ForeignObjectError`, which the loop reports as a Conflict.
- then a **push** of the same document to every Ready pod of the Deployment (the Deployment's
  own selector), at the container port named `admin`, `PUT /admin/config` with the bearer token
  from the admin-token Secret, all pods in parallel, each call with an overall deadline, a
  size cap and a slot of the operator's shared, per-namespace fair limit (`actuate/push.py`).
  How many pods acknowledged is reported; a pod that missed the push converges from the
  mounted ConfigMap.

All values written are absolute (the target configuration), so finishing an interrupted
change twice has the effect of doing it once.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
from kubernetes.aio import client as k8s

from slo_operator.actuate.push import PodPusher, PushError, pod_admin_url
from slo_operator.actuate.runtime_config import (
    CONFIG_KEY,
    configmap_name,
    parse_runtime_config,
    render_runtime_config,
)
from slo_operator.actuate.watched import MANAGED_BY, MANAGED_BY_LABEL, WatchedObjects
from slo_operator.errors import ActuationError, ForeignObjectError, TargetNotFoundError
from slo_operator.types import ApplyResult, RuntimeConfig

log = logging.getLogger(__name__)
POD_CONFIG_TTL_S = 300.0
"""How long what the pods said they run is reused while the Deployment is unchanged."""
ABSENT_CONFIGMAP_TTL_S = 300.0
"""How long a watched target's ConfigMap found absent is taken as absent (the operator's own
shows in the watch at once; someone else's is seen within this time, and at the next write)."""


def label_selector(selector: Mapping[str, Any] | None) -> str:
    """A Deployment's `spec.selector` as a label-selector string for list calls."""
    if not selector:
        raise ActuationError("the Deployment has no selector")
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, operator = expr.get("key"), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        match operator:
            case "In":
                terms.append(f"{key} in ({values})")
            case "NotIn":
                terms.append(f"{key} notin ({values})")
            case "Exists":
                terms.append(str(key))
            case "DoesNotExist":
                terms.append(f"!{key}")
            case other:
                raise ActuationError(f"unsupported selector operator {other!r}")
    if not terms:
        raise ActuationError("the Deployment's selector is empty")
    return ",".join(terms)


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
        max_response_bytes: int = 32 * 1024 * 1024,
        http: httpx.AsyncClient | None = None,
        watched: WatchedObjects | None = None,
    ) -> None:
        self.namespace = namespace
        self.watched = watched  # read instead of GETs at each step; writes read fresh
        self._no_configmap_until = 0.0
        """A ConfigMap found absent is not asked for again before then (while watched)."""
        self.deployment = deployment
        self.configmap = configmap_name(deployment)
        self.owner = dict(owner)
        self.fallback = fallback
        self.token_secret = token_secret
        self.push_timeout_s = push_timeout_s
        self.request_timeout_s = request_timeout_s
        self.max_response_bytes = max_response_bytes
        self._apps = k8s.AppsV1Api(api)
        self._core = k8s.CoreV1Api(api)
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=httpx.Timeout(push_timeout_s))
        self._pusher = PodPusher(self._http, key=namespace, timeout_s=push_timeout_s)
        self._seen: _Seen | None = None
        self._pods_said: tuple[str, float, RuntimeConfig] | None = None
        """(Deployment resourceVersion, when, config): the pods' answer, reused while the
        Deployment (its spec and status: replicas, readiness, rollouts) is unchanged."""

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # ------------------------------------------------------------------ reading

    def _where(self) -> str:
        return f"Deployment {self.namespace}/{self.deployment}"

    async def _get(self, what: str, request: Any) -> dict[str, Any] | None:
        """Raw JSON of a GET (None on 404). Raw, not typed: the client's pydantic models of
        Deployments and pods cost far more CPU to build than the operator needs."""
        try:
            response = await request
            async with response:
                if response.status == 404:
                    return None
                if response.status >= 300:
                    raise ActuationError(f"{what}: HTTP {response.status} {response.reason}")
                data = json.loads(await self._body(what, response))
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise ActuationError(f"{what}: HTTP {exc.status} {exc.reason or ''}".strip()) from exc
        except (aiohttp.ClientError, TimeoutError, ValueError, RecursionError) as exc:
            raise ActuationError(f"{what}: {type(exc).__name__}: {exc}") from exc
        return data if isinstance(data, dict) else None

    async def _body(self, what: str, response: Any) -> bytes:
        """The answer's bytes, abandoned past `max_response_bytes` (a list of pods with huge
        annotations must not take the operator's memory)."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ActuationError(
                    f"{what}: answer over the size cap ({self.max_response_bytes} bytes)"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_deployment(self) -> dict[str, Any]:
        deployment = await self._get(
            f"reading {self._where()}",
            self._apps.read_namespaced_deployment_without_preload_content(
                self.deployment, self.namespace, _request_timeout=self.request_timeout_s
            ),
        )
        if deployment is None:
            raise TargetNotFoundError(f"{self._where()} not found")
        return deployment

    async def _read_configmap(self) -> dict[str, Any] | None:
        return await self._get(
            f"reading ConfigMap {self.namespace}/{self.configmap}",
            self._core.read_namespaced_config_map_without_preload_content(
                self.configmap, self.namespace, _request_timeout=self.request_timeout_s
            ),
        )

    async def read(self) -> tuple[RuntimeConfig, int]:
        w = self.watched
        deployment = (w and w.deployment(self.namespace, self.deployment)) or (
            await self._read_deployment()
        )
        spec = deployment.get("spec") or {}
        replicas = int(spec["replicas"]) if spec.get("replicas") is not None else 1
        ready = int((deployment.get("status") or {}).get("readyReplicas") or 0)

        configmap = w.configmap(self.namespace, self.configmap) if w else None
        if configmap is None and time.monotonic() >= self._no_configmap_until:
            configmap = await self._read_configmap()
            if configmap is None and w is not None:  # ours would show in the watch at once
                self._no_configmap_until = time.monotonic() + ABSENT_CONFIGMAP_TTL_S
        self._check_ours(configmap)
        data = (configmap.get("data") or {}).get(CONFIG_KEY) if configmap is not None else None
        config: RuntimeConfig | None = None
        if data is not None:
            try:
                config = parse_runtime_config(data, replicas)
            except ValueError as exc:  # unreadable: replaced by the next apply
                log.warning(
                    "ConfigMap %s/%s, key %s, is ignored and will be replaced: %s",
                    self.namespace,
                    self.configmap,
                    CONFIG_KEY,
                    exc,
                )
                config = None
        if config is None:
            config = await self._config_from_pods(deployment, replicas)
        if config is None:
            config = self.fallback.with_(replicas=replicas)
        self._seen = _Seen(replicas=replicas, config=config, configmap_data=data)
        return config, ready

    async def _config_from_pods(
        self, deployment: Mapping[str, Any], replicas: int
    ) -> RuntimeConfig | None:
        """Without a ConfigMap, ask one Ready pod what it runs (bootstrap only). A successful
        answer is reused while the Deployment's resourceVersion is the same (any change of
        its pods' readiness or of its spec moves it) for at most `POD_CONFIG_TTL_S`; a failed
        one is asked again at the next read."""
        version = str((deployment.get("metadata") or {}).get("resourceVersion") or "")
        now = time.monotonic()
        if self._pods_said is not None and version:
            said_version, said_at, said = self._pods_said
            if said_version == version and now - said_at < POD_CONFIG_TTL_S:
                return said
        config = await self._ask_pods(deployment, replicas)
        self._pods_said = (version, now, config) if config is not None and version else None
        return config

    async def _ask_pods(self, deployment: Mapping[str, Any], replicas: int) -> RuntimeConfig | None:
        try:
            urls = await self._pod_urls(deployment)
            token = await self._token()
        except ActuationError:
            return None
        if not urls or token is None:
            return None
        try:
            status, body = await self._pusher.call("GET", urls[0], token)
            if status != 200:
                return None
            return parse_runtime_config(body.decode("utf-8", "replace"), replicas)
        except (PushError, ValueError):
            return None

    async def _pod_urls(self, deployment: Mapping[str, Any]) -> list[str]:
        selector = label_selector((deployment.get("spec") or {}).get("selector"))
        pods = await self._get(
            f"listing pods of {self._where()}",
            self._core.list_namespaced_pod_without_preload_content(
                self.namespace, label_selector=selector, _request_timeout=self.request_timeout_s
            ),
        )
        urls = [pod_admin_url(pod) for pod in (pods or {}).get("items") or []]
        return sorted(url for url in urls if url)

    async def _token(self) -> str | None:
        secret = await self._get(
            f"reading Secret {self.namespace}/{self.token_secret}",
            self._core.read_namespaced_secret_without_preload_content(
                self.token_secret, self.namespace, _request_timeout=self.request_timeout_s
            ),
        )
        raw = ((secret or {}).get("data") or {}).get("token")
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
        except ForeignObjectError:
            self._seen = None
            raise  # someone else's ConfigMap appeared: nothing is written, the scale included
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
        except ActuationError as exc:  # TargetNotFoundError included
            errors.append(str(exc))

        self._seen = None  # the next apply starts from a fresh read
        self._no_configmap_until = 0.0
        return ApplyResult(
            replicas_set=replicas_ok,
            config_written=config_ok,
            pods_total=pods_total,
            pods_acknowledged=pods_acked,
            errors=tuple(errors),
        )

    def _check_ours(self, configmap: Mapping[str, Any] | None) -> None:
        """Raise `ForeignObjectError` when the runtime ConfigMap exists and is someone else's."""
        if configmap is None:
            return
        meta = configmap.get("metadata") or {}
        uid = self.owner.get("uid")
        owned = any(
            isinstance(ref, Mapping) and uid and ref.get("uid") == uid
            for ref in meta.get("ownerReferences") or []
        )
        labelled = (meta.get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        if not (owned or labelled):
            raise ForeignObjectError(
                f"ConfigMap {self.namespace}/{self.configmap} exists and was not created by the "
                f"latencyslo operator (no owner reference to this LatencySLO, no "
                f"{MANAGED_BY_LABEL}={MANAGED_BY} label): it is left untouched and this "
                "LatencySLO changes nothing while it exists"
            )

    def _owner_references(self, existing: list[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
        ours = {**self.owner, "controller": True, "blockOwnerDeletion": True}
        kept = [
            dict(ref)
            for ref in existing or []
            if not ref.get("controller") and ref.get("uid") != ours.get("uid")
        ]
        return [ours, *kept]

    async def _write(self, what: str, request: Any) -> None:
        try:
            await request
        except k8s.ApiException as exc:
            if exc.status == 409:
                raise ActuationError(
                    f"{what}: changed by someone else meanwhile (409); deciding again next interval"
                ) from exc
            raise ActuationError(f"{what}: HTTP {exc.status} {exc.reason or ''}".strip()) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActuationError(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def _write_configmap(self, target: RuntimeConfig, seen: _Seen) -> bool:
        """Make the ConfigMap hold `target`; True when it does afterwards."""
        wanted = render_runtime_config(target)
        current = await self._read_configmap()
        what = f"ConfigMap {self.namespace}/{self.configmap}"
        if current is None:
            if seen.configmap_data is not None:
                raise ActuationError(f"{what} was deleted since it was read; deciding again")
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": self.configmap,
                    "namespace": self.namespace,
                    "labels": {MANAGED_BY_LABEL: MANAGED_BY},
                    "ownerReferences": self._owner_references(None),
                },
                "data": {CONFIG_KEY: wanted},
            }
            await self._write(
                f"creating {what}",
                self._core.create_namespaced_config_map(
                    self.namespace,
                    k8s.V1ConfigMap.model_validate(body),
                    _request_timeout=self.request_timeout_s,
                ),
            )
            return True

        self._check_ours(current)
        data = dict(current.get("data") or {})
        if data.get(CONFIG_KEY) != seen.configmap_data:
            raise ActuationError(f"{what} was changed by someone else since it was read")
        meta = dict(current.get("metadata") or {})
        owners = self._owner_references(meta.get("ownerReferences"))
        if data.get(CONFIG_KEY) == wanted and meta.get("ownerReferences") == owners:
            return True
        data[CONFIG_KEY] = wanted
        meta["ownerReferences"] = owners
        body = {**current, "metadata": meta, "data": data}  # carries resourceVersion: 409-safe
        await self._write(
            f"writing {what}",
            self._core.replace_namespaced_config_map(
                self.configmap,
                self.namespace,
                k8s.V1ConfigMap.model_validate(body),
                _request_timeout=self.request_timeout_s,
            ),
        )
        return True

    async def _write_replicas(self, replicas: int, seen_replicas: int) -> bool:
        """Set replicas through /scale (compare-and-swap); True when in force afterwards."""
        scale = await self._get(
            f"reading the scale of {self._where()}",
            self._apps.read_namespaced_deployment_scale_without_preload_content(
                self.deployment, self.namespace, _request_timeout=self.request_timeout_s
            ),
        )
        if scale is None:
            raise TargetNotFoundError(f"{self._where()} not found")
        now = int((scale.get("spec") or {}).get("replicas") or 0)
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
                resource_version=(scale.get("metadata") or {}).get("resourceVersion"),
            ),
            spec=k8s.V1ScaleSpec(replicas=replicas),
        )
        await self._write(
            f"scaling {self._where()}",
            self._apps.replace_namespaced_deployment_scale(
                self.deployment, self.namespace, body, _request_timeout=self.request_timeout_s
            ),
        )
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
        return await self._pusher.put_all(urls, token, config.worker_payload())
