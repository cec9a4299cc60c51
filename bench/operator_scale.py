"""How the operator's cost grows with the number of LatencySLOs.

`python bench/operator_scale.py --objects N --json FILE` runs the real operator (the
`latencyslo operator` command: kopf, the real control loop, batched Prometheus observation)
as its own process against the emulated API server (tests/support/kube.py) holding N
Deployments (two Ready pods each, their admin ports answered by one stand-in) and N
LatencySLOs spread over about sqrt(N) namespaces, and a real Prometheus scraping a synthetic
exporter that serves N targets' latency histograms with known p99s: one target in five is over
its 150 ms objective (p99 300 ms at 2 replicas, falling as 1/replicas, so the operator acts and
then settles); the others scale down to one replica after a 60 s stabilization.

Figures (JSON): Prometheus queries per interval (the operator's own counter), step start lag
(from its `latencyslo_operator_step_start_lag_seconds` histogram, interpolated within buckets;
max = the upper edge of the highest bucket used), the share of first decisions equal to the
decision the same controller takes for that object alone (a fresh `ControlLoop` fed by
per-object PromQL at the decision's instant and the configuration the operator saw), API
writes per interval in the steady window, operator CPU seconds per interval (/proc) and RSS.
`--plot PNG FILE...` draws each figure against N, log-log, from result files.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import itertools
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO), str(REPO / "local")]

import aiohttp.web as web  # noqa: E402
import httpx  # noqa: E402
import kmock  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from slo_local.promserver import PrometheusServer, free_port  # noqa: E402
from slo_operator.api_status import ConfigSnapshot  # noqa: E402
from slo_operator.loop import ControlLoop  # noqa: E402
from slo_operator.metrics.prometheus import PrometheusSource  # noqa: E402
from slo_operator.policy import OperatorLimits  # noqa: E402
from slo_operator.run import load_profiles  # noqa: E402
from slo_operator.status import config_of  # noqa: E402
from slo_operator.types import ApplyResult, RuntimeConfig  # noqa: E402
from tests.support import kube as kb  # noqa: E402
from tests.support.synthetic import SyntheticExporter, Target, scrape_config  # noqa: E402

TOKEN = "bench-token"
KINDS = ("status", "scale", "events", "configmaps", "deployments", "latencyslos", "pods")
TARGET_MS = 150
SCRAPE_S = 5.0


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def namespaces_for(n: int) -> int:
    return max(1, min(50, math.ceil(math.sqrt(n))))


def slo_spec(deployment: str, interval_s: int) -> dict[str, Any]:
    return {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
        "objective": {"percentile": 99, "latencyMs": TARGET_MS, "windowSeconds": 30},
        "replicas": {"min": 1, "max": 8},
        "batching": {"minWindowMs": 0, "maxWindowMs": 50, "maxBatchSize": 32},
        # a scale-down after 60 s, not 300 s: the scale-downs of the targets under their
        # objective (and the relearning after them) are over before the steady window
        "policy": {
            "mode": "Enforce",
            "intervalSeconds": interval_s,
            "scaleDownStabilizationSeconds": 60,
        },
    }


class AdminStandIn:
    """Every pod's admin API (one port, bearer token), counting pushes."""

    def __init__(self) -> None:
        self.pushes = 0
        self.config = {"variant": "full", "batchWindowMs": 0, "maxBatchSize": 32}
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if request.method == "PUT":
            self.pushes += 1
            return web.json_response({**self.config, **(await request.json())})
        return web.json_response(self.config)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/admin/config", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class OneObject:
    """An actuator for the reference decision: the configuration the operator saw."""

    def __init__(self, config: RuntimeConfig, ready: int) -> None:
        self.config, self.ready = config, ready

    async def read(self) -> tuple[RuntimeConfig, int]:
        return self.config, self.ready

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        return ApplyResult(replicas_set=True, config_written=True)


def scrape_operator(port: int) -> dict[str, Any]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    out: dict[str, Any] = {"lag": {}, "queries": 0.0, "lag_count": 0.0}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "latencyslo_operator_prometheus_queries_total":
                out["queries"] = s.value
            elif s.name == "latencyslo_operator_step_start_lag_seconds_bucket":
                out["lag"][float(s.labels["le"])] = s.value
            elif s.name == "latencyslo_operator_step_start_lag_seconds_count":
                out["lag_count"] = s.value
    return out


def lag_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    """p50, p95 and max of the lag from the histogram's buckets (linear within a bucket). A
    quantile or max beyond the highest finite bucket is not a figure: it is reported as None
    with `over_top_bucket` (how many steps were later than `top_bucket_s`), never as that
    edge (a saturated histogram once read as a lag of exactly 30 s)."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1] if counts else 0.0
    top_edge = max((e for e in edges if math.isfinite(e)), default=math.inf)
    finite = [c for e, c in zip(edges, counts, strict=True) if math.isfinite(e)]
    over = int(total - (finite[-1] if finite else 0.0))
    if total <= 0:
        return {"p50": None, "p95": None, "max": None, "steps": 0, "over_top_bucket": 0}

    def quantile(q: float) -> float | None:
        rank = q * total
        lower, below = 0.0, 0.0
        for edge, cum in zip(edges, counts, strict=True):
            if cum >= rank:
                if math.isinf(edge):
                    return None
                return round(lower + (edge - lower) * (rank - below) / max(cum - below, 1e-12), 4)
            lower, below = edge, cum
        return None

    used = [e for e, c, prev in zip(edges, counts, [0.0, *counts], strict=False) if c > prev]
    top = used[-1] if used else 0.0
    return {
        "p50": quantile(0.5),
        "p95": quantile(0.95),
        "max": top if math.isfinite(top) else None,
        "steps": int(total),
        "over_top_bucket": over,
        "top_bucket_s": top_edge,
    }


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Leaf paths whose value differs between two versions of a JSON document (the controller
    memory annotation, itself JSON, is compared inside)."""
    if isinstance(old, str) and isinstance(new, str) and prefix.endswith("controller-state"):
        with contextlib.suppress(ValueError):
            old, new = json.loads(old), json.loads(new)
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new)):
            out += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            out += changed_paths(a, b, f"{prefix}[{i}]")
        return out
    return [] if old == new else [prefix]


def what_changed(kube: kb.KubeEmulator, objects: list[tuple[str, str, str]], since: int) -> Any:
    """For the LatencySLO writes after resourceVersion `since`: how often each field changed."""
    counts: dict[str, int] = {}
    examples: dict[str, list[Any]] = {}
    for namespace, name, _ in objects:
        versions = kube.versions(kb.LATENCYSLOS, namespace, name)
        for old, new in itertools.pairwise(versions):
            if int(new["metadata"]["resourceVersion"]) <= since:
                continue
            for path in changed_paths(old, new):
                if path != "metadata.resourceVersion":
                    counts[path] = counts.get(path, 0) + 1
                    if len(examples.setdefault(path, [])) < 4:
                        examples[path].append([f"{namespace}/{name}", value_at(old, path)])
                        examples[path].append([f"{namespace}/{name}", value_at(new, path)])
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:25]
    return {path: {"writes": n, "values": examples[path]} for path, n in top}


def value_at(doc: Any, path: str) -> Any:
    """The value at a path of `changed_paths` (the controller memory decoded)."""
    state = "latencyslo.io/controller-state"
    parts = path.replace(state, "\0").replace("[", ".[").split(".")
    for part in (p.replace("\0", state) for p in parts):
        if isinstance(doc, str):
            with contextlib.suppress(ValueError):
                doc = json.loads(doc)
        if part.startswith("["):
            index = int(part.strip("[]"))
            doc = doc[index] if isinstance(doc, list) and index < len(doc) else None
        elif isinstance(doc, dict):
            doc = doc.get(part)
        else:
            return None
    return doc


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def reference_decisions(
    kube: kb.KubeEmulator,
    objects: list[tuple[str, str, str]],
    prometheus_url: str,
    interval_s: int,
    sample: int,
    scrape_s: float,
) -> dict[str, Any]:
    """Each sampled object's first decision by the operator vs. the same controller alone."""
    baseline = load_profiles(None)
    chosen = objects if len(objects) <= sample else random.Random(0).sample(objects, sample)
    equal, checked, differences = 0, 0, []
    for namespace, name, deployment in chosen:
        first = None
        for version in kube.versions(kb.LATENCYSLOS, namespace, name):
            decision = (version.get("status") or {}).get("lastDecision")
            if decision and decision.get("from"):
                first = decision
                break
        if first is None:
            continue
        was = ConfigSnapshot.model_validate(first["from"])
        config = config_of(was, 32)
        source = PrometheusSource(prometheus_url, timeout_s=10.0, target=("deployment", deployment))
        loop = ControlLoop(
            name=name,
            namespace=namespace,
            metrics=source,
            actuator=OneObject(config, was.replicas),
            profiles=baseline,
            limits=OperatorLimits(max_replicas=32, max_data_age_s=60.0, scrape_interval_s=scrape_s),
        )
        at = time.mktime(time.strptime(first["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        result = await loop.step(slo_spec(deployment, interval_s), now=at)
        await source.aclose()
        checked += 1
        mine = result.status.last_decision
        want = (
            mine.action.value if mine else "Hold",
            mine.to.model_dump() if mine and mine.to else None,
        )
        got_to = first.get("to")  # read as the status is written: one form on both sides
        got = (
            first["action"],
            ConfigSnapshot.model_validate(got_to).model_dump() if got_to else None,
        )
        if got == want:
            equal += 1
        elif len(differences) < 5:
            differences.append({"object": f"{namespace}/{name}", "operator": got, "alone": want})
    return {"checked": checked, "equal": equal, "differences": differences}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, interval = args.objects, args.interval
    load_at_start = list(os.getloadavg())
    k = namespaces_for(n)
    objects = [(f"team-{i % k:02d}", f"slo-{i:04d}", f"svc-{i:04d}") for i in range(n)]
    over = {d for i, (_, _, d) in enumerate(objects) if i % 5 == 0}
    replicas: dict[tuple[str, str], int] = {}
    admin = AdminStandIn()
    await admin.start()
    targets = [Target(ns, d, 0.300 if d in over else 0.060, rate=20.0) for ns, _, d in objects]

    def factor(namespace: str, deployment: str) -> float:
        return 2.0 / max(1, replicas.get((namespace, deployment), 2))

    exporter = SyntheticExporter(targets, factor=factor).start()
    prom = PrometheusServer(
        scrape_interval_s=SCRAPE_S, extra_scrape_configs=[scrape_config(exporter.address, SCRAPE_S)]
    )
    prom.start()
    assert prom._proc is not None
    prom_pid = prom._proc.pid
    workdir = Path(prom.workdir)
    proc = None
    profiler = cProfile.Profile() if args.profile else None
    try:
        async with kb.KubeEmulator(keep_requests=False) as kube, kmock.Server(kube):
            for ns in sorted({o[0] for o in objects}):
                await kube.create(kb.SECRETS, kb.secret(ns, "latencyslo-admin-token", TOKEN))
            for ns, name, dep in objects:
                labels = {"app": dep}
                await kube.create(kb.DEPLOYMENTS, kb.deployment(ns, dep, replicas=2, labels=labels))
                for p in range(2):
                    pod = kb.pod(ns, f"{dep}-{p}", labels=labels, admin_port=admin.port)
                    await kube.create(kb.PODS, pod)
                await kube.create(kb.LATENCYSLOS, kb.latencyslo(ns, name, slo_spec(dep, interval)))

            writes: dict[str, int] = {}

            async def count_write(request: Any) -> None:
                parts = request.url.path.strip("/").split("/")
                kind = f"{request.method.value} " + "/".join(p for p in parts if p in KINDS)
                writes[kind] = writes.get(kind, 0) + 1

            kube.after_hooks.append(count_write)

            async def track_replicas() -> None:
                while True:
                    for ns, _, dep in objects:
                        obj = kube.objects.get((kmock.resource(kb.DEPLOYMENTS), ns, dep))
                        if obj is not None:
                            replicas[(ns, dep)] = int(obj.raw["spec"]["replicas"])
                    await asyncio.sleep(1.0)

            tracker = asyncio.create_task(track_replicas())
            say(f"seeded {n} objects in {k} namespaces")
            # a full window of data in Prometheus before the first step
            await asyncio.sleep(30 + 2 * SCRAPE_S)
            metrics_port = free_port()
            kubeconfig = workdir / "kubeconfig"
            kubeconfig.write_text(
                json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [
                            {"name": "k", "cluster": {"server": str(kube.url).rstrip("/")}}
                        ],
                        "users": [{"name": "u", "user": {"token": "t"}}],
                        "contexts": [{"name": "k", "context": {"cluster": "k", "user": "u"}}],
                        "current-context": "k",
                    }
                )
            )
            env = {
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), str(REPO)]),
                "LATENCYSLO_NAMESPACES": ",".join(sorted({o[0] for o in objects})),
            }
            env.pop("KUBERNETES_SERVICE_HOST", None)
            log = (workdir / "operator.log").open("wb")
            profile = (
                ["-m", "cProfile", "-o", f"{args.profile}/operator.prof"] if args.profile else []
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable, *profile, "-m", "slo_operator.cli", "operator", "--standalone",
                "--prometheus-url", prom.url, "--metrics-port", str(metrics_port),
                "--liveness", "", "--scrape-interval", str(args.scrape_interval),
                *args.operator_args,
                cwd=REPO, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            started = time.monotonic()
            say("operator started")
            while True:
                done = sum(
                    1
                    for ns, name, _ in objects
                    if ((kube.get(kb.LATENCYSLOS, ns, name) or {}).get("status") or {}).get(
                        "observed"
                    )
                )
                if done == n:
                    break
                if proc.returncode is not None or time.monotonic() - started > args.ready_timeout:
                    raise RuntimeError(f"only {done}/{n} LatencySLOs observed; see {workdir}")
                await asyncio.sleep(1.0)
            ready_s = time.monotonic() - started
            say(f"every LatencySLO observed after {ready_s:.0f}s")
            await asyncio.sleep(args.warmup * interval)
            before = await asyncio.to_thread(scrape_operator, metrics_port)
            cpu0, writes0, t0 = cpu_seconds(proc.pid), dict(writes), time.monotonic()
            own0, prom0 = cpu_seconds(os.getpid()), cpu_seconds(prom_pid)
            rv0 = int(kube.next_rv())
            if profiler is not None:
                profiler.enable()
            await asyncio.sleep(args.intervals * interval)
            if profiler is not None:
                profiler.disable()
            after = await asyncio.to_thread(scrape_operator, metrics_port)
            cpu1, writes1, t1 = cpu_seconds(proc.pid), dict(writes), time.monotonic()
            own1, prom1 = cpu_seconds(os.getpid()), cpu_seconds(prom_pid)
            changes = what_changed(kube, objects, rv0)
            kinds = {k: v - writes0.get(k, 0) for k, v in writes1.items() if v > writes0.get(k, 0)}
            rss = rss_mib(proc.pid)
            intervals = (t1 - t0) / interval
            proc.terminate()
            await proc.wait()
            log.close()
            tracker.cancel()
            say("measured; checking decisions")
            reference = await reference_decisions(
                kube, objects, prom.url, interval, args.check, args.scrape_interval
            )
            writes = sum(kinds.values()) / intervals
            return {
                "objects": n,
                "namespaces": k,
                "interval_s": interval,
                "scrape_interval_s": args.scrape_interval,
                "prometheus_queries_per_interval": round(
                    (after["queries"] - before["queries"]) / intervals, 2
                ),
                "step_start_lag_s": lag_quantiles(before["lag"], after["lag"]),
                "decision_correct_share": round(reference["equal"] / reference["checked"], 4)
                if reference["checked"]
                else None,
                "decisions_checked": reference["checked"],
                "decision_differences": reference["differences"],
                "api_writes_per_interval_steady": round(writes, 2),
                "api_writes_per_object_per_interval_steady": round(writes / n, 4),
                "api_writes_steady_by_kind": kinds,
                "operator_cpu_seconds_per_interval": round((cpu1 - cpu0) / intervals, 3),
                "operator_cpu_seconds_per_object_per_interval": round(
                    (cpu1 - cpu0) / intervals / n, 5
                ),
                "operator_rss_mib": round(rss, 1),
                "emulator_cpu_seconds_per_interval": round((own1 - own0) / intervals, 3),
                "prometheus_cpu_seconds_per_interval": round((prom1 - prom0) / intervals, 3),
                "latencyslo_fields_changed_steady": changes,
                "seconds_to_first_step_of_all": round(ready_s, 1),
                "measured_intervals": round(intervals, 2),
                "pod_pushes": admin.pushes,
                "load_average_start": load_at_start,
                "load_average": list(os.getloadavg()),
                "cpus": os.cpu_count(),
            }
    finally:
        if profiler is not None:
            profiler.dump_stats(str(Path(args.profile) / "emulator.prof"))
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        prom.stop()
        exporter.stop()
        await admin.stop()


GOALS_AT_1000 = {
    "Prometheus queries / interval": 20.0,
    "step start lag p95, s": 1.0,
    "API writes / object / interval (steady)": 0.05,
    "CPU s / interval": 3.0,
    "operator RSS, MiB": 500.0,
}
"""The goal for one operator at 1,000 LatencySLOs, 15 s interval, 2 cores (drawn dashed)."""


def plot(out: str, files: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted((json.loads(Path(f).read_text()) for f in files), key=lambda r: r["objects"])
    figures: dict[str, dict[str, Any]] = {
        "Prometheus queries / interval": {
            "queries": lambda r: r["prometheus_queries_per_interval"]
        },
        "step start lag p95, s": {"p95": lambda r: r["step_start_lag_s"]["p95"]},
        "API writes / object / interval (steady)": {
            "writes": lambda r: r["api_writes_per_object_per_interval_steady"]
        },
        "CPU s / interval": {
            "operator": lambda r: r["operator_cpu_seconds_per_interval"],
            "emulated API server": lambda r: r.get("emulator_cpu_seconds_per_interval"),
            "Prometheus": lambda r: r.get("prometheus_cpu_seconds_per_interval"),
        },
        "operator RSS, MiB": {"RSS": lambda r: r["operator_rss_mib"]},
    }
    fig, axes = plt.subplots(1, len(figures), figsize=(4 * len(figures), 3.6))
    xs = [r["objects"] for r in rows]
    floor = 1e-3  # a zero on a log axis is drawn at this value
    for ax, (title, lines) in zip(axes, figures.items(), strict=True):
        for label, get in lines.items():
            points = [(x, get(r)) for x, r in zip(xs, rows, strict=True) if get(r) is not None]
            if points:
                ax.loglog(
                    [x for x, _ in points], [max(y, floor) for _, y in points], "o-", label=label
                )
        goal = GOALS_AT_1000.get(title)
        if goal is not None:  # the issue's goal at 1,000 LatencySLOs, dashed
            ax.axhline(goal, color="grey", linestyle="--", linewidth=1, label="goal")
            low, high = ax.get_ylim()
            ax.set_ylim(min(low, goal / 10), max(high, goal * 2))
        if len(lines) > 1 or goal is not None:
            ax.legend(fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("LatencySLOs")
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--json", help="write the result here")
    parser.add_argument("--interval", type=int, default=15)
    parser.add_argument(
        "--warmup",
        type=float,
        default=16.0,
        help="intervals from every LatencySLO's first step to the steady window: the "
        "scale-downs (60 s stabilization) and the learned correction, written while it moves "
        "by more than 5 %%, settle within about 15 steps",
    )
    parser.add_argument(
        "--intervals",
        type=float,
        default=40.0,
        help="intervals measured (40 at 15 s: one whole status refresh period, 600 s; the "
        "objects' periodic rewrites are spread evenly over their periods, so a whole status "
        "period counts each object's status refresh once and half of the memory checkpoints "
        "(1,200 s) on average)",
    )
    parser.add_argument("--check", type=int, default=300, help="objects' decisions checked")
    parser.add_argument(
        "--scrape-interval",
        type=float,
        default=15.0,
        help="the operator's --scrape-interval (Prometheus scrapes every 5 s here): 15, the "
        "operator's default, leaves no looks between steps; 5 looks every 5 s",
    )
    parser.add_argument("--ready-timeout", type=float, default=900.0)
    parser.add_argument("--profile", metavar="DIR", help="cProfile the operator and emulator")
    parser.add_argument("--plot", nargs="+", metavar=("PNG", "FILE"), help="plot result files")
    parser.add_argument("operator_args", nargs="*", help="after --: extra operator flags")
    args = parser.parse_args()
    if args.plot:
        plot(args.plot[0], args.plot[1:])
        return
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        args.profile = str(Path(args.profile).resolve())
    result = asyncio.run(run(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
