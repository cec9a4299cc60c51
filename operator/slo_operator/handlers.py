"""The kopf handlers of the operator: thin glue between kopf and `slo_operator.loop`.

`build_registry(runtime)` returns a fresh `kopf.OperatorRegistry` (nothing global, so tests can
run several operators) with:

- a start-up handler configuring kopf (annotation-based progress storage under
  `latencyslo.io/`, event source `latencyslo-operator`);
- a login handler (the runtime's connection, or kopf's kubernetes-client login);
- two indexes for conflict detection: HPAs by their target Deployment, LatencySLOs by theirs;
- two indexes the steps read instead of the API server (`actuate/watched.py`): Deployments,
  and the runtime ConfigMaps labelled as the operator's (a server-side label selector);
  every index function is `async`, so kopf runs it on the event loop rather than handing
  each watch event to a worker thread;
- one daemon per LatencySLO running `ControlLoop.step` every `policy.intervalSeconds` (at once
  when a look between steps finds a clear breach: `slo_operator.look`), posting the step's
  Events with kopf's event API, and dropping the object's operator metrics when it is deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import kopf
from kubernetes.aio import client as k8s
from pydantic import ValidationError

from slo_operator.actuate.kubernetes import KubernetesActuator
from slo_operator.actuate.store import KubernetesStateStore, load_memory
from slo_operator.actuate.watched import (
    MANAGED_SELECTOR,
    WatchedObjects,
    slim_configmap,
    slim_deployment,
)
from slo_operator.conflicts import Claim, find_conflict
from slo_operator.errors import StoreError
from slo_operator.look import look, wait_looking
from slo_operator.loop import ControlLoop
from slo_operator.memory import phase_of
from slo_operator.metrics.batch import BatchedPrometheus
from slo_operator.metrics.client import PrometheusClient
from slo_operator.metrics.fair import FairLimiter
from slo_operator.opmetrics import OperatorMetrics
from slo_operator.policy import OperatorLimits
from slo_operator.report import invalid_spec_status
from slo_operator.settings import ANNOTATION_PREFIX, OperatorSettings
from slo_operator.spec import API_VERSION, GROUP, KIND, PLURAL, VERSION, LatencySLOSpec
from slo_operator.types import ProfileSet, RuntimeConfig

EVENT_SOURCE = "latencyslo-operator"
DAEMON_GRACE_S = 10.0
"""On stop or deletion, a step in progress gets this long to finish before it is cancelled."""


def _default_interval(spec: LatencySLOSpec) -> float:
    return float(spec.policy.interval_seconds)


@dataclass
class Runtime:
    """What the handlers need, built once at start-up (`slo_operator.run`) or by a test."""

    settings: OperatorSettings
    api: k8s.ApiClient
    baseline: ProfileSet
    metrics: OperatorMetrics = field(default_factory=OperatorMetrics)
    connection: kopf.ConnectionInfo | None = None
    """kopf's credentials; None = kopf's kubernetes-client login (in-cluster or kubeconfig)."""
    interval: Callable[[LatencySLOSpec], float] = _default_interval
    """Seconds between two steps; tests shorten it."""
    clock: Callable[[], float] = time.time
    invalid_spec_retry_s: float = 5.0
    """How often a LatencySLO whose spec does not validate is looked at again."""
    http: httpx.AsyncClient | None = None
    """Shared client for the pods' admin APIs; None = one per LatencySLO."""
    prometheus: BatchedPrometheus | None = None
    """The batched metrics source shared by every LatencySLO; None = built from the settings."""
    steps: FairLimiter | None = None
    """Step slots shared round-robin by namespace; None = `max_concurrent_steps` of them."""

    def hub(self) -> BatchedPrometheus:
        if self.prometheus is None:
            s = self.settings
            client = PrometheusClient(
                s.prometheus_url,
                timeout_s=s.query_timeout_s,
                max_bytes=s.prometheus_max_mib * 1024 * 1024,
                concurrency=s.prometheus_concurrency,
                on_query=self.metrics.prometheus_queries.inc,
            )
            # a look reads figures at most one look old (none when looks are off)
            looks = max(s.look_interval_s, s.scrape_interval_s) if s.look_interval_s else None
            self.prometheus = BatchedPrometheus(
                client,
                max_age_s=s.max_data_age_s,
                share_s=min(s.query_share_s, looks or s.query_share_s),
                target_label=s.target_label or None,
            )
        return self.prometheus

    def step_slots(self) -> FairLimiter:
        if self.steps is None:
            self.steps = FairLimiter(self.settings.max_concurrent_steps)
        return self.steps

    async def aclose(self) -> None:
        """Close the shared clients (idempotent)."""
        if self.http is not None:
            await self.http.aclose()
        if self.prometheus is not None:
            await self.prometheus.aclose()
        await self.api.close()


def fallback_config(spec: LatencySLOSpec) -> RuntimeConfig:
    """What workers are assumed to run before any ConfigMap or pod says otherwise."""
    return RuntimeConfig(
        replicas=spec.replicas.min,
        batch_window_ms=spec.batching.min_window_ms,
        max_batch_size=spec.batching.max_batch_size,
        variant=spec.variants.effective_preferred,
    )


def operator_limits(settings: OperatorSettings) -> OperatorLimits:
    """The operator-wide part of every controller's parameters (one staleness limit: the
    metrics source and the controller both use `--max-data-age`)."""
    return OperatorLimits(
        max_replicas=settings.max_replicas,
        max_data_age_s=settings.max_data_age_s,
        scrape_interval_s=settings.scrape_interval_s,
        look_interval_s=settings.look_interval_s,
    )


def identity(body: kopf.Body) -> tuple[str, str]:
    """(namespace, name) of a namespaced object."""
    namespace, name = body.metadata.namespace, body.metadata.name
    if not namespace or not name:
        raise ValueError("a LatencySLO is namespaced and named")
    return namespace, name


def owner_reference(body: kopf.Body) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": body.metadata.name,
        "uid": body.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def resource_version(body: kopf.Body) -> str | None:
    version = (body.get("metadata") or {}).get("resourceVersion")
    return str(version) if version else None


@contextlib.asynccontextmanager
async def control_loop_for(
    runtime: Runtime, body: kopf.Body, spec: LatencySLOSpec, watched: WatchedObjects | None = None
) -> AsyncIterator[tuple[ControlLoop, KubernetesStateStore]]:
    """The ports and the loop of one LatencySLO, closed when its daemon ends. The store writes
    conditionally on the object's version (compare-and-swap, `actuate/store.py`)."""
    namespace, name = identity(body)
    settings = runtime.settings
    source = runtime.hub().source(
        namespace,
        name,
        spec.target_ref.name,
        on_error=lambda _message: runtime.metrics.prometheus_error(namespace, name),
    )
    actuator = KubernetesActuator(
        runtime.api,
        namespace=namespace,
        deployment=spec.target_ref.name,
        owner=owner_reference(body),
        fallback=fallback_config(spec),
        token_secret=settings.admin_token_secret,
        push_timeout_s=settings.push_timeout_s,
        http=runtime.http,
        watched=watched,
    )
    memory = load_memory(body.metadata.annotations)
    status = dict(body.get("status") or {})
    store = KubernetesStateStore(
        runtime.api,
        namespace=namespace,
        name=name,
        memory=memory,
        status=status,
        resource_version=resource_version(body),
    )
    loop = ControlLoop(
        name=name,
        namespace=namespace,
        metrics=source,
        actuator=actuator,
        profiles=runtime.baseline,
        store=store,
        recorder=runtime.metrics,
        limits=operator_limits(settings),
        clock=runtime.clock,
    )
    loop.restore(status, memory)
    try:
        yield loop, store
    finally:
        await actuator.aclose()
        source.close()


def _claims(index: kopf.Index[Any, Any], key: tuple[str, str]) -> Iterable[Any]:
    try:
        return list(index.get(key) or [])
    except (KeyError, TypeError):
        return []


@dataclass(frozen=True)
class IndexedObjects:
    """`WatchedObjects` on the operator's kopf indexes of Deployments and runtime ConfigMaps."""

    deployments: kopf.Index[Any, Any]
    configmaps: kopf.Index[Any, Any]

    def deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _only(self.deployments, (namespace, name))

    def configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        return _only(self.configmaps, (namespace, name))


def _only(index: kopf.Index[Any, Any], key: tuple[str, str]) -> dict[str, Any] | None:
    values = [v for v in _claims(index, key) if isinstance(v, dict)]
    return values[0] if len(values) == 1 else None  # none, or ambiguous: read the API


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
            prefix=ANNOTATION_PREFIX
        )
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.posting.reporting_component = EVENT_SOURCE
        settings.posting.event_name_prefix = "latencyslo-"
        settings.posting.level = logging.INFO
        # Watch exactly the namespaces given and the resources present at start: no
        # cluster-wide list/watch of namespaces and CRDs (least privilege; the CRD is
        # installed before the operator, a CRD added later needs an operator restart).
        settings.scanning.disabled = True
        # One active operator per peering name (kopf peering); --standalone disables it.
        settings.peering.name = runtime.settings.peering
        settings.peering.mandatory = runtime.settings.peering_mandatory
        settings.peering.standalone = runtime.settings.standalone
        # Only the operator's own runtime ConfigMaps are watched (see `actuate/watched.py`).
        settings.watching.label_selectors["", "v1", "configmaps"] = MANAGED_SELECTOR

    @kopf.on.cleanup(registry=registry)
    async def close_clients(**_: Any) -> None:
        # After every daemon is gone: close keep-alive connections before kopf's exit sweep.
        await runtime.aclose()

    @kopf.on.login(registry=registry)
    def login(logger: kopf.Logger, settings: kopf.OperatorSettings, **_: Any) -> Any:
        if runtime.connection is not None:
            return runtime.connection
        return kopf.login_via_client(logger=logger, settings=settings)

    @kopf.index(
        "autoscaling", "v2", "horizontalpodautoscalers", id="hpa_targets", registry=registry
    )
    async def hpa_targets(
        namespace: str | None, name: str | None, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str | None, str], str | None] | None:
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or not ref.get("name"):
            return None
        return {(namespace, ref["name"]): name}

    @kopf.index(GROUP, VERSION, PLURAL, id="slo_targets", registry=registry)
    async def slo_targets(
        namespace: str | None, name: str | None, spec: kopf.Spec, meta: kopf.Meta, **_: Any
    ) -> dict[tuple[str | None, str], Claim] | None:
        target = (spec.get("targetRef") or {}).get("name")
        if not target:
            return None
        return {(namespace, target): Claim(str(meta.get("creationTimestamp") or ""), str(name))}

    @kopf.index("apps", "v1", "deployments", id="deployments", registry=registry)
    async def deployments(
        namespace: str | None, name: str | None, body: kopf.Body, **_: Any
    ) -> dict[tuple[str | None, str | None], dict[str, Any]]:
        return {(namespace, name): slim_deployment(body)}

    @kopf.index("", "v1", "configmaps", id="runtime_configmaps", registry=registry)
    async def runtime_configmaps(
        namespace: str | None, name: str | None, body: kopf.Body, **_: Any
    ) -> dict[tuple[str | None, str | None], dict[str, Any]] | None:
        slim = slim_configmap(body)
        return None if slim is None else {(namespace, name): slim}

    @kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        id="control_loop",
        registry=registry,
        backoff=5,
        cancellation_backoff=DAEMON_GRACE_S,
        cancellation_timeout=DAEMON_GRACE_S,
    )
    async def control_loop(
        body: kopf.Body,
        meta: kopf.Meta,
        stopped: kopf.DaemonStopped,
        logger: kopf.Logger,
        hpa_targets: kopf.Index[Any, Any],
        slo_targets: kopf.Index[Any, Any],
        deployments: kopf.Index[Any, Any],
        runtime_configmaps: kopf.Index[Any, Any],
        **_: Any,
    ) -> None:
        namespace, name = identity(body)
        watched = IndexedObjects(deployments, runtime_configmaps)
        try:
            while not stopped:
                try:
                    spec = LatencySLOSpec.model_validate(dict(body.spec))
                except ValidationError as exc:
                    await _report_invalid_spec(runtime, body, meta, exc, logger)
                    await stopped.wait(runtime.invalid_spec_retry_s)
                    continue
                await _run_steps(
                    runtime, body, meta, spec, stopped, logger, (hpa_targets, slo_targets), watched
                )
        finally:
            if stopped.reason is not None and (
                stopped.reason & kopf.DaemonStoppingReason.RESOURCE_DELETED
            ):
                runtime.metrics.forget(namespace, name)

    return registry


async def _report_invalid_spec(
    runtime: Runtime,
    body: kopf.Body,
    meta: kopf.Meta,
    error: ValidationError,
    logger: kopf.Logger,
) -> None:
    """A spec that does not validate (the API server should have refused it): say so in the
    Ready condition and do nothing else."""
    namespace, name = identity(body)
    logger.error(f"invalid spec, nothing done until it is fixed: {error}")
    memory = load_memory(body.metadata.annotations) or {}
    status = invalid_spec_status(
        body.get("status"), error, now=runtime.clock(), generation=meta.get("generation")
    )
    store = KubernetesStateStore(runtime.api, namespace=namespace, name=name, memory=memory)
    try:
        await store.save(status.model_dump(by_alias=True, mode="json"), None)
    except StoreError as exc:
        logger.warning(f"status not saved: {exc}")


async def _run_steps(
    runtime: Runtime,
    body: kopf.Body,
    meta: kopf.Meta,
    spec: LatencySLOSpec,
    stopped: kopf.DaemonStopped,
    logger: kopf.Logger,
    claims: tuple[kopf.Index[Any, Any], kopf.Index[Any, Any]],
    watched: WatchedObjects,
) -> None:
    """Step every interval until stopped, or until targetRef changes (new ports needed).
    `claims`: the HPA and LatencySLO indexes by target, for conflict detection."""
    namespace, name = identity(body)
    hpa_targets, slo_targets = claims
    target = spec.target_ref.name
    due = time.monotonic()  # the first step at once; then on this object's phase
    checked: tuple[Any, LatencySLOSpec | None] = (None, None)  # (generation, valid spec)
    async with control_loop_for(runtime, body, spec, watched) as (loop, store):
        while not stopped:
            raw = dict(body.spec)
            if (raw.get("targetRef") or {}).get("name") != target:
                return
            generation = meta.get("generation")
            if generation is None or checked[0] != generation:  # validated once per generation
                try:
                    checked = (generation, LatencySLOSpec.model_validate(raw))
                except ValidationError:  # the step reports it
                    checked = (None, None)
            status = body.get("status")
            if store.changed_elsewhere(resource_version(body), body.metadata.annotations, status):
                # Another writer (a second operator on this object) changed the status or
                # the memory: continue from what it wrote, never over it.
                logger.warning("status or memory written by another writer: reloaded")
                loop.restore(dict(status or {}), load_memory(body.metadata.annotations))
            conflict = find_conflict(
                name=name,
                deployment=target,
                hpas=[n for n in _claims(hpa_targets, (namespace, target)) if n],
                claims=_claims(slo_targets, (namespace, target)),
            )
            try:
                async with runtime.step_slots().slot(namespace):
                    runtime.metrics.step_started(time.monotonic() - due)
                    result = await loop.step(
                        checked[1] or raw, generation=generation, conflict=conflict
                    )
                for event in result.events:
                    kopf.event(
                        body, type=event.type, reason=str(event.reason), message=event.message
                    )
                if result.save_error:
                    logger.warning(f"status not saved: {result.save_error}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in one step must not end the daemon:
                # it is logged with its traceback and the next step starts afresh
                logger.exception(f"control step failed: {exc}")
            spec = checked[1] or spec
            due = next_due(time.monotonic(), runtime.interval(spec), phase_of(namespace, name))
            if await _until_due(runtime, loop, namespace, due, stopped):
                logger.info("a clear breach between steps: stepping now")
                due = time.monotonic()


async def _until_due(
    runtime: Runtime, loop: ControlLoop, namespace: str, due: float, stopped: kopf.DaemonStopped
) -> bool:
    """Wait until `due` (monotonic), looking at the metrics between steps (`slo_operator.look`,
    in the namespace's step slot); True when a look found the step due now."""

    async def nap(seconds: float) -> bool:
        await stopped.wait(seconds)
        return bool(stopped)

    async def looked() -> bool:
        async with runtime.step_slots().slot(namespace):
            return await look(loop)

    return await wait_looking(loop, due - time.monotonic(), nap, looked, time.monotonic)


def next_due(now: float, interval: float, phase: float) -> float:
    """The first instant after `now` (at least half an interval away) at `phase` of the
    interval on the monotonic clock: steps stay one interval apart, spread by phase."""
    if interval <= 0:
        return now
    offset = phase * interval
    due = (now - offset) // interval * interval + offset + interval
    if due - now < interval / 2:
        due += interval
    return due
