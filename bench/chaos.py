"""Chaos on the operator: `kill -9` in the middle of a change, again and again.

`python bench/chaos.py --rounds 50 --json FILE` runs `latencyslo operator` (the real command,
its own process) against the emulated API server (tests/support/kube.py), a scripted
Prometheus in breach (p99 400 ms at 300 req/s against 150 ms: the change is a scale 2 -> 5)
and two pods' admin endpoints. Each round:

1. the Deployment is set back to 2 replicas (as another writer would), so a change is due;
2. the operator's scale write is held by the API server, alternately *before* it is applied
   (the request dies with the process) and *after* it is applied (the answer never arrives);
3. the operator is killed with SIGKILL while the write is held, and started again;
4. the round ends when the Deployment has 5 replicas and no change is pending.

Counted: scale writes that landed per round (exactly one move 2 -> 5 is right), double actions
(a landed scale write that repeats the replicas in force, or goes past 5), rounds that did not
converge, changes left pending, and the time from the kill to convergence.

Killing a worker mid-batch under load and restarting Prometheus under the same load:
`bench/local_chaos.py` (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO), str(REPO / "local")]

import kmock  # noqa: E402

from tests.integration.operator.conftest import (  # noqa: E402
    DEPLOYMENT,
    NAMESPACE,
    PROFILES,
    AdminPod,
    FakePrometheus,
    seed_workload,
    slo_spec,
)
from tests.integration.operator.test_failures import operator_process  # noqa: E402
from tests.support import kube as kb  # noqa: E402

NAME = "sentiment"


def _status(kube: kb.KubeEmulator) -> dict[str, Any]:
    return dict((kube.get(kb.LATENCYSLOS, NAMESPACE, NAME) or {}).get("status") or {})


def _replicas(kube: kb.KubeEmulator) -> int:
    return int((kube.get(kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT) or {})["spec"]["replicas"])


async def campaign(rounds: int, workdir: Path, within_s: float) -> dict[str, Any]:
    profiles = workdir / "profiles.json"
    PROFILES.save(profiles)
    results: list[dict[str, Any]] = []
    async with kb.KubeEmulator(keep_requests=False) as kube, kmock.Server(kube):
        prometheus = FakePrometheus()
        await prometheus.start()
        pods = [AdminPod(f"{DEPLOYMENT}-{i}") for i in range(2)]
        for pod in pods:
            await pod.start()
        await seed_workload(kube, pods)
        prometheus.set(p99_ms=400, rate=300)
        await kube.create(kb.LATENCYSLOS, kb.latencyslo(NAMESPACE, NAME, slo_spec()))
        state: dict[str, Any] = {"armed": False, "landed": False}
        reached = asyncio.Event()
        release = asyncio.Event()
        landed_writes: list[tuple[int, int, int]] = []  # (round, replicas before, after)

        def is_scale(request: Any) -> bool:
            agent = request.headers.get("User-Agent", "")
            return (
                request.url.path.endswith("/scale")
                and request.method.value == "PUT"
                and not agent.startswith("kmock/")
            )

        async def before(request: Any) -> None:
            if is_scale(request):
                state["before_write"] = _replicas(kube)
                if state["armed"] and not state["landed"]:
                    state["armed"] = False
                    reached.set()
                    await release.wait()

        async def after(request: Any) -> None:
            if is_scale(request):
                landed_writes.append(
                    (state["round"], state.pop("before_write", -1), _replicas(kube))
                )
                if state["armed"] and state["landed"]:
                    state["armed"] = False
                    reached.set()
                    await release.wait()

        kube.hooks.append(before)
        kube.after_hooks.append(after)
        proc_cm = operator_process(kube, prometheus.url, profiles, workdir, "0")
        proc = await proc_cm.__aenter__()
        try:
            for n in range(rounds):
                state.update(round=n, landed=bool(n % 2), armed=True)
                reached.clear()
                release.clear()
                await kube.patch_object(
                    kb.DEPLOYMENTS, NAMESPACE, DEPLOYMENT, {"spec": {"replicas": 2}}
                )
                await kb.wait_for(reached.is_set, within=within_s, what="the scale write")
                proc.send_signal(signal.SIGKILL)
                await proc.wait()
                killed = time.monotonic()
                release.set()
                await proc_cm.__aexit__(None, None, None)
                proc_cm = operator_process(kube, prometheus.url, profiles, workdir, str(n + 1))
                proc = await proc_cm.__aenter__()
                converged: float | None = None
                try:
                    await kb.wait_for(
                        lambda: _replicas(kube) == 5 and not _status(kube).get("pending"),
                        within=within_s,
                        what="convergence",
                    )
                    converged = time.monotonic() - killed
                except AssertionError:
                    pass
                moves = [(b, a) for r, b, a in landed_writes if r == n]
                results.append(
                    {
                        "round": n,
                        "killed": "after the write" if n % 2 else "before the write",
                        "landed_scale_writes": moves,
                        "kill_to_converged_s": round(converged, 2) if converged else None,
                        "pending_left": bool(_status(kube).get("pending")),
                    }
                )
                print(json.dumps(results[-1]), flush=True)
        finally:
            await proc_cm.__aexit__(None, None, None)
            for pod in pods:
                await pod.stop()
            await prometheus.stop()
    doubles = [
        (r["round"], b, a)
        for r in results
        for b, a in r["landed_scale_writes"]
        if a == b or a > 5 or len(r["landed_scale_writes"]) > 1
    ]
    times = [r["kill_to_converged_s"] for r in results if r["kill_to_converged_s"] is not None]
    return {
        "rounds": len(results),
        "kills": len(results),
        "double_actions": len(doubles),
        "double_action_rounds": doubles,
        "not_converged": sum(r["kill_to_converged_s"] is None for r in results),
        "pending_left": sum(r["pending_left"] for r in results),
        "kill_to_converged_s": {
            "median": statistics.median(times) if times else None,
            "max": max(times) if times else None,
        },
        "per_round": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--within-s", type=float, default=60.0, help="per wait")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with open("/proc/loadavg") as fh:
        load_start = fh.read().split()[:3]
    with tempfile.TemporaryDirectory() as tmp:
        report = asyncio.run(campaign(args.rounds, Path(tmp), args.within_s))
    with open("/proc/loadavg") as fh:
        report = {"load_average_start": load_start, "load_average_end": fh.read().split()[:3]} | (
            report
        )
    report["command"] = " ".join(["python", "bench/chaos.py", *(argv or sys.argv[1:])])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{report['rounds']} kills, {report['double_actions']} double actions, "
        f"{report['not_converged']} not converged, {report['pending_left']} left pending"
    )
    bad = report["double_actions"] or report["not_converged"] or report["pending_left"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
