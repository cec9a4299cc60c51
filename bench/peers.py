"""The latencyslo worker side by side with LitServe and FastAPI/uvicorn on the same model.

    python bench/peers.py --json out/peers.json [--rounds 3] [--quick]

Every server runs the demo family's `full` variant through the project's own loader
(`inference_worker.variants.LoadedVariant`: the same tokenizer, module and weights), one
torch thread, one server at a time on loopback:

- `latencyslo`: `python -m inference_worker --no-admin --threads 1`, window 0 and 5 ms, and
  window 5 ms with `--frontends N` HTTP processes (`--frontends`, default 2; 0 leaves it out);
- `litserve`: LitServe (`LitAPI` batching up to 32, `batch_timeout` 0 and 5 ms, one inference
  worker, one API server process);
- `fastapi`: FastAPI + uvicorn (uvloop, httptools), a sync endpoint, one forward at a time
  under a lock (one model, one thread: no batching).

LitServe, FastAPI and uvicorn are installed by this script into their own virtual
environment under `${XDG_CACHE_HOME:-~/.cache}/latencyslo/peers-venv`, from PyPI, pinned; a
`.pth` file makes the project's environment (torch, tokenizers, safetensors) visible there, so
no other torch is installed (the script checks that the torch it imports is the project's).

The load generator is Debian's `hey` (`apt-get install hey`), several `hey -c 1 -q R/k`
processes started at evenly staggered offsets, so arrivals are evenly spaced at the rate asked
(not bursts of k); each process is closed-loop, so when the server cannot keep up the achieved
rate falls, and a probe only passes if the achieved rate is at least 95 % of the rate asked.
The first second of each probe is dropped (connection set-up).

Figures per configuration and round:

- `p50_ms_low`: median latency at 10 req/s (hey's response time);
- `cpu_ms_per_request_low`: CPU time of the server's whole process tree during that run,
  divided by the requests answered (includes any polling);
- `max_rps_p99_under_100ms`: the highest rate with p99 < 100 ms, at least 95 % of the rate
  achieved and at most 0.5 % errors: doubling from 40 req/s until a probe fails, then
  bisection;
- `p99_ms_at_80pct`: p99 at 80 % of the latencyslo worker's max of the same round (its best
  configuration);
- `noop_max_rps`: the same search with a no-op model (tokenize + a forward that returns a
  constant + softmax, through the same loader): the serving path's own ceiling.

Rounds are interleaved and the server order is reversed every round; the JSON holds every
probe, the median per configuration, each server at its best configuration (by median max
rate; the no-op ceiling by its best configuration), and ratios latencyslo vs each peer
(`> 1` means latencyslo is better: lower latency and CPU, higher rate). On a shared machine
the absolute figures move with the neighbours' load: read the ratios of one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEER_PACKAGES = ("litserve==0.2.19", "fastapi==0.165.0", "uvicorn[standard]==0.55.0")
P99_BOUND_MS = 100.0
LOW_RATE = 10.0
BODY_TOKENS = 16


# ----- the servers (these functions run inside the server processes)


def noop_factory(num_labels: int = 2) -> Any:
    """A model that does nothing: constant logits (the manifest's `module` for no-op runs)."""
    import torch
    from torch import nn

    class Noop(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(num_labels))

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.bias.expand(input_ids.shape[0], -1)

    return Noop()


def _load_full(model_dir: str) -> Any:
    import torch

    from inference_worker.manifest import Manifest
    from inference_worker.variants import LoadedVariant

    torch.set_num_threads(1)
    manifest = Manifest.load(Path(model_dir))
    variant = LoadedVariant(manifest, "full", torch.device("cpu"))
    variant.warm((1, 32))
    return variant


try:  # only in the peers' environment: the class must live at module level (spawn pickles it)
    import litserve as _litserve
except ImportError:
    _litserve = None

if _litserve is not None:

    class LitPeerAPI(_litserve.LitAPI):  # type: ignore[misc, name-defined]
        def __init__(self, model_dir: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.model_dir = model_dir

        def setup(self, device: str) -> None:
            self.variant = _load_full(self.model_dir)

        # no annotation: LitServe reads it to build the endpoint (none = the JSON body)
        def decode_request(self, request):  # type: ignore[no-untyped-def]
            return str(request["inputs"][0])

        def predict(self, texts: list[str]) -> list[dict[str, Any]]:
            return [p.to_json() for p in self.variant.predict(texts)]

        def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
            return {"variant": "full", "outputs": [output]}


def serve_litserve(model_dir: str, port: int, timeout_s: float) -> None:
    assert _litserve is not None, "run in the peers' environment"
    api = LitPeerAPI(model_dir, max_batch_size=32, batch_timeout=timeout_s, api_path="/v1/predict")
    server = _litserve.LitServer(
        api, accelerator="cpu", devices=1, workers_per_device=1, timeout=30
    )
    server.run(
        port=port,
        host="127.0.0.1",
        num_api_servers=1,
        generate_client_file=False,
        log_level="warning",
    )


def serve_fastapi(model_dir: str, port: int) -> None:
    import threading

    import uvicorn
    from fastapi import FastAPI

    variant = _load_full(model_dir)
    lock = threading.Lock()
    app = FastAPI()

    @app.post("/v1/predict")
    def predict(body: dict[str, Any]) -> dict[str, Any]:
        with lock:
            outputs = variant.predict(list(body["inputs"]))
        return {"variant": "full", "outputs": [o.to_json() for o in outputs]}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# ----- environment


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "latencyslo"


def project_site_packages() -> Path:
    import torch

    return Path(torch.__file__).resolve().parents[1]


def peers_python() -> Path:
    """The peers' virtual environment (created and filled once), sharing the project's torch."""
    venv = cache_dir() / "peers-venv"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = "\n".join(PEER_PACKAGES)
    if stamp.is_file() and stamp.read_text() == wanted:
        return python
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", "--clear", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "zz_latencyslo_project.pth").write_text(str(project_site_packages()) + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    torch_file = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__file__)"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    if not Path(torch_file).resolve().is_relative_to(project_site_packages()):
        raise SystemExit(f"the peers' venv imports another torch: {torch_file}")
    stamp.write_text(wanted)
    return python


def noop_model_dir(full_dir: Path, out: Path) -> Path:
    """A manifest whose `full` variant is the no-op model (same tokenizer)."""
    from safetensors.torch import save_file

    manifest = json.loads((full_dir / "variants.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(full_dir / manifest["tokenizer"], out / "tokenizer.json")
    import torch

    save_file({"bias": torch.zeros(len(manifest["labels"]))}, out / "noop.safetensors")
    noop = {
        "module": "peers:noop_factory",
        "config": {"num_labels": len(manifest["labels"])},
        "weights": "noop.safetensors",
    }
    doc = {**manifest, "tokenizer": "tokenizer.json", "default": "full", "variants": {"full": noop}}
    (out / "variants.json").write_text(json.dumps(doc))
    return out


# ----- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Config:
    server: str
    setting: float  # batch window (latencyslo) or batch_timeout (litserve), seconds
    frontends: int = 0  # latencyslo only: HTTP frontend processes (0: HTTP in-process)

    @property
    def name(self) -> str:
        if self.server == "fastapi":
            return "fastapi"
        label = "window" if self.server == "latencyslo" else "timeout"
        extra = f", {self.frontends} frontends" if self.frontends else ""
        return f"{self.server} {label} {self.setting * 1000:g} ms{extra}"


def server_command(cfg: Config, model_dir: Path, port: int, peers_py: Path) -> list[str]:
    if cfg.server == "latencyslo":
        return [
            sys.executable, "-m", "inference_worker", "--model-dir", str(model_dir),
            "--host", "127.0.0.1", "--port", str(port), "--no-admin", "--threads", "1",
            "--device", "cpu", "--preload", "active", "--log-level", "warning",
            "--batch-window-ms", f"{cfg.setting * 1000:g}", "--max-batch-size", "32",
            "--frontends", str(cfg.frontends),
        ]  # fmt: skip
    call = (
        f"serve_litserve({str(model_dir)!r}, {port}, {cfg.setting!r})"
        if cfg.server == "litserve"
        else f"serve_fastapi({str(model_dir)!r}, {port})"
    )
    return [str(peers_py), "-c", f"import peers; peers.{call}"]


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and all its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        children.setdefault(ppid, []).append(int(entry.name))
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo.extend(children.get(p, []))
    return total


@contextlib.contextmanager
def running(cfg: Config, model_dir: Path, peers_py: Path, body: bytes) -> Iterator[tuple[int, int]]:
    """A started, answering server: yields (pid, port)."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "bench"), str(REPO), str(REPO / "operator")]),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        server_command(cfg, model_dir, port, peers_py), stdout=log, stderr=subprocess.STDOUT,
        env=env, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"{cfg.name} exited:\n{log.read().decode()[-3000:]}")
            with contextlib.suppress(OSError):
                if _post(port, body) == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cfg.name} did not answer in 120 s")
            time.sleep(0.2)
        yield proc.pid, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()


def _post(port: int, body: bytes) -> int:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


# ----- load


@dataclass
class Probe:
    rate: float
    asked: int
    ok: int
    errors: int
    p50_ms: float
    p99_ms: float
    achieved_rps: float
    cpu_ms_per_request: float

    def passes(self) -> bool:
        return (
            self.p99_ms < P99_BOUND_MS
            and self.ok >= 0.95 * self.asked
            and self.errors <= 0.005 * max(1, self.asked)
        )


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return math.inf
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def load(port: int, pid: int, rate: float, seconds: float, body_file: Path) -> Probe:
    """Evenly spaced arrivals at `rate` for `seconds` (+1 s dropped at the start)."""
    k = max(1, min(48, math.ceil(rate * 0.12)))
    warm = 1.0
    start_delay = 0.3 + 0.002 * k
    procs = []
    for i in range(k):
        offset = start_delay + i / rate
        cmd = (
            f"sleep {offset:.4f}; exec hey -z {seconds + warm:.3f}s -c 1 -q {rate / k:.6f} "
            f"-t 10 -m POST -T application/json -D {body_file} -o csv "
            f"http://127.0.0.1:{port}/v1/predict"
        )
        procs.append(
            subprocess.Popen(
                ["sh", "-c", cmd],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={**os.environ, "GOMAXPROCS": "1"},
            )
        )
    time.sleep(start_delay + warm)
    cpu1 = tree_cpu_seconds(pid)
    outs = [p.communicate(timeout=seconds + warm + 60)[0].decode() for p in procs]
    cpu2 = tree_cpu_seconds(pid)
    latencies: list[float] = []
    ok = errors = 0
    for out in outs:
        for line in out.splitlines()[1:]:
            parts = line.split(",")
            if len(parts) < 8:
                continue
            offset = float(parts[7])
            if offset < warm or offset >= warm + seconds:
                continue
            if parts[6] == "200":
                ok += 1
                latencies.append(float(parts[0]) * 1000)
            else:
                errors += 1
    asked = int(rate * seconds)
    return Probe(
        rate=rate,
        asked=asked,
        ok=ok,
        errors=errors,
        p50_ms=round(pct(latencies, 50), 2),
        p99_ms=round(pct(latencies, 99), 2),
        achieved_rps=round(ok / seconds, 1),
        cpu_ms_per_request=round((cpu2 - cpu1) * 1000 / max(1, ok), 2),
    )


def max_rate(
    port: int, pid: int, seconds: float, start: float, steps: int, body: Path
) -> tuple[float, list[Probe]]:
    """Highest passing rate: doubling from `start`, then `steps` bisections."""
    probes: list[Probe] = []
    lo, hi, rate = 0.0, math.inf, start
    while hi == math.inf and rate <= 20000:
        p = load(port, pid, rate, seconds, body)
        probes.append(p)
        if p.passes():
            lo, rate = rate, rate * 2
        else:
            hi = rate
    if hi == math.inf:
        return lo, probes
    for _ in range(steps):
        mid = (lo + hi) / 2 if lo else hi / 2
        p = load(port, pid, mid, seconds, body)
        probes.append(p)
        if p.passes():
            lo = mid
        else:
            hi = mid
    return lo, probes


# ----- the campaign


def median(values: list[float]) -> float:
    return round(statistics.median(values), 2) if values else math.nan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="shorter probes, 1 round")
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--servers", default="latencyslo,litserve,fastapi")
    parser.add_argument(
        "--frontends", type=int, default=2, help="frontend processes of the third latencyslo "
        "configuration (0: no such configuration)",
    )  # fmt: skip
    args = parser.parse_args()
    if shutil.which("hey") is None:
        raise SystemExit("hey not found: apt-get install hey")
    sys.path[:0] = [str(REPO), str(REPO / "operator")]
    from inference_worker.demo_model import build_demo_model, default_model_dir
    from inference_worker.texts import sample_texts

    model_dir = args.model_dir or default_model_dir()
    if not (model_dir / "variants.json").is_file():
        build_demo_model(model_dir, threads=1)
    rounds = 1 if args.quick else args.rounds
    low_s, probe_s, steps = (5.0, 3.0, 2) if args.quick else (10.0, 4.0, 3)
    peers_py = peers_python()
    wanted = set(args.servers.split(","))
    configs = [
        c
        for c in (
            Config("latencyslo", 0.0),
            Config("latencyslo", 0.005),
            *([Config("latencyslo", 0.005, args.frontends)] if args.frontends else []),
            Config("litserve", 0.0),
            Config("litserve", 0.005),
            Config("fastapi", 0.0),
        )
        if c.server in wanted
    ]
    work = Path(tempfile.mkdtemp(prefix="peers-"))
    body_file = work / "body.json"
    body = json.dumps({"inputs": sample_texts(1, BODY_TOKENS)}).encode()
    body_file.write_bytes(body)
    noop_dir = noop_model_dir(model_dir, work / "noop")
    results: dict[str, dict[str, list[Any]]] = {c.name: {} for c in configs}

    def record(cfg: Config, key: str, value: Any) -> None:
        results[cfg.name].setdefault(key, []).append(value)

    started = time.time()
    load_start = round(os.getloadavg()[0], 2)  # the neighbours' load: read the figures with it
    for r in range(rounds):
        order = configs if r % 2 == 0 else configs[::-1]
        print(f"round {r + 1}/{rounds}: {[c.name for c in order]}", flush=True)
        best_ours = 0.0
        for cfg in order:
            with running(cfg, model_dir, peers_py, body) as (pid, port):
                load(port, pid, 20, 2, body_file)  # warm-up
                low = load(port, pid, LOW_RATE, low_s, body_file)
                top, probes = max_rate(port, pid, probe_s, 40, steps, body_file)
            record(cfg, "low", low.__dict__)
            record(cfg, "max_probes", [p.__dict__ for p in probes])
            record(cfg, "p50_ms_low", low.p50_ms)
            record(cfg, "cpu_ms_per_request_low", low.cpu_ms_per_request)
            record(cfg, "max_rps_p99_under_100ms", top)
            if cfg.server == "latencyslo":
                best_ours = max(best_ours, top)
            print(f"  {cfg.name}: p50 {low.p50_ms} ms, cpu {low.cpu_ms_per_request} ms/req, "
                  f"max {top:.0f} req/s", flush=True)  # fmt: skip
        at80 = 0.8 * best_ours
        for cfg in order:
            if at80 <= 0:
                break
            with running(cfg, model_dir, peers_py, body) as (pid, port):
                load(port, pid, 20, 2, body_file)
                p = load(port, pid, at80, probe_s * 2, body_file)
            record(cfg, "at80", p.__dict__)
            served = p.ok / max(1, p.asked)
            record(cfg, "p99_ms_at_80pct", p.p99_ms if served >= 0.95 else math.inf)
            print(f"  {cfg.name} at {at80:.0f} req/s: p99 {p.p99_ms} ms, {served:.0%} served",
                  flush=True)  # fmt: skip
        for cfg in order:
            with running(cfg, noop_dir, peers_py, body) as (pid, port):
                load(port, pid, 20, 2, body_file)
                top, probes = max_rate(port, pid, probe_s, 100, steps, body_file)
            record(cfg, "noop_probes", [p.__dict__ for p in probes])
            record(cfg, "noop_max_rps", top)
            print(f"  {cfg.name} no-op: max {top:.0f} req/s", flush=True)

    columns = (
        "p50_ms_low", "max_rps_p99_under_100ms", "p99_ms_at_80pct", "cpu_ms_per_request_low",
        "noop_max_rps",
    )  # fmt: skip
    medians = {
        name: {col: median([v for v in res.get(col, []) if v is not None]) for col in columns}
        for name, res in results.items()
    }
    servers: dict[str, dict[str, Any]] = {}
    for server in ("latencyslo", "litserve", "fastapi"):
        names = [c.name for c in configs if c.server == server]
        if not names:
            continue
        best = max(names, key=lambda n: (medians[n]["max_rps_p99_under_100ms"],
                                         -medians[n]["p50_ms_low"]))  # fmt: skip
        noop_best = max(names, key=lambda n: medians[n]["noop_max_rps"])
        servers[server] = {
            **{col: medians[best][col] for col in columns if col != "noop_max_rps"},
            "noop_max_rps": medians[noop_best]["noop_max_rps"],
            "config": best,
            "noop_config": noop_best,
        }
    higher_better = {"max_rps_p99_under_100ms", "noop_max_rps"}
    ratios: dict[str, dict[str, float]] = {}
    if "latencyslo" in servers:
        ours = servers["latencyslo"]
        for peer in ("litserve", "fastapi"):
            if peer not in servers:
                continue
            ratios[peer] = {}
            for col in columns:
                a, b = ours[col], servers[peer][col]
                ratio = (
                    (a / b if b else math.inf)
                    if col in higher_better
                    else (b / a if a else math.nan)
                )
                ratios[peer][col] = round(ratio, 2)
    report = {
        "servers": servers,
        "ratios_latencyslo_vs": ratios,
        "ratio_meaning": "> 1: latencyslo better (lower latency or CPU, higher rate)",
        "configs": medians,
        "raw": results,
        "meta": {
            "command": " ".join(sys.argv),
            "rounds": rounds,
            "low_rate": LOW_RATE,
            "probe_seconds": probe_s,
            "model_dir": str(model_dir),
            "peer_packages": PEER_PACKAGES,
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "loadavg_1min_start_end": [load_start, round(os.getloadavg()[0], 2)],
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "minutes": round((time.time() - started) / 60, 1),
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps({"servers": servers, "ratios_latencyslo_vs": ratios}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
