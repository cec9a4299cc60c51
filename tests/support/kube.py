"""A Kubernetes API emulator for operator tests: kmock's emulator plus what the API server does.

kmock 0.8's `KubernetesEmulator` stores objects and serves list/watch/get/create/patch/delete,
but it does not assign `metadata.uid`, `resourceVersion`, `generation` or `creationTimestamp`,
does not support `generateName`, `PUT`, label selectors, subresources or garbage collection.
`KubeEmulator` adds exactly those, the way the real API server behaves:

- create: `generateName`, `uid`, `resourceVersion` (a global counter, like etcd's revision),
  `generation` = 1, `creationTimestamp`; 409 when the name is taken;
- patch (merge or JSON patch) and `PUT` (replace): a `metadata.resourceVersion` in the body is a
  precondition (409 on mismatch, like the API server); `resourceVersion` is bumped on every
  write and `generation` when `spec` changes;
- the `status` subresource of resources that declare it: writes to the main resource ignore
  `status`, writes to `/status` change only `status`;
- the Deployment `scale` subresource (`autoscaling/v1` `Scale`): GET, PUT, PATCH;
- `labelSelector` on list (equality, `!=`, `in`, `notin`, exists, `!key`);
- background garbage collection: deleting an object deletes the objects whose
  `ownerReferences` name its uid;
- optionally a stand-in for the Deployment controller: `status.replicas`, `readyReplicas` and
  `availableReplicas` follow `spec.replicas` (`ready_deployments=True`).

Requests are kept in order (iterate the emulator) so tests can assert what was written
(`keep_requests=False` forgets each request once served: a long benchmark).

Cost: kmock finds the reaction for a request by replaying its whole request log through each
reaction's filters, so its cost per request grows with the requests served (tens of ms after
a few hundred). While no reaction is added to the emulator, `KubeEmulator` serves get, list
and create itself from the stored objects (keyed lookups, an index by namespace), at a cost
that does not grow with the requests or with other namespaces' objects; watches and deletes,
and everything once a test adds its own reaction, still go through kmock.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import dicts as kmock_dicts
from kmock._internal import enums, rendering

from slo_operator.spec import GROUP, KIND, PLURAL, SHORT_NAMES, VERSION

LATENCYSLOS = f"{GROUP}/{VERSION}/{PLURAL}"
DEPLOYMENTS = "apps/v1/deployments"
PODS = "v1/pods"
CONFIGMAPS = "v1/configmaps"
SECRETS = "v1/secrets"
EVENTS = "v1/events"
HPAS = "autoscaling/v2/horizontalpodautoscalers"


def _copy(obj: Any) -> Any:
    """A deep copy of a JSON document (several times faster than `copy.deepcopy`)."""
    return json.loads(json.dumps(obj))


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, reason: str, message: str) -> aiohttp.web.Response:
    return aiohttp.web.json_response(
        {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "code": status,
            "reason": reason,
            "message": message,
        },
        status=status,
    )


_SELECTOR_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<setop>in|notin)\s+\((?P<values>[^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current)
    return terms


def selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """Evaluate a Kubernetes label selector string against labels."""
    for term in _split_selector(selector):
        m = _SELECTOR_TERM.match(term)
        if m is None:
            raise ValueError(f"unparseable label selector term {term!r}")
        key = m["key"]
        if m["neg"]:
            if key in labels:
                return False
        elif m["op"] in ("=", "=="):
            if labels.get(key) != m["value"]:
                return False
        elif m["op"] == "!=":
            if labels.get(key) == m["value"]:
                return False
        elif m["setop"]:
            values = {v.strip() for v in m["values"].split(",") if v.strip()}
            if m["setop"] == "in" and labels.get(key) not in values:
                return False
            if m["setop"] == "notin" and labels.get(key) in values:
                return False
        elif key not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with resource versions, uids, subresources, selectors and GC."""

    ready_deployments: bool = True
    keep_requests: bool = True
    """False: a request is forgotten once served (`writes()` and iteration see none)."""
    _revision: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    hooks: list[Callable[[rendering.Request], Awaitable[None]]] = attrs.field(
        factory=list, init=False
    )
    """Awaited before a request is served (e.g. to hold it)."""
    after_hooks: list[Callable[[rendering.Request], Awaitable[None]]] = attrs.field(
        factory=list, init=False
    )
    """Awaited after a write was applied, before its response is sent."""
    conflicts: list[str] = attrs.field(factory=list, init=False)
    """Paths of the writes refused with 409 because their resourceVersion was stale."""
    _builtin_reactions: int = attrs.field(default=0, init=False)
    _index: dict[tuple[Any, str | None], list[tuple[Any, str | None, str]]] = attrs.field(
        factory=dict, init=False
    )
    _indexed: int = attrs.field(default=0, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin_reactions = len(self._payloads)
        self.resources.load_bundled()
        self.resources[LATENCYSLOS] = kmock.ResourceInfo(
            kind=KIND,
            singular=KIND.lower(),
            namespaced=True,
            verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
            shortnames=set(SHORT_NAMES),
            subresources={"status"},
        )

    # ------------------------------------------------------------------ helpers for tests

    def next_rv(self) -> str:
        return str(next(self._revision))

    def put_object(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Store an object directly (test set-up), with server-assigned metadata."""
        obj = copy.deepcopy(dict(body))
        meta = obj.setdefault("metadata", {})
        self._stamp_new(meta)
        namespace = meta.get("namespace")
        self.objects[resource, namespace, meta["name"]] = obj
        return obj

    @staticmethod
    def path(resource: str, namespace: str | None, name: str | None = None) -> str:
        res = kmock.resource(resource)
        base = f"/api/{res.version}" if not res.group else f"/apis/{res.group}/{res.version}"
        if namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{res.plural}"
        return f"{base}/{name}" if name else base

    async def create(self, resource: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Create an object through the API, as kubectl would (watchers see it)."""
        namespace = body.get("metadata", {}).get("namespace")
        async with self.post(self.path(resource, namespace), json=dict(body)) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise AssertionError(f"create {resource} failed: {resp.status} {data}")
            return dict(data)

    async def patch_object(
        self,
        resource: str,
        namespace: str | None,
        name: str,
        patch: Mapping[str, Any],
        subresource: str | None = None,
    ) -> dict[str, Any]:
        path = self.path(resource, namespace, name) + (f"/{subresource}" if subresource else "")
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.patch(path, data=json.dumps(dict(patch)), headers=headers) as resp:
            data = await resp.json()
            if resp.status >= 300:
                raise AssertionError(f"patch {resource} {name} failed: {resp.status} {data}")
            return dict(data)

    async def delete_object(self, resource: str, namespace: str | None, name: str) -> None:
        async with self.delete(self.path(resource, namespace, name)) as resp:
            if resp.status >= 300:
                raise AssertionError(f"delete {resource} {name} failed: {resp.status}")

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object as a plain dict, or None when absent or deleted."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects:
            return None
        obj = self.objects[key]
        return None if obj.deleted else _copy(obj.raw)

    def versions(self, resource: str, namespace: str | None, name: str) -> list[dict[str, Any]]:
        """Every stored version of an object, oldest first (deletions left out)."""
        key = (kmock.resource(resource), namespace, name)
        if key not in self.objects:
            return []
        return [_copy(v.raw) for v in self.objects[key].history if v is not None]

    def items(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        res = kmock.resource(resource)
        return [
            _copy(obj.raw)
            for (r, ns, _), obj in self.objects.items()
            if r == res and (namespace is None or ns == namespace) and not obj.deleted
        ]

    def writes(
        self, path_part: str = "", methods: Iterable[str] = ("POST", "PUT", "PATCH")
    ) -> list:
        """Mutating requests seen so far whose path contains `path_part`."""
        wanted = {m.upper() for m in methods}
        return [r for r in self if r.method.value in wanted and path_part in r.url.path]

    async def publish(self, resource: kmock.resource, event_type: str, raw: dict) -> None:
        await self._buses[resource].put({"type": event_type, "object": _copy(raw)})

    # ------------------------------------------------------------------ request handling

    def _stamp_new(self, meta: dict[str, Any]) -> None:
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = self.next_rv()
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp", _now_iso())

    def _has_status_subresource(self, resource: kmock.resource) -> bool:
        if resource in self.resources:
            return "status" in self.resources[resource].subresources
        return False

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        # kmock 0.8 cannot parse the cluster-scoped `/api/v1/namespaces` path: serve it here,
        # from the namespaces the stored objects live in (a watch stays open, silent).
        if raw_request.path.rstrip("/") == "/api/v1/namespaces":
            await raw_request.read()
            if raw_request.query.get("watch") == "true":
                response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
                await response.prepare(raw_request)
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await asyncio.sleep(float(raw_request.query.get("timeoutSeconds", 60)))
                return response
            names = sorted({ns for (_, ns, _), _ in self.objects.items() if ns} | {"default"})
            return aiohttp.web.json_response(
                {
                    "apiVersion": "v1",
                    "kind": "NamespaceList",
                    "metadata": {"resourceVersion": self.next_rv()},
                    "items": [
                        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
                        for n in names
                    ],
                }
            )
        return await super().__call__(raw_request)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        try:
            return await self._serve(request)
        finally:
            if not self.keep_requests:
                self._forget(request)

    def _forget(self, request: rendering.Request) -> None:
        requests = self._requests
        for i in range(len(requests) - 1, -1, -1):
            if requests[i] is request:
                del requests[i]
                return

    def _direct(self) -> bool:
        """No reaction was added: get, list and create are served without kmock's matching."""
        return len(self._payloads) == self._builtin_reactions

    def _keys(self, resource: Any, namespace: str | None) -> list[tuple[Any, str | None, str]]:
        """Keys of the stored objects of `resource` in `namespace` (None: every namespace).
        Objects are never removed from kmock's store (deletion is a version), only added, so
        the index is extended with the keys added since it was last read."""
        if len(self.objects) != self._indexed:
            for key in itertools.islice(self.objects.keys(), self._indexed, None):
                self._index.setdefault((key[0], key[1]), []).append(key)
                self._index.setdefault((key[0], None), []).append(key)
            self._indexed = len(self.objects)
        return self._index.get((resource, namespace), [])

    async def _serve(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        for hook in list(self.hooks):
            await hook(request)
        if request.resource is None:
            return await super()._handle(request)
        method = request.method.value
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            async with self._write_lock:
                response = await self._handle_write(request)
            for hook in list(self.after_hooks):
                await hook(request)
            return response
        if request.subresource == "scale" and method == "GET":
            obj = self._find(request)
            if obj is None:
                return _error(404, "NotFound", f"{request.name} not found")
            return aiohttp.web.json_response(self._scale_view(obj))
        if self._direct() and request.subresource is None:
            if request.action == enums.action.FETCH:
                key = (request.resource, request.namespace, request.name)
                if key not in self.objects or self.objects[key].deleted:
                    plural = request.resource.plural
                    return _error(404, "NotFound", f'{plural} "{request.name}" not found')
                return aiohttp.web.json_response(self.objects[key].raw)
            if request.action == enums.action.LIST:
                keys = self._keys(request.resource, request.namespace)
                if keys:
                    return aiohttp.web.json_response(self._list(request, keys))
        return await super()._handle(request)

    def _list(
        self, request: rendering.Request, keys: list[tuple[Any, str | None, str]]
    ) -> dict[str, Any]:
        selector = request.params.get("labelSelector")
        items = []
        for key in keys:
            obj = self.objects[key]
            if obj.deleted:
                continue
            raw = obj.raw
            if selector and not selector_matches(
                selector, raw.get("metadata", {}).get("labels") or {}
            ):
                continue
            items.append(raw)
        return {"metadata": {"resourceVersion": self.next_rv()}, "items": items}

    async def _create(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """What kmock does for a create (store, publish ADDED, answer the object), directly."""
        assert request.resource is not None
        meta = request.data["metadata"]
        key = (request.resource, meta.get("namespace"), meta["name"])
        async with self._lock:
            if key not in self.objects:
                self.objects[key] = request.data
            else:
                self.objects[key].create(request.data)
            raw = self.objects[key].raw
            await self._buses[request.resource].put({"type": "ADDED", "object": raw})
        return aiohttp.web.json_response(raw)

    async def _handle_write(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        method = request.method.value
        if method == "POST" and request.name is None:
            if not isinstance(request.data, dict):
                return _error(400, "BadRequest", "create needs a JSON object")
            # kmock's filters know requests by identity: stamp the parsed body in place.
            meta = request.data.setdefault("metadata", {})
            if request.namespace:
                meta.setdefault("namespace", request.namespace)
            self._stamp_new(meta)
            if self._find(request, name=meta["name"], namespace=meta.get("namespace")):
                return _error(409, "AlreadyExists", f"{meta['name']} already exists")
            if self._direct() and request.subresource is None:
                return await self._create(request)
            return await super()._handle(request)
        if method in ("PUT", "PATCH") and request.name is not None:
            return await self._update(request)
        if method == "DELETE" and request.name is not None:
            victim = self._find(request)
            response = await super()._handle(request)
            if victim is not None and self._find(request) is None:
                await self._collect_garbage(victim["metadata"].get("uid"))
            return response
        return await super()._handle(request)

    def _find(
        self,
        request: rendering.Request,
        *,
        name: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any] | None:
        assert request.resource is not None
        key = (request.resource, namespace or request.namespace, name or request.name)
        if key not in self.objects or self.objects[key].deleted:
            return None
        return _copy(self.objects[key].raw)

    def _scale_view(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        match_labels = obj.get("spec", {}).get("selector", {}).get("matchLabels", {})
        return {
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": {
                k: meta[k]
                for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                if k in meta
            },
            "spec": {"replicas": obj.get("spec", {}).get("replicas", 1)},
            "status": {
                "replicas": obj.get("status", {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in sorted(match_labels.items())),
            },
        }

    async def _update(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        assert request.resource is not None
        assert request.name is not None
        current = self._find(request)
        if current is None:
            return _error(404, "NotFound", f"{request.resource.plural} {request.name} not found")
        body = request.data
        sub = request.subresource
        method = request.method.value

        # The body as the API server sees it for this subresource.
        if sub == "scale":
            view = self._scale_view(current)
            new_view = self._apply_body(view, body, method)
            if isinstance(new_view, aiohttp.web.Response):
                return new_view
            candidate = _copy(current)
            candidate.setdefault("spec", {})["replicas"] = int(new_view["spec"]["replicas"])
            precondition = (
                (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
        else:
            candidate = self._apply_body(current, body, method)
            if isinstance(candidate, aiohttp.web.Response):
                return candidate
            precondition = (
                (body.get("metadata") or {}).get("resourceVersion")
                if isinstance(body, dict)
                else None
            )
            if self._has_status_subresource(request.resource):
                if sub == "status":
                    candidate = {**_copy(current), "status": candidate.get("status")}
                    if candidate["status"] is None:
                        del candidate["status"]
                elif sub is None:
                    if "status" in current:
                        candidate["status"] = _copy(current["status"])
                    else:
                        candidate.pop("status", None)

        if precondition is not None and precondition != current["metadata"]["resourceVersion"]:
            self.conflicts.append(str(request.url.path))
            return _error(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {request.resource.plural} "{request.name}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )

        # Server-owned metadata cannot be changed by clients.
        meta = candidate.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "name", "namespace", "generation"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
        if candidate.get("spec") != current.get("spec"):
            meta["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if (
            self.ready_deployments
            and request.resource == kmock.resource(DEPLOYMENTS)
            and candidate.get("spec", {}).get("replicas") != current.get("spec", {}).get("replicas")
        ):
            replicas = candidate["spec"]["replicas"]
            candidate.setdefault("status", {}).update(
                replicas=replicas, readyReplicas=replicas, availableReplicas=replicas
            )
        meta["resourceVersion"] = self.next_rv()

        key = (request.resource, request.namespace, request.name)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            async with self._lock:
                self.objects[key].create(candidate)
                self.objects[key].delete()
            await self.publish(request.resource, "DELETED", candidate)
            await self._collect_garbage(meta.get("uid"))
        else:
            async with self._lock:
                self.objects[key].create(candidate)
            await self.publish(request.resource, "MODIFIED", candidate)
        result = self._scale_view(candidate) if sub == "scale" else candidate
        return aiohttp.web.json_response(result)

    @staticmethod
    def _apply_body(
        current: dict[str, Any], body: Any, method: str
    ) -> dict[str, Any] | aiohttp.web.Response:
        if method == "PUT":
            if not isinstance(body, dict):
                return _error(400, "BadRequest", "PUT needs a JSON object")
            return _copy(body)
        if isinstance(body, list):
            try:
                return jsonpatch.apply_patch(_copy(current), body)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                # The API server answers a failed JSON-patch `test` with 422 (or 409 for rv).
                return _error(422, "Invalid", f"JSON patch failed: {exc}")
        if isinstance(body, dict):
            return dict(kmock_dicts.patch_dict(_copy(current), body))
        return _error(400, "BadRequest", "unsupported patch body")

    async def _collect_garbage(self, owner_uid: str | None) -> None:
        """Background cascading deletion: remove dependents of a deleted owner."""
        if not owner_uid:
            return
        for (resource, _namespace, _name), obj in list(self.objects.items()):
            if obj.deleted:
                continue
            refs = obj.raw.get("metadata", {}).get("ownerReferences", [])
            if any(ref.get("uid") == owner_uid for ref in refs):
                raw = _copy(obj.raw)
                async with self._lock:
                    obj.delete()
                await self.publish(resource, "DELETED", raw)
                await self._collect_garbage(raw.get("metadata", {}).get("uid"))

    async def _serve_list(self, request: rendering.Request) -> rendering.Payload:
        result = await super()._serve_list(request)
        assert isinstance(result, dict)
        selector = request.params.get("labelSelector")
        if selector:
            result["items"] = [
                item
                for item in result["items"]
                if selector_matches(selector, item.get("metadata", {}).get("labels") or {})
            ]
        result["metadata"] = {"resourceVersion": str(next(self._revision))}
        return result


# ---------------------------------------------------------------------- object builders


def deployment(
    namespace: str,
    name: str,
    *,
    replicas: int = 2,
    labels: Mapping[str, str] | None = None,
    admin_port: int = 8081,
) -> dict[str, Any]:
    labels = dict(labels or {"app": name})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "worker",
                            "image": "latencyslo-worker:test",
                            "ports": [
                                {"name": "http", "containerPort": 8080},
                                {"name": "admin", "containerPort": admin_port},
                            ],
                        }
                    ]
                },
            },
        },
        "status": {
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def pod(
    namespace: str,
    name: str,
    *,
    labels: Mapping[str, str],
    admin_port: int,
    ready: bool = True,
    ip: str = "127.0.0.1",
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "containers": [
                {
                    "name": "worker",
                    "image": "latencyslo-worker:test",
                    "ports": [
                        {"name": "http", "containerPort": 8080},
                        {"name": "admin", "containerPort": admin_port},
                    ],
                }
            ]
        },
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def secret(namespace: str, name: str, token: str) -> dict[str, Any]:
    import base64

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def hpa(namespace: str, name: str, target: str) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 4,
        },
    }


def latencyslo(
    namespace: str, name: str, spec: Mapping[str, Any], *, created: str | None = None
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if created:
        meta["creationTimestamp"] = created
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": meta,
        "spec": copy.deepcopy(dict(spec)),
    }


def events_for(kube: KubeEmulator, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events posted about the LatencySLO `name`, oldest first."""
    found = [
        e
        for e in kube.items(EVENTS, namespace)
        if e.get("involvedObject", {}).get("name") == name
        and e.get("involvedObject", {}).get("kind") == KIND
    ]
    return sorted(found, key=lambda e: int(e["metadata"]["resourceVersion"]))


async def wait_for(
    predicate: Callable[[], Any], *, within: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `predicate` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(interval)


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str)
