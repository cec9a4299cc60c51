"""Run a real inference worker process in tests, and a tiny fixture model family.

```python
from tests.support.worker import build_fixture_family, run_worker

model_dir = build_fixture_family(tmp_path / "model")
with run_worker(model_dir) as w:          # free ports, admin token, waits for /readyz
    httpx.post(w.url + "/v1/predict", json={"inputs": ["good"]})
    httpx.put(w.admin_url + "/admin/config", json={"variant": "distilled"},
              headers=w.admin_headers)
# leaving the block sends SIGTERM and waits for the exit (kills after a timeout)
```

The fixture family has the demo family's shape (`full`, `quantized` = full + `dynamic_int8`,
`distilled`) with tiny random-initialised encoders (d=32), built in well under a second. Its
accuracies are measured on the same held-out lexicon split as the demo family (they are near
chance: the fixture is for plumbing, not quality). `delay_ms` makes every forward pass sleep
that long (a slow model, for queueing and drain tests); `with_program` adds an `exported`
variant saved as a `torch.export` program.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import torch
from safetensors.torch import save_file

from inference_worker.demo_model import BatchEncoder, accuracy_of, load_lexicon, source_paths, split
from inference_worker.encoder import TextClassifier
from inference_worker.variants import apply_recipe
from slo_local.promserver import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE_TOKEN = "fixture-admin-token"
TINY = {
    "vocab_size": 30522,
    "hidden": 32,
    "layers": 2,
    "heads": 2,
    "intermediate": 64,
    "max_positions": 128,
    "num_labels": 2,
}


class SlowClassifier(TextClassifier):
    """A TextClassifier whose forward pass also sleeps `delay_ms` (a slow model)."""

    def __init__(self, *, delay_ms: float = 0.0, **config: Any) -> None:
        super().__init__(**config)
        self.delay_s = delay_ms / 1000.0

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.delay_s:
            time.sleep(self.delay_s)
        return super().forward(input_ids, attention_mask)


def build_fixture_family(
    out: Path, *, delay_ms: float = 0.0, with_program: bool = False, seed: int = 0
) -> Path:
    """Write a tiny three-variant family (plus `exported` if asked) into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    minilm, lexicon = source_paths()
    (out / "tokenizer.json").write_bytes((minilm / "tokenizer.json").read_bytes())
    torch.manual_seed(seed)
    full = TextClassifier(**TINY).eval()
    distilled_config = {**TINY, "layers": 1}
    distilled = TextClassifier(**distilled_config).eval()
    save_file(full.state_dict(), out / "full.safetensors")
    save_file(distilled.state_dict(), out / "distilled.safetensors")

    _, test = split(load_lexicon(lexicon))
    test = test[:400]
    enc = BatchEncoder(out / "tokenizer.json")
    quantized = apply_recipe(copy.deepcopy(full), "dynamic_int8", torch.device("cpu"))
    module = (
        "tests.support.worker:SlowClassifier"
        if delay_ms
        else "inference_worker.encoder:TextClassifier"
    )
    extra = {"delay_ms": delay_ms} if delay_ms else {}
    variants: dict[str, Any] = {
        "full": {
            "module": module,
            "config": {**TINY, **extra},
            "weights": "full.safetensors",
            "accuracy": round(accuracy_of(full, enc, test), 4),
        },
        "quantized": {
            "module": module,
            "config": {**TINY, **extra},
            "weights": "full.safetensors",
            "recipe": "dynamic_int8",
            "accuracy": round(accuracy_of(quantized, enc, test), 4),
        },
        "distilled": {
            "module": module,
            "config": {**distilled_config, **extra},
            "weights": "distilled.safetensors",
            "accuracy": round(accuracy_of(distilled, enc, test), 4),
        },
    }
    if with_program:
        ids = torch.randint(1000, 2000, (2, 8))
        mask = torch.ones_like(ids)
        batch = torch.export.Dim("batch", min=1, max=1024)
        seq = torch.export.Dim("seq", min=2, max=TINY["max_positions"])
        program = torch.export.export(
            full, (ids, mask), dynamic_shapes=({0: batch, 1: seq}, {0: batch, 1: seq})
        )
        torch.export.save(program, str(out / "full.pt2"))
        variants["exported"] = {"program": "full.pt2", "accuracy": variants["full"]["accuracy"]}
    manifest = {
        "format": 1,
        "tokenizer": "tokenizer.json",
        "max_length": TINY["max_positions"],
        "labels": ["negative", "positive"],
        "default": "full",
        "variants": variants,
    }
    (out / "variants.json").write_text(json.dumps(manifest, indent=2))
    return out


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    token: str
    log_path: Path
    args: Sequence[str] = field(default_factory=tuple)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"worker exited with {self.proc.returncode} before ready:\n{self.log()[-3000:]}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/readyz", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()[-3000:]}")


def worker_command(
    model_dir: Path,
    port: int,
    admin_port: int,
    token_file: Path | None,
    args: Sequence[str],
    threads: int = 1,
) -> list[str]:
    cmd = [
        sys.executable, "-m", "inference_worker", "--model-dir", str(model_dir),
        "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
        "--threads", str(threads), "--device", "cpu",
    ]  # fmt: skip
    if token_file is not None:
        cmd += ["--admin-token-file", str(token_file)]
    return [*cmd, *args]


def start_worker(
    model_dir: Path,
    args: Sequence[str] = (),
    *,
    token: str | None = FIXTURE_TOKEN,
    env: dict[str, str] | None = None,
    workdir: Path | None = None,
    threads: int = 1,
) -> WorkerProcess:
    """Start a worker (not waiting for readiness); the caller must stop it."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="latencyslo-worker-"))
    port = free_port()
    admin_port = free_port()
    token_file = None
    if token is not None:
        token_file = workdir / "admin-token"
        token_file.write_text(token + "\n")
    full_env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "operator")]),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    for name in (
        "LATENCYSLO_ADMIN_TOKEN",
        "LATENCYSLO_ADMIN_TOKEN_FILE",
        "LATENCYSLO_RUNTIME_CONFIG",
    ):
        if not env or name not in env:
            full_env.pop(name, None)
    log_path = workdir / "worker.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            worker_command(model_dir, port, admin_port, token_file, args, threads),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=full_env,
        )
    return WorkerProcess(proc, port, admin_port, token or "", log_path, tuple(args))


@contextlib.contextmanager
def run_worker(
    model_dir: Path,
    args: Sequence[str] = (),
    *,
    token: str | None = FIXTURE_TOKEN,
    env: dict[str, str] | None = None,
    ready_timeout: float = 60.0,
    workdir: Path | None = None,
    threads: int = 1,
) -> Iterator[WorkerProcess]:
    """A running, ready worker (CPU, `threads` torch threads); SIGTERM and wait on exit
    (kill if it hangs)."""
    worker = start_worker(model_dir, args, token=token, env=env, workdir=workdir, threads=threads)
    try:
        worker.wait_ready(ready_timeout)
        yield worker
    finally:
        worker.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(20.0)


async def burst(url: str, n: int, text: str = "x") -> list[httpx.Response]:
    """`n` one-text predict requests to the worker at `url`, all at once."""
    async with httpx.AsyncClient(timeout=10) as client:
        return await asyncio.gather(
            *(client.post(url + "/v1/predict", json={"inputs": [text]}) for _ in range(n))
        )
