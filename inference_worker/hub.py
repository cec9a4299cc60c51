"""The model process's side of `--frontends N`: N HTTP frontend processes and their link.

The model process keeps everything that has state: the variants, the batcher, the runtime
config, the admin port, the metrics registry and the lifecycle. The frontends
(`inference_worker.frontend`) share the public port through `SO_REUSEPORT` and send each
validated request's texts over a Unix socket (`inference_worker.ipc`); the hub answers with
the body or the error, serves the metrics page, records the frontends' request observations
in the one registry, and tells every frontend the readiness state whenever it changes. So the
contract (API, metrics, admin, switch, drain) is the same as with one process.

A frontend that dies is replaced; one that dies within `START_GRACE_S` of its start (the
port is taken, a bad interpreter...) stops the worker with exit code 1, as a failed bind does
without frontends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from inference_worker.api import HttpError
from inference_worker.ipc import FrameProtocol

log = logging.getLogger("inference_worker.hub")

START_GRACE_S = 5.0
STOP_TIMEOUT_S = 15.0

Answer = Callable[[list[str]], Awaitable[dict[str, Any]]]


class FrontendHub:
    def __init__(
        self,
        count: int,
        *,
        host: str,
        port: int,
        max_inputs: int,
        answer: Answer,
        render_metrics: Callable[[], bytes],
        observe: Callable[[str, int, float], None],
        state: Callable[[], dict[str, Any]],
        on_fatal: Callable[[], None],
        log_level: str = "info",
    ) -> None:
        self.count = count
        self.host, self.port, self.max_inputs = host, port, max_inputs
        self._answer, self._render, self._observe = answer, render_metrics, observe
        self._state, self._on_fatal = state, on_fatal
        self._log_level = log_level
        self._dir = Path(tempfile.mkdtemp(prefix="latencyslo-frontends-"))
        self.socket_path = str(self._dir / "model.sock")
        self._links: set[FrameProtocol] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._procs: list[asyncio.subprocess.Process] = []
        self._server: asyncio.AbstractServer | None = None
        self._stopping = False
        self._all_gone = asyncio.Event()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(
            lambda: FrameProtocol(self._on_message, self._on_lost, self._on_connect),
            self.socket_path,
        )
        for _ in range(self.count):
            await self._spawn()

    # ----- the frontends

    async def _spawn(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "inference_worker.frontend",
            "--socket", self.socket_path, "--host", self.host, "--port", str(self.port),
            "--max-inputs", str(self.max_inputs), "--log-level", self._log_level,
        )  # fmt: skip
        self._procs.append(proc)
        self._keep(self._watch(proc, time.monotonic()))

    async def _watch(self, proc: asyncio.subprocess.Process, started: float) -> None:
        code = await proc.wait()
        self._procs.remove(proc)
        if self._stopping:
            return
        if time.monotonic() - started < START_GRACE_S:
            log.error("frontend %d exited with %d at start; stopping the worker", proc.pid, code)
            self._on_fatal()
            return
        log.warning("frontend %d exited with %d; starting another", proc.pid, code)
        await self._spawn()

    def _keep(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- messages

    def _on_message(self, link: FrameProtocol, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "predict":
            self._keep(self._predict(link, message["id"], message["texts"]))
        elif op == "observe":
            self._observe(message["variant"], message["code"], message["seconds"])
        elif op == "metrics":
            link.send({"id": message["id"], "text": self._render().decode()})

    def _on_connect(self, link: FrameProtocol) -> None:
        self._links.add(link)
        link.send({"op": "state", **self._state()})

    def _on_lost(self, link: FrameProtocol) -> None:
        self._links.discard(link)
        if self._stopping and not self._links:
            self._all_gone.set()

    async def _predict(self, link: FrameProtocol, ident: int, texts: list[str]) -> None:
        try:
            answer: dict[str, Any] = {"status": 200, "body": await self._answer(texts)}
        except HttpError as exc:
            answer = exc.to_message()
        except Exception as exc:  # never leave a frontend waiting
            log.exception("answering a frontend's request failed")
            answer = HttpError(500, f"internal error: {type(exc).__name__}").to_message()
        link.send({"id": ident, **answer})

    def publish(self) -> None:
        """Tell every frontend the readiness state now in force."""
        state = {"op": "state", **self._state()}
        for link in self._links:
            link.send(state)

    async def stop(self) -> None:
        """Tell the frontends to stop (each answers its requests in flight first), wait for
        them (killing any still there after `STOP_TIMEOUT_S`), close the socket."""
        self._stopping = True
        for link in self._links:
            link.send({"op": "stop"})
        procs = list(self._procs)
        if procs:
            done = asyncio.gather(*(p.wait() for p in procs))
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await done
            except TimeoutError:
                log.error("frontends still running after %.0fs; killing them", STOP_TIMEOUT_S)
                for proc in procs:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                await done
        if self._links:  # read what they sent before they exited (their last observations)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._all_gone.wait()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)
