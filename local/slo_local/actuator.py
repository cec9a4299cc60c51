"""`LocalActuator`: the `Actuator` port on local worker processes (the demo's Deployment).

What the Kubernetes actuator does with a Deployment, a ConfigMap and pods, this one does with
processes on this machine:

- **replicas** are `python -m inference_worker` processes on free loopback ports, each with
  an admin token, `--threads` torch threads (1 by default) and, where the machine has a core
  for each, pinned to its own CPU so that a second replica adds a core's worth of capacity.
  A new replica takes its real start-up time (interpreter + torch import, model load and
  warm-up) before its `/readyz` answers 200 and it is handed to the router (the Service).
- the **runtime config** (window, max batch, variant) has one durable home, a JSON file every
  worker reads at start and watches (`--runtime-config`: the ConfigMap), plus a fast push of
  the same document to each ready replica's `PUT /admin/config`, all in parallel.
- **scale-down** removes starting replicas first, then the newest ready ones; a ready replica
  is taken out of the router first, its routed requests are waited for, and only then does
  it get SIGTERM (the worker serves what it queued and exits 0): no request is lost.
- a replica whose process dies is replaced (a ReplicaSet's job); readiness is re-probed every
  `probe_interval_s` and a replica that stops answering is taken out of the router.

`read()` returns the desired configuration (replicas as asked, like `spec.replicas`) and the
number of ready replicas. `close()` stops every process (drain, then kill after a timeout);
an `atexit` hook kills whatever an abnormal exit left behind, so no worker outlives the demo.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import httpx

from slo_local.promserver import die_with_parent, free_port
from slo_operator.types import ApplyResult, RuntimeConfig

log = logging.getLogger(__name__)


class Routing(Protocol):
    """Where ready replicas receive traffic (`slo_local.loadgen.Router`)."""

    def add(self, name: str, url: str) -> None: ...

    def remove(self, name: str) -> None: ...

    async def wait_idle(self, name: str, timeout_s: float) -> bool: ...


class State(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


@dataclass(slots=True)
class Replica:
    """One worker process."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    admin_port: int
    cpus: frozenset[int] | None
    log_path: Path
    started_at: float
    """`time.monotonic()` at spawn."""
    state: State = State.STARTING
    ready_at: float | None = None
    stopped_at: float | None = None
    exit_code: int | None = None
    probe_failures: int = 0
    routed: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def target(self) -> str:
        """`host:port` of its `/metrics` (a Prometheus target)."""
        return f"127.0.0.1:{self.port}"

    @property
    def startup_seconds(self) -> float | None:
        return None if self.ready_at is None else self.ready_at - self.started_at

    @property
    def running(self) -> bool:
        return self.state is not State.STOPPED


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The replica set at one instant (for timelines and views)."""

    desired: int
    ready: int
    starting: int
    draining: int
    config: RuntimeConfig

    @property
    def processes(self) -> int:
        return self.ready + self.starting + self.draining


_LIVE: weakref.WeakSet[LocalActuator] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:  # pragma: no cover - exercised by the orphan test
    for actuator in list(_LIVE):
        actuator.kill_all()


@dataclass(eq=False)
class LocalActuator:
    """Replicas as local worker processes (see module docs)."""

    model_dir: Path
    workdir: Path
    initial: RuntimeConfig
    router: Routing | None = None
    threads: int = 1
    pin: bool = True
    push_timeout_s: float = 5.0
    probe_interval_s: float = 0.25
    """How often a starting replica's /readyz is polled."""
    probe_period_s: float = 2.0
    probe_timeout_s: float = 2.0
    failure_threshold: int = 3
    """A ready replica is re-probed every `probe_period_s`; after `failure_threshold` probes
    in a row without a 200 within `probe_timeout_s` it gets no traffic until it answers again
    (a Kubernetes readiness probe, with a shorter period than its 10 s default and a longer
    timeout than its 1 s: a busy two-core machine answers slowly, not never)."""
    drain_timeout_s: float = 30.0
    worker_args: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    """Extra environment of the worker processes."""
    on_change: Callable[[LocalActuator], None] | None = None
    """Called whenever the set of processes changes (e.g. to update Prometheus targets)."""
    python: str = sys.executable
    nice: int = 0
    """Niceness of the worker processes (0: the same priority as this process)."""
    own_session: bool = True
    """Each worker in its own session. With the kernel's autogroup scheduling (on by
    default) every session is one scheduling group with a fair share of the CPUs: in its own
    session each replica gets its own share, as a pod gets its own CPU, so on a machine busy
    with other work a second replica really adds capacity (in the demo's session all of them
    would share the demo's one share). `nice` then only orders a worker against the other
    processes of its own session."""
    cpus: Sequence[int] | None = None
    """CPUs the replicas may be pinned to [the ones this process may use when created]."""
    replicas: list[Replica] = field(default_factory=list, init=False)
    desired: RuntimeConfig = field(init=False)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), init=False)
    _names: itertools.count[int] = field(default_factory=lambda: itertools.count(1), init=False)
    _monitor: asyncio.Task[None] | None = field(default=None, init=False)
    _drains: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _http: httpx.AsyncClient | None = field(default=None, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.model_dir = Path(self.model_dir)
        self.workdir = Path(self.workdir)
        self.desired = self.initial
        if self.cpus is None and hasattr(os, "sched_getaffinity"):
            self.cpus = sorted(os.sched_getaffinity(0))
        self.config_file = self.workdir / "runtime-config.json"
        self.token_file = self.workdir / "admin-token"

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, wait_ready: bool = True, timeout_s: float = 180.0) -> None:
        """Start the initial replicas (and, by default, wait until they are all ready)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.token_file.write_text(self.token + "\n")
        self.token_file.chmod(0o600)
        self._write_config(self.desired)
        self._http = httpx.AsyncClient(timeout=httpx.Timeout(self.push_timeout_s))
        _LIVE.add(self)
        for _ in range(self.desired.replicas):
            self._spawn()
        self._changed()
        self._monitor = asyncio.create_task(self._watch(), name="local-actuator")
        if wait_ready:
            await self.wait_ready(self.desired.replicas, timeout_s)

    async def wait_ready(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.ready_count() < count:
            failed = [r for r in self.replicas if r.state is State.STOPPED and r.ready_at is None]
            if failed:
                raise RuntimeError(
                    f"worker {failed[0].name} exited with {failed[0].exit_code} before it was "
                    f"ready:\n{_tail(failed[0].log_path)}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{count} replica(s) not ready after {timeout_s:g}s")
            await asyncio.sleep(0.05)

    async def wait_warm(self, timeout_s: float = 120.0) -> None:
        """Wait until every ready replica has loaded all its variants (the worker preloads
        them after it turns ready), so that a run starts from a steady state."""
        assert self._http is not None
        deadline = time.monotonic() + timeout_s
        for replica in [r for r in self.replicas if r.state is State.READY]:
            while True:
                try:
                    resp = await self._http.get(
                        replica.admin_url + "/admin/variants",
                        headers={"Authorization": f"Bearer {self.token}"},
                    )
                    variants = resp.json().get("variants", {}) if resp.status_code == 200 else {}
                except (httpx.HTTPError, ValueError):
                    variants = {}
                if variants and all(v.get("loaded") for v in variants.values()):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{replica.name}: variants not loaded after {timeout_s}s")
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        """Drain and stop every process (kill what does not stop within the timeout)."""
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
            self._monitor = None
        for task in list(self._drains):
            task.cancel()
        await asyncio.gather(*self._drains, return_exceptions=True)
        running = [r for r in self.replicas if r.running]
        for replica in running:
            if self.router is not None and replica.routed:
                self.router.remove(replica.name)
                replica.routed = False
        await asyncio.gather(*(self._stop(r, wait_idle=False) for r in running))
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        _LIVE.discard(self)

    def kill_all(self) -> None:
        """Synchronous last resort: SIGKILL every process still running."""
        for replica in self.replicas:
            if replica.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    replica.proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    replica.proc.wait(5)

    # ------------------------------------------------------------------ the port

    async def read(self) -> tuple[RuntimeConfig, int]:
        return self.desired, self.ready_count()

    async def apply(self, target: RuntimeConfig) -> ApplyResult:
        async with self._lock:
            errors: list[str] = []
            config_written = False
            acked = total = 0
            old = self.desired
            if target.config_differs(old):  # a limit the target leaves is never a change
                try:
                    self._write_config(target)
                    config_written = True
                except OSError as exc:
                    errors.append(f"writing {self.config_file}: {exc}")
                else:
                    self.desired = target.config_over(self.desired)
                    total, acked, push_errors = await self.push(self.desired)
                    errors += push_errors
            replicas_set = False
            if target.replicas != old.replicas:
                self.desired = self.desired.with_(replicas=max(0, target.replicas))
                self._scale(self.desired.replicas)
                replicas_set = True
            return ApplyResult(
                replicas_set=replicas_set,
                config_written=config_written,
                pods_total=total,
                pods_acknowledged=acked,
                errors=tuple(errors),
            )

    async def push(self, config: RuntimeConfig) -> tuple[int, int, list[str]]:
        """PUT the runtime config to every ready replica: (total, acknowledged, errors)."""
        ready = [r for r in self.replicas if r.state is State.READY]
        results = await asyncio.gather(*(self._put_config(r, config) for r in ready))
        errors = [e for e in results if e]
        return len(ready), len(ready) - len(errors), errors

    # ------------------------------------------------------------------ views

    def ready_count(self) -> int:
        return sum(1 for r in self.replicas if r.state is State.READY)

    def snapshot(self) -> Snapshot:
        count = {s: 0 for s in State}
        for r in self.replicas:
            count[r.state] += 1
        return Snapshot(
            desired=self.desired.replicas,
            ready=count[State.READY],
            starting=count[State.STARTING],
            draining=count[State.DRAINING],
            config=self.desired,
        )

    def running(self) -> list[Replica]:
        """Every process that is up (starting, ready or draining)."""
        return [r for r in self.replicas if r.running]

    def startup_seconds(self) -> list[float]:
        """Start-up time of every replica that became ready, in spawn order."""
        return [s for r in self.replicas if (s := r.startup_seconds) is not None]

    def pids(self) -> list[int]:
        return [r.proc.pid for r in self.replicas if r.proc.poll() is None]

    # ------------------------------------------------------------------ internals

    def _write_config(self, config: RuntimeConfig) -> None:
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(config.worker_payload(), sort_keys=True))
        tmp.replace(self.config_file)  # atomic: a worker never reads half a file

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:  # a failing observer must not stop the actuator
                log.exception("on_change callback failed")

    def _pick_cpus(self) -> frozenset[int] | None:
        if not self.pin or not self.cpus or not hasattr(os, "sched_setaffinity"):
            return None
        available = sorted(self.cpus)
        if len(available) < 2 or len(available) < self.threads:
            return None
        load = {cpu: 0 for cpu in available}
        for r in self.replicas:
            if r.running and r.cpus:
                for cpu in r.cpus:
                    if cpu in load:
                        load[cpu] += 1
        ranked = sorted(available, key=lambda c: (load[c], c))
        return frozenset(ranked[: self.threads])

    def _spawn(self) -> Replica:
        name = f"worker-{next(self._names)}"
        port = free_port()
        admin_port = free_port()
        while admin_port == port:
            admin_port = free_port()
        log_path = self.workdir / f"{name}.log"
        cmd = [
            self.python, "-m", "inference_worker",
            "--model-dir", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(port), "--admin-port", str(admin_port),
            "--admin-token-file", str(self.token_file),
            "--runtime-config", str(self.config_file),
            "--threads", str(self.threads), "--device", "cpu",
            "--variant", self.desired.variant,
            "--batch-window-ms", str(self.desired.batch_window_ms),
            "--max-batch-size", str(self.desired.max_batch_size),
            *self.worker_args,
        ]  # fmt: skip
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "OMP_NUM_THREADS": str(self.threads),
            **self.env,
        }
        for var in ("LATENCYSLO_ADMIN_TOKEN", "LATENCYSLO_RUNTIME_CONFIG"):
            env.pop(var, None)
        with log_path.open("wb") as out:
            # a Ctrl-C in the terminal reaches only the demo, which drains in order: each
            # worker runs in its own process group, and by default in its own session (see
            # `own_session`)
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=self.own_session,
                process_group=None if self.own_session else 0,
                preexec_fn=die_with_parent,
            )
        if self.nice:
            try:  # before the interpreter has started any thread, as the pinning below
                os.setpriority(os.PRIO_PROCESS, proc.pid, self.nice)
            except OSError as exc:
                log.warning("could not renice %s: %s", name, exc)
        cpus = self._pick_cpus()
        if cpus:
            try:
                # before the interpreter has started any thread: every thread inherits it
                os.sched_setaffinity(proc.pid, cpus)
            except OSError as exc:
                log.warning("could not pin %s to CPUs %s: %s", name, sorted(cpus), exc)
                cpus = None
        replica = Replica(name, proc, port, admin_port, cpus, log_path, time.monotonic())
        self.replicas.append(replica)
        log.info("started %s (pid %d, port %d, cpus %s)", name, proc.pid, port, cpus)
        return replica

    def _scale(self, want: int) -> None:
        active = [r for r in self.replicas if r.state in (State.STARTING, State.READY)]
        if want > len(active):
            for _ in range(want - len(active)):
                self._spawn()
            self._changed()
        elif want < len(active):
            # starting replicas first (newest first), then the newest ready ones
            victims = sorted(active, key=lambda r: (r.state is State.READY, -r.started_at))[
                : len(active) - want
            ]
            for replica in victims:
                replica.state = State.DRAINING
                if self.router is not None and replica.routed:
                    self.router.remove(replica.name)  # no new request from now on
                task = asyncio.create_task(self._stop(replica, wait_idle=True))
                self._drains.add(task)
                task.add_done_callback(self._drains.discard)

    async def _stop(self, replica: Replica, *, wait_idle: bool) -> None:
        """Let its routed requests finish, SIGTERM, wait for the exit (kill on timeout)."""
        replica.state = State.DRAINING
        if (
            wait_idle
            and self.router is not None
            and replica.routed
            and not await self.router.wait_idle(replica.name, self.drain_timeout_s)
        ):
            log.warning("%s still had requests after %ss", replica.name, self.drain_timeout_s)
        replica.routed = False
        proc = replica.proc
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not await _exited(proc, self.drain_timeout_s):
            log.warning("%s did not stop after SIGTERM: killing it", replica.name)
            proc.kill()
            await asyncio.to_thread(proc.wait, 5)
        replica.exit_code = proc.returncode
        replica.state = State.STOPPED
        replica.stopped_at = time.monotonic()
        log.info("stopped %s (exit %s)", replica.name, replica.exit_code)
        self._changed()

    async def _put_config(self, replica: Replica, config: RuntimeConfig) -> str | None:
        assert self._http is not None
        try:
            resp = await self._http.put(
                replica.admin_url + "/admin/config",
                json=config.worker_payload(),
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            return f"{replica.name}: {type(exc).__name__}: {exc}"
        if resp.status_code != 200:
            return f"{replica.name}: HTTP {resp.status_code} {resp.text[:200]}"
        return None

    async def _get_config(self, replica: Replica) -> dict[str, object] | None:
        assert self._http is not None
        try:
            resp = await self._http.get(
                replica.admin_url + "/admin/config",
                headers={"Authorization": f"Bearer {self.token}"},
            )
            return dict(resp.json()) if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    async def _ready(self, replica: Replica) -> bool:
        assert self._http is not None
        try:
            resp = await self._http.get(replica.url + "/readyz", timeout=self.probe_timeout_s)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def _watch(self) -> None:
        """Readiness probes, crash detection and replacement, routing of ready replicas."""
        last_probe: dict[str, float] = {}
        while True:
            changed = False
            for replica in list(self.replicas):
                if replica.state in (State.STOPPED, State.DRAINING):
                    continue
                if replica.proc.poll() is not None:
                    log.error(
                        "%s exited unexpectedly (%s):\n%s",
                        replica.name,
                        replica.proc.returncode,
                        _tail(replica.log_path),
                    )
                    if self.router is not None and replica.routed:
                        self.router.remove(replica.name)
                    replica.routed = False
                    replica.state = State.STOPPED
                    replica.exit_code = replica.proc.returncode
                    replica.stopped_at = time.monotonic()
                    changed = True
                    continue
                if replica.state is State.STARTING:
                    if await self._ready(replica):
                        await self._admit(replica)
                        changed = True
                elif time.monotonic() - last_probe.get(replica.name, 0.0) >= self.probe_period_s:
                    last_probe[replica.name] = time.monotonic()
                    await self._probe(replica)
            active = sum(1 for r in self.replicas if r.state in (State.STARTING, State.READY))
            if active < self.desired.replicas and not self._lock.locked():
                async with self._lock:
                    self._scale(self.desired.replicas)  # replace crashed replicas
            if changed:
                self._changed()
            await asyncio.sleep(self.probe_interval_s)

    async def _admit(self, replica: Replica) -> None:
        """A replica answered /readyz: make sure it runs the desired config, then route."""
        async with self._lock:
            if replica.state is not State.STARTING:
                return
            want = self.desired.worker_payload()
            have = await self._get_config(replica)
            if have != want:
                error = await self._put_config(replica, self.desired)
                if error:
                    log.warning("%s ready but not configured yet: %s", replica.name, error)
                    return  # try again on the next probe
            replica.ready_at = time.monotonic()
            replica.state = State.READY
            if self.router is not None:
                self.router.add(replica.name, replica.url)
                replica.routed = True
            log.info("%s ready after %.1fs", replica.name, replica.startup_seconds or 0.0)

    async def _probe(self, replica: Replica) -> None:
        """Periodic readiness probe of a ready replica (see `failure_threshold`)."""
        if await self._ready(replica):
            replica.probe_failures = 0
            if not replica.routed and self.router is not None:
                self.router.add(replica.name, replica.url)
                replica.routed = True
            return
        replica.probe_failures += 1
        if (
            replica.probe_failures >= self.failure_threshold
            and replica.routed
            and self.router is not None
        ):
            log.warning(
                "%s failed %d readiness probes: no traffic until it answers again",
                replica.name,
                replica.probe_failures,
            )
            self.router.remove(replica.name)
            replica.routed = False


async def _exited(proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Poll until the process exits; False if it is still running after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while proc.poll() is None:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
