"""A real Prometheus server run as a child process on loopback.

Used by `latencyslo demo` (when the `prometheus` binary is on PATH) and by the integration
tests. Targets are discovered from a file (`file_sd_configs`), so workers can come and go
while it runs: call `set_targets` and Prometheus picks the change up within its refresh.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

_LOWEST_PORT = 10_000
_HANDED_OUT: set[int] = set()
_PICK = random.Random()


def _ephemeral_low() -> int:
    """The lowest port of the kernel's range for the local ports of outgoing connections
    (Linux's default where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago, for a child process to listen on.

    Picked below the kernel's ephemeral range: a port the OS hands out for `bind(0)` lies
    inside it, where any outgoing connection on the machine (a scrape, a probe, a client's
    new socket) may take it before the child binds it, and the child then fails with
    "address already in use". Below the range only another listener can take it. A port
    this process handed out before is never handed out again, so two children started side
    by side never get the same one. Falls back to the OS's pick when the range below is too
    small or full.
    """
    low = _ephemeral_low()
    if low - _LOWEST_PORT >= 1_000:
        for _ in range(200):
            port = _PICK.randrange(_LOWEST_PORT, low)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
            _HANDED_OUT.add(port)
            return port
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


_PR_SET_PDEATHSIG = 1
try:
    _LIBC: ctypes.CDLL | None = (
        ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
    )
except OSError:  # pragma: no cover - no libc to load
    _LIBC = None


def die_with_parent() -> None:
    """`preexec_fn` for helper processes: in the child, before exec, ask for SIGKILL when
    the parent dies (Linux), so even a SIGKILLed demo leaves no worker or Prometheus behind.
    Only a C call here (the child of a threaded parent must not take Python locks). The
    trigger is the exit of the parent *thread* that spawned the child: spawn from a thread
    that lives as long as the child should (the demo spawns from its event-loop thread)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def prometheus_binary() -> str | None:
    return shutil.which(os.environ.get("LATENCYSLO_PROMETHEUS_BIN", "prometheus"))


class PrometheusServer:
    """Start, feed and stop one Prometheus process.

    `targets` groups are written as file_sd JSON: a list of `(["host:port", ...], labels)`.
    """

    def __init__(
        self,
        *,
        scrape_interval_s: float = 1.0,
        workdir: str | Path | None = None,
        port: int | None = None,
        rule_files: Iterable[str | Path] = (),
        extra_scrape_configs: Iterable[Mapping[str, Any]] = (),
        binary: str | None = None,
        nice: int = 0,
        deployment: str | None = None,
    ) -> None:
        """`nice` > 0 lowers Prometheus' CPU priority below its parent's (the demo keeps its
        load generator ahead of it on a small machine). `deployment`: the `deployment` label
        given to every target group that has none, as the chart's PodMonitor attaches it."""
        self.deployment = deployment
        found = binary or prometheus_binary()
        if not found:
            raise FileNotFoundError(
                "the 'prometheus' binary is not on PATH (Debian: apt-get install prometheus)"
            )
        self.binary = found
        self._own_dir = workdir is None
        # absolute: Prometheus resolves relative paths in its config from the config folder
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="latencyslo-prom-")).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.scrape_interval_s = scrape_interval_s
        self.nice = nice
        self.rule_files = [str(Path(p).resolve()) for p in rule_files]
        self.extra_scrape_configs = list(extra_scrape_configs)
        self.targets_file = self.workdir / "targets.json"
        self.config_file = self.workdir / "prometheus.yml"
        self.log_file = self.workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _interval(self) -> str:
        return f"{max(1, round(self.scrape_interval_s * 1000))}ms"

    def write_config(self) -> None:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self._interval(),
                "evaluation_interval": self._interval(),
            },
            "scrape_configs": [
                {
                    "job_name": "workers",
                    "scrape_interval": self._interval(),
                    "scrape_timeout": self._interval(),
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                },
                *self.extra_scrape_configs,
            ],
        }
        if self.rule_files:
            config["rule_files"] = self.rule_files
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        if not self.targets_file.exists():
            self.set_targets([])

    def set_targets(self, groups: Iterable[tuple[Iterable[str], Mapping[str, str]]]) -> None:
        """Replace the scrape targets (atomically, so Prometheus never reads half a file)."""
        extra = {"deployment": self.deployment} if self.deployment else {}
        doc = [{"targets": list(t), "labels": {**extra, **labels}} for t, labels in groups]
        tmp = self.targets_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(self.targets_file)

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        """Launch and wait until ready (`launch` then `wait_ready`)."""
        self.launch()
        return self.wait_ready(timeout_s)

    def launch(self) -> None:
        """Start the process (it dies with the calling thread's process, see
        `die_with_parent`); `wait_ready` waits for it to answer."""
        self.write_config()
        log = self.log_file.open("ab")
        self._proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,  # a terminal's Ctrl-C reaches only the parent (see `nice`)
            preexec_fn=die_with_parent,
        )
        log.close()
        if self.nice:  # a priority is a nicety, never a reason to fail
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, self._proc.pid, self.nice)

    def wait_ready(self, timeout_s: float = 30.0) -> PrometheusServer:
        assert self._proc is not None, "launch() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"prometheus exited with {self._proc.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"prometheus not ready after {timeout_s}s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query (at `at`, epoch seconds, else now); returns the `result` list
        (raises on an API error)."""
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        resp = httpx.get(f"{self.url}/api/v1/query", params=params, timeout=5.0)
        resp.raise_for_status()
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        return list(body["data"]["result"])

    def wait_for(self, expr: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll an instant query until it returns a non-empty result."""
        deadline = time.monotonic() + timeout_s
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result for {expr!r} after {timeout_s}s")
            time.sleep(0.25)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
