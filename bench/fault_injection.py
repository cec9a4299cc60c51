"""Fault injection on every outbound call of the operator, with figures.

`python bench/fault_injection.py --json FILE` runs the real operator (kopf, the handlers, the
control loop, `KubernetesActuator`, `PrometheusSource`, the pod pushes) in this process against
the emulated API server (tests/support/kube.py), a scripted Prometheus and two pods' admin
endpoints on loopback, once per fault. The workload is in breach from the start (p99 400 ms at
300 req/s against a 150 ms objective: the operator scales 2 -> 5), so every fault meets a
change. A fault is on while the LatencySLO is created and for `--fault-s` seconds (longer for
the held writes), then lifted; the operator then has `--recover-s` seconds to converge.

Faults:

- every **write** of one kind (`scale`: PUT of the Deployment's scale, `configmap`: the runtime
  ConfigMap, `status`: the status subresource, `memory`: the controller-state annotation,
  `events`: Event posts) answered `409`, `422` or `500`, `slow` (served after 2 s), or
  `timeout` (applied, then the answer held past the client's 10 s request timeout);
- **Prometheus** `slow` (each answer after 1.5 s, the query timeout is 1 s), `drip` (one byte
  every 0.3 s), `huge` (a 40 MiB answer, the cap is 16 MiB) and `wrong-typed` (a result that is
  a string, values that are not numbers);
- the **pods' admin ports** `silent` (connections accepted, never answered).

Figures per fault: the operator's writes by kind (made, refused by the fault, landed), the
decisions the status marks applied, the conditions the status went through, peak RSS growth,
and the time to converge. Checked per fault (`violations` lists any breach):

- **nothing applied twice**: no landed scale write sets the replicas already in force and no
  landed ConfigMap write repeats the document it already holds;
- **nothing marked done that was not**: every history entry marked applied that moves replicas
  has a landed scale write to that number, one that moves the batch window or variant a landed
  ConfigMap write of that document;
- **nothing lost**: once the fault is lifted, the change is made (5 replicas), no change is
  left pending, and the status' configuration in force is what the Deployment and the ConfigMap
  hold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO), str(REPO / "local")]

import aiohttp.web as web  # noqa: E402
import kmock  # noqa: E402

from tests.integration.operator.conftest import (  # noqa: E402
    DEPLOYMENT,
    NAMESPACE,
    PROFILES,
    AdminPod,
    FakePrometheus,
    operator_settings,
    running_operator,
    seed_workload,
    slo_spec,
)
from tests.support import kube as kb  # noqa: E402
from tests.support.badpeer import BadPeer  # noqa: E402

NAME = "sentiment"
CONFIGMAP = f"{DEPLOYMENT}-latencyslo"
WRITES = ("scale", "configmap", "status", "memory", "events")
WRITE_FAULTS = ("409", "422", "500", "slow", "timeout")
PROMETHEUS_FAULTS = ("slow", "drip", "huge", "wrong-typed")
SLOW_S = 2.0
HOLD_S = 11.0
"""Longer than the operator's 10 s request timeout for its own API calls."""
STATE_ANNOTATION = "latencyslo.io/controller-state"


@dataclass(frozen=True)
class Fault:
    target: str
    kind: str

    @property
    def name(self) -> str:
        return f"{self.target} {self.kind}"


def all_faults() -> list[Fault]:
    faults = [Fault(w, k) for w in WRITES for k in WRITE_FAULTS]
    faults += [Fault("prometheus", k) for k in PROMETHEUS_FAULTS]
    return [*faults, Fault("pods", "silent")]


def short_faults() -> list[Fault]:
    """The test's selection: each error on the writes that act, and each peer fault once."""
    return [
        Fault("scale", "500"),
        Fault("scale", "409"),
        Fault("configmap", "422"),
        Fault("status", "500"),
        Fault("memory", "409"),
        Fault("events", "500"),
        Fault("prometheus", "drip"),
        Fault("prometheus", "wrong-typed"),
        Fault("pods", "silent"),
    ]


# --------------------------------------------------------------------- the API server


def write_kind(request: Any) -> str | None:
    """Which of the operator's writes a request is (None: a read, or kopf's bookkeeping)."""
    if request.method.value not in ("POST", "PUT", "PATCH") or request.resource is None:
        return None
    if request.headers.get("User-Agent", "").startswith("kmock/"):
        return None  # the scenario's own set-up
    plural, sub = request.resource.plural, request.subresource
    if plural == "deployments" and sub == "scale":
        return "scale"
    if plural == "configmaps":
        return "configmap"
    if plural == "latencyslos" and sub == "status":
        return "status"
    if plural == "latencyslos" and sub is None and STATE_ANNOTATION in json.dumps(request.data):
        return "memory"
    if plural == "events":
        return "events"
    return None


def written_value(kind: str, data: Any) -> Any:
    if not isinstance(data, dict):
        return None
    if kind == "scale":
        return (data.get("spec") or {}).get("replicas")
    if kind == "configmap":
        return (data.get("data") or {}).get("config.json")
    if kind == "status":
        history = (data.get("status") or {}).get("history") or []
        return [entry for entry in history if isinstance(entry, dict) and entry.get("applied")]
    return None


@dataclass
class Write:
    kind: str
    value: Any
    fault: str | None = None
    landed: bool = False


class FaultyKube(kb.KubeEmulator):
    """The emulated API server with a fault on one kind of the operator's writes."""

    fault: Fault | None = None
    log: list[Write]

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.log = []

    async def _serve(self, request: Any) -> web.StreamResponse:
        kind = write_kind(request)
        if kind is None:
            return await super()._serve(request)
        write = Write(kind, written_value(kind, request.data))
        self.log.append(write)
        fault = self.fault
        if fault is not None and fault.target == kind:
            write.fault = fault.kind
            if fault.kind in ("409", "422", "500"):
                reason = {"409": "Conflict", "422": "Invalid", "500": "InternalError"}[fault.kind]
                return kb._error(int(fault.kind), reason, f"injected {fault.kind}")
            if fault.kind == "slow":
                await asyncio.sleep(SLOW_S)
        response = await super()._serve(request)
        write.landed = response.status < 300
        if fault is not None and fault.target == kind and fault.kind == "timeout":
            await asyncio.sleep(HOLD_S)  # applied; the client gives up before the answer
        return response


# --------------------------------------------------------------------- Prometheus


@dataclass
class FaultyPrometheus(FakePrometheus):
    mode: str | None = None

    async def _query(self, request: web.Request) -> web.StreamResponse:
        mode = self.mode
        if mode is None:
            return await super()._query(request)
        if mode == "slow":
            await asyncio.sleep(1.5)
            return await super()._query(request)
        if mode == "wrong-typed":
            await request.read()
            expr = request.query.get("query", "")
            if "histogram_quantile" in expr:
                result: Any = "not a vector"
            else:
                result = [{"metric": {}, "value": [time.time(), {"not": "a number"}]}]
            return web.json_response(
                {"status": "success", "data": {"resultType": "vector", "result": result}}
            )
        if mode == "huge":  # streamed in 1 MiB pieces: this server buffers little of it
            await request.read()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            piece = b",".join([b'{"metric":{"pod":"p"},"value":[1,"0.4"]}'] * 26_000) + b","
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await response.write(b'{"status":"success","data":{"resultType":"vector",')
                await response.write(b'"result":[')
                for _ in range(40):  # about 40 MiB
                    await response.write(piece)
                await response.write(b'{"metric":{},"value":[1,"0.4"]}]}}')
            return response
        if mode == "drip":
            await request.read()
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                for byte in b'{"status":"success","data":{"resultType":"vector","result":[]}}':
                    await response.write(bytes([byte]))
                    await asyncio.sleep(0.3)
            return response
        raise ValueError(f"unknown Prometheus fault {mode!r}")


# --------------------------------------------------------------------- one scenario


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class SilentPod:
    name: str
    port: int


def _config_doc(snapshot: dict[str, Any], size: int | None) -> tuple[Any, ...]:
    return (snapshot.get("batchWindowMs"), size, snapshot.get("variant"))


def check(kube: FaultyKube, status: dict[str, Any], replicas_wanted: int = 5) -> list[str]:
    """The three invariants (module docs): the violations found."""
    violations: list[str] = []
    landed = [w for w in kube.log if w.landed]
    # Nothing applied twice.
    replicas = 2
    for w in (w for w in landed if w.kind == "scale"):
        if w.value == replicas:
            violations.append(f"scale to {w.value} written while already in force")
        replicas = w.value
    document = None
    for w in (w for w in landed if w.kind == "configmap"):
        if w.value == document:
            violations.append("the same ConfigMap document written twice in a row")
        document = w.value
    # Nothing marked done that was not: checked when the status first says so, against the
    # writes landed before it.
    scaled_to: set[Any] = set()
    documents: list[dict[str, Any]] = []
    seen: set[str] = set()
    for w in landed:
        if w.kind == "scale":
            scaled_to.add(w.value)
        elif w.kind == "configmap" and w.value:
            documents.append(json.loads(w.value))
        elif w.kind == "status":
            for entry in w.value or []:
                key = json.dumps(entry, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    violations.extend(_overstated(entry, scaled_to, documents))
    # Nothing lost.
    deployment = kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT) or {}
    in_force = status.get("current") or {}
    if deployment.get("spec", {}).get("replicas") != replicas_wanted:
        violations.append(f"the change was lost: replicas {deployment.get('spec')}")
    if status.get("pending"):
        violations.append("a change is still pending")
    if in_force.get("replicas") != deployment.get("spec", {}).get("replicas"):
        violations.append("status.current.replicas differs from the Deployment")
    cm = kube.get(kb.CONFIGMAPS, NAMESPACE, CONFIGMAP)
    if cm is not None:
        doc = json.loads(cm["data"]["config.json"])
        held = (doc.get("batchWindowMs"), doc.get("maxBatchSize"), doc.get("variant"))
        if held != _config_doc(in_force, in_force.get("maxBatchSize")):
            violations.append(f"status.current {in_force} differs from the ConfigMap {doc}")
    return violations


def _overstated(
    entry: dict[str, Any], scaled_to: set[Any], documents: list[dict[str, Any]]
) -> list[str]:
    """What an applied history entry claims that no landed write did."""
    found = []
    before, after = entry.get("from") or {}, entry.get("to") or {}
    reason = str(entry.get("reason"))[:120]
    if after.get("replicas") != before.get("replicas") and after.get("replicas") not in scaled_to:
        found.append(f"marked applied, never scaled to {after.get('replicas')}: {reason}")
    knobs = ("batchWindowMs", "variant")
    moved = any(after.get(k) != before.get(k) for k in knobs)
    if moved and not any(all(d.get(k) == after.get(k) for k in knobs) for d in documents):
        found.append(f"marked applied, ConfigMap never written: {reason}")
    return found


def _converged(kube: FaultyKube, replicas: int) -> Callable[[], bool]:
    def done() -> bool:
        deployment = kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT) or {}
        obj = kube.get(kb.LATENCYSLOS, NAMESPACE, NAME) or {}
        status = obj.get("status") or {}
        return (
            deployment.get("spec", {}).get("replicas") == replicas
            and not status.get("pending")
            and (status.get("current") or {}).get("replicas") == replicas
        )

    return done


async def run_fault(
    fault: Fault | None, profiles: Path, *, fault_s: float, recover_s: float
) -> dict[str, Any]:
    kube = FaultyKube()
    prometheus = FaultyPrometheus()
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(kube)
        await stack.enter_async_context(kmock.Server(kube))
        await prometheus.start()
        stack.push_async_callback(prometheus.stop)
        if fault is not None and fault.target == "pods":
            peer = await stack.enter_async_context(BadPeer("silent"))
            pods: list[Any] = [SilentPod(f"{DEPLOYMENT}-{i}", peer.port) for i in range(2)]
        else:
            pods = [AdminPod(f"{DEPLOYMENT}-{i}") for i in range(2)]
            for pod in pods:
                await pod.start()
                stack.push_async_callback(pod.stop)
        await seed_workload(kube, pods)
        prometheus.set(p99_ms=400, rate=300)
        if fault is not None and fault.target == "prometheus":
            prometheus.mode = fault.kind
        kube.fault = fault
        wanted = 5
        rss_before = peak_rss_mib()
        started = time.monotonic()
        settings = operator_settings(prometheus.url, profiles)
        async with running_operator(kube, settings):
            await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
            # The fault's time counts from the operator's first write (kopf's start varies).
            with contextlib.suppress(AssertionError):  # wait_for gives up so
                await kb.wait_for(lambda: bool(kube.log), within=15, what="a first write")
            hold = fault is not None and fault.kind in ("timeout", "slow")
            await asyncio.sleep(fault_s + (HOLD_S if hold else 0.0))
            during = len(kube.log)
            kube.fault = None
            prometheus.mode = None
            lifted = time.monotonic()
            converged: float | None = None
            with contextlib.suppress(AssertionError):  # wait_for gives up so
                await kb.wait_for(_converged(kube, wanted), within=recover_s, what="convergence")
                converged = time.monotonic() - lifted
            await asyncio.sleep(1.0)  # a few more steps: nothing may happen twice
        obj = kube.get(kb.LATENCYSLOS, NAMESPACE, NAME) or {}
        status = dict(obj.get("status") or {})
        versions = kube.versions(kb.LATENCYSLOS, NAMESPACE, NAME)
        violations = check(kube, status, wanted)
        conditions = sorted(
            {
                f"{c['type']}={c['status']}/{c['reason']}"
                for v in versions
                for c in (v.get("status") or {}).get("conditions") or []
            }
        )
        applied = {
            json.dumps(e, sort_keys=True)
            for v in versions
            for e in (v.get("status") or {}).get("history") or []
            if e.get("applied")
        }
        writes: dict[str, dict[str, int]] = {}
        for w in kube.log:
            row = writes.setdefault(w.kind, {"made": 0, "faulted": 0, "landed": 0})
            row["made"] += 1
            row["faulted"] += w.fault is not None
            row["landed"] += w.landed
        return {
            "fault": fault.name if fault is not None else "none",
            "writes": dict(sorted(writes.items())),
            "writes_during_fault": during,
            "decisions_marked_applied": len(applied),
            "pod_puts": sum(len(p.puts) for p in pods if isinstance(p, AdminPod)),
            "conditions_seen": conditions,
            "converged_after_s": round(converged, 2) if converged is not None else None,
            "peak_rss_growth_mib": round(max(0.0, peak_rss_mib() - rss_before), 1),
            "seconds": round(time.monotonic() - started, 1),
            "violations": violations,
        }


async def campaign(
    faults: list[Fault], profiles: Path, *, fault_s: float, recover_s: float, echo: bool
) -> list[dict[str, Any]]:
    results = []
    for fault in faults:
        result = await run_fault(fault, profiles, fault_s=fault_s, recover_s=recover_s)
        results.append(result)
        if echo:
            print(json.dumps(result), flush=True)
    return results


def table(report: dict[str, Any]) -> str:
    """The results as the Markdown table of docs/reliability.md."""
    lines = [
        "| fault | writes made (refused by the fault) | landed | decisions marked applied "
        "| conditions off normal | converged after | peak RSS growth | violations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    normal = {
        "Conflict=False/NoConflict",
        "MetricsAvailable=True/MetricsFresh",
        "QualityDegraded=False/PreferredVariant",
        "Ready=True/Reconciling",
        "SLOMet=False/Breached",
    }
    for r in report["faults"]:
        writes = r["writes"].values()
        made = sum(w["made"] for w in writes)
        faulted = sum(w["faulted"] for w in writes)
        landed = sum(w["landed"] for w in writes)
        odd = ", ".join(c for c in r["conditions_seen"] if c not in normal) or "-"
        after = r["converged_after_s"]
        lines.append(
            f"| {r['fault']} | {made} ({faulted}) | {landed} | {r['decisions_marked_applied']} "
            f"| {odd} | {'never' if after is None else f'{after:g} s'} "
            f"| {r['peak_rss_growth_mib']:g} MiB | {len(r['violations'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--fault-s", type=float, default=3.0, help="seconds each fault is on")
    parser.add_argument("--recover-s", type=float, default=15.0, help="seconds to converge")
    parser.add_argument("--short", action="store_true", help="the test's selection of faults")
    parser.add_argument("--only", action="append", default=[], help="faults named 'target kind'")
    parser.add_argument("--render", type=Path, help="print the table of a result file and exit")
    args = parser.parse_args(argv)
    if args.render:
        print(table(json.loads(args.render.read_text())))
        return 0
    faults = short_faults() if args.short else all_faults()
    if args.only:
        faults = [f for f in all_faults() if f.name in args.only]
    import logging
    import tempfile

    logging.basicConfig(level=logging.CRITICAL)
    with open("/proc/loadavg") as fh:
        load_start = fh.read().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        profiles = Path(tmp) / "profiles.json"
        PROFILES.save(profiles)
        results = asyncio.run(
            campaign(faults, profiles, fault_s=args.fault_s, recover_s=args.recover_s, echo=True)
        )
    with open("/proc/loadavg") as fh:
        load_end = fh.read().split()[:3]
    report = {
        "command": " ".join(["python", "bench/fault_injection.py", *(argv or sys.argv[1:])]),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "faults": results,
        "violations": sum(len(r["violations"]) for r in results),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{len(results)} faults, {report['violations']} violations")
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
