"""The worker process: public HTTP app, admin app, batcher, variants, runtime-config watcher.

Why aiohttp: it is asyncio-native (the batcher is an asyncio loop), already a dependency of
kopf, and its per-request overhead is a fraction of a millisecond. Model compute never runs on
the event loop: batches go to one dedicated compute thread, variant loading and warm-up to a
separate loader thread, so a switch never stalls serving.

Lifecycle: the servers start at once (`/healthz` answers), the active variant is loaded and
warmed, then `/readyz` turns 200 and the other variants are preloaded in the background. On
SIGTERM (or SIGINT): `/readyz` fails, the worker keeps serving for `drain_delay_s` (time for
endpoints to drop it), then refuses new requests with 503 + `Connection: close`, serves every
queued request, waits for the in-flight responses, closes and exits 0.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from aiohttp import web

from inference_worker.api import (
    ADMIN_MAX_BYTES,
    PREDICT_MAX_BYTES,
    HttpError,
    QuietBadRequests,
    check_serving,
    json_errors,
    loads_strict,
    parse_inputs,
    public_app,
    read_json,
    readiness,
)
from inference_worker.auth import AdminToken
from inference_worker.batcher import (
    Batcher,
    BatchFailed,
    BatchResult,
    DeadlineExceeded,
    Draining,
    Expired,
    QueueFull,
)
from inference_worker.config import ConfigError, RuntimeSettings, parse_update
from inference_worker.hub import FrontendHub
from inference_worker.manifest import Manifest
from inference_worker.metrics import CONTENT_TYPE, WorkerMetrics
from inference_worker.openapi import admin_document, public_document
from inference_worker.variants import LoadedVariant, Prediction

log = logging.getLogger("inference_worker")


@dataclass(slots=True)
class WorkerOptions:
    model_dir: Path
    host: str = "0.0.0.0"
    port: int = 8080
    admin_port: int = 8081
    admin_token: str | None = None
    admin_token_file: Path | None = None
    """When set, the token is read from it and re-read when the file changes."""
    admin_enabled: bool = True
    runtime_config: Path | None = None
    threads: int | None = None
    device: str = "auto"
    variant: str | None = None
    batch_window_ms: float = 0.0
    max_batch_size: int = 32
    max_queue: int = 256
    max_queue_wait_ms: float = 0.0
    """A request that waited longer than the batch window plus this in the queue is answered
    503 unrun (0: no limit)."""
    max_inputs: int = 64
    request_timeout_s: float = 10.0
    preload: str = "all"
    drain_delay_s: float = 0.0
    config_poll_s: float = 1.0
    frontends: int = 0
    """0: this process serves the public port; N > 0: N frontend processes do (`hub`)."""
    cuda_graphs: bool = False
    """Replay CUDA graphs per shape bucket on a CUDA device (`cuda_graphs`)."""


def set_torch_threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


class Worker:
    def __init__(self, opts: WorkerOptions, manifest: Manifest, device: torch.device) -> None:
        self.admin_token = AdminToken(opts.admin_token, opts.admin_token_file)
        if opts.admin_enabled and not self.admin_token.value:
            raise ValueError(
                "the admin port needs a bearer token: set --admin-token-file, "
                "LATENCYSLO_ADMIN_TOKEN_FILE or LATENCYSLO_ADMIN_TOKEN (or pass --no-admin)"
            )
        self.opts = opts
        self.manifest = manifest
        self.device = device
        initial = parse_update(
            {
                "variant": opts.variant or manifest.default,
                "batchWindowMs": opts.batch_window_ms,
                "maxBatchSize": opts.max_batch_size,
                "maxQueueWaitMs": opts.max_queue_wait_ms,
            },
            RuntimeSettings(manifest.default, 0.0, 1),
            manifest.variants,
        )
        self.settings = initial
        self.active: LoadedVariant | None = None
        self.loaded: dict[str, LoadedVariant] = {}
        self._loading: dict[str, asyncio.Task[LoadedVariant]] = {}
        self.batcher = Batcher(
            self._run_batch,
            window_s=initial.batch_window_s,
            max_batch_size=initial.max_batch_size,
            max_queue=opts.max_queue,
            max_queue_wait_s=initial.max_queue_wait_s,
        )
        self.metrics = WorkerMetrics(lambda: self.batcher.queued_items)
        self.metrics.set_accuracy({n: v.accuracy for n, v in manifest.variants.items()})
        self.compute = ThreadPoolExecutor(
            1, "compute", initializer=set_torch_threads, initargs=(opts.threads,)
        )
        self.loader = ThreadPoolExecutor(
            1, "loader", initializer=set_torch_threads, initargs=(opts.threads,)
        )
        self._config_lock = asyncio.Lock()
        self._last_file_config: bytes | None = None
        self.ready = False
        self.terminating = False
        self.accepting = True
        self.inflight = 0
        self._idle = asyncio.Event()  # set while no predict handler is running
        self._idle.set()
        self.exit_code = 0
        self.answered: collections.Counter[int] = collections.Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.hub: FrontendHub | None = None

    # ----- variants and configuration

    async def ensure_loaded(self, name: str, warm_batch: int | None = None) -> LoadedVariant:
        """Load and warm a variant once (concurrent callers share the same load); warm-up
        runs batch sizes 1 and `warm_batch` (default: the max batch size in force)."""
        if name in self.loaded:
            return self.loaded[name]
        task = self._loading.get(name)
        if task is None:
            batch = warm_batch or self.settings.max_batch_size
            task = asyncio.get_running_loop().create_task(self._load(name, batch))
            self._loading[name] = task
        try:
            return await asyncio.shield(task)
        finally:
            if task.done():
                self._loading.pop(name, None)

    async def _load(self, name: str, warm_batch: int) -> LoadedVariant:
        def load() -> LoadedVariant:
            variant = LoadedVariant(
                self.manifest, name, self.device, cuda_graphs=self.opts.cuda_graphs
            )
            warm_s = variant.warm((1, warm_batch))
            log.info(
                "variant %s loaded in %.2fs, warmed in %.2fs",
                name,
                variant.load_seconds,
                warm_s,
            )
            return variant

        variant = await asyncio.get_running_loop().run_in_executor(self.loader, load)
        self.loaded[name] = variant
        return variant

    async def apply(self, new: RuntimeSettings, source: str) -> RuntimeSettings:
        """Switch to `new`: load + warm its variant first, then swap everything at once."""
        variant = await self.ensure_loaded(new.variant, new.max_batch_size)
        old = self.settings
        self.active = variant  # batches already running keep their reference to the old one
        self.settings = new
        self.batcher.window_s = new.batch_window_s
        self.batcher.max_batch_size = new.max_batch_size
        self.batcher.max_queue_wait_s = new.max_queue_wait_s
        self.metrics.set_config(new)
        self._publish()
        if new != old:
            log.info("runtime config from %s: %s -> %s", source, old.to_json(), new.to_json())
        return new

    async def update(self, data: Any, source: str) -> RuntimeSettings:
        """Validate a config document against the config in force and apply it."""
        async with self._config_lock:
            new = parse_update(data, self.settings, self.manifest.variants)
            return await self.apply(new, source)

    def read_runtime_file(self) -> bytes | None:
        path = self.opts.runtime_config
        if path is None:
            return None
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read runtime config %s: %s", path, exc)
            return None

    async def apply_runtime_file(self, content: bytes) -> None:
        self._last_file_config = content
        try:
            await self.update(loads_strict(content), source=str(self.opts.runtime_config))
        except (ValueError, ConfigError) as exc:  # JSONDecodeError is a ValueError
            log.error("runtime config %s ignored: %s", self.opts.runtime_config, exc)
        except Exception:
            log.exception("runtime config %s could not be applied", self.opts.runtime_config)

    async def _watch_runtime_file(self) -> None:
        while True:
            await asyncio.sleep(self.opts.config_poll_s)
            content = self.read_runtime_file()
            if content is not None and content != self._last_file_config:
                await self.apply_runtime_file(content)

    async def _startup(self) -> None:
        try:
            content = self.read_runtime_file()
            if content is not None:
                await self.apply_runtime_file(content)
            if self.active is None:
                async with self._config_lock:
                    await self.apply(self.settings, "flags")
        except Exception:
            log.exception("could not load variant %s", self.settings.variant)
            self.exit_code = 1
            self._stop.set()
            return
        self.ready = True
        self._publish()
        log.info("ready: serving %s", self.settings.to_json())
        if self.opts.preload == "all":
            for name in self.manifest.variants:
                try:
                    await self.ensure_loaded(name)
                except Exception:
                    log.exception("preloading variant %s failed", name)

    # ----- serving

    async def _run_batch(self, texts: list[str]) -> BatchResult:
        variant = self.active
        assert variant is not None

        def run() -> tuple[list[Prediction], float]:
            started = time.perf_counter()
            out = variant.predict(texts)
            return out, time.perf_counter() - started

        outputs, seconds = await asyncio.get_running_loop().run_in_executor(self.compute, run)
        self.metrics.batch_size.observe(len(texts))
        self.metrics.batch_duration.labels(variant.name).observe(seconds)
        return variant.name, outputs

    async def _infer(self, texts: list[str]) -> dict[str, Any]:
        """One request's texts through the batcher: the response body, or HttpError."""
        try:
            variant, outputs = await self.batcher.submit(texts, self.opts.request_timeout_s)
        except (QueueFull, Expired) as exc:
            raise HttpError(503, str(exc), retry_after=1) from None
        except Draining as exc:
            raise HttpError(503, str(exc), retry_after=1, close=True) from None
        except DeadlineExceeded as exc:
            raise HttpError(504, f"request deadline exceeded: {exc}") from None
        except BatchFailed as exc:
            raise HttpError(500, f"inference failed: {exc}") from None
        return {"variant": variant, "outputs": [o.to_json() for o in outputs]}

    @contextlib.contextmanager
    def _in_flight(self) -> Iterator[None]:
        self.inflight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()

    def record(self, variant: str, code: int, seconds: float) -> None:
        """One answered predict request, in the log's tally and the metrics."""
        self.answered[code] += 1
        self.metrics.observe_request(variant, code, seconds)

    async def predict(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        variant = self.settings.variant
        with self._in_flight():
            try:
                check_serving(accepting=self.accepting, ready=self.ready)
                data = await read_json(request, PREDICT_MAX_BYTES)
                body = await self._infer(parse_inputs(data, self.opts.max_inputs))
                variant = body["variant"]
                response = web.json_response(body)
            except HttpError as exc:
                response = exc.response()
        if self.terminating:
            response.force_close()  # no keep-alive reuse of a connection to a stopping worker
        self.record(variant, response.status, time.perf_counter() - started)
        return response

    async def answer_frontend(self, texts: list[str]) -> dict[str, Any]:
        """A frontend's validated request (`hub`): the body, or HttpError."""
        with self._in_flight():
            check_serving(accepting=self.accepting, ready=self.ready)
            return await self._infer(texts)

    def state(self) -> dict[str, Any]:
        """What the frontends need to answer `/readyz` and refuse requests as this process
        would."""
        return {
            "ready": self.ready,
            "terminating": self.terminating,
            "accepting": self.accepting,
            "variant": self.settings.variant,
        }

    def _publish(self) -> None:
        if self.hub is not None:
            self.hub.publish()

    def _fatal(self) -> None:
        self.exit_code = 1
        self._stop.set()

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        return readiness(
            terminating=self.terminating, ready=self.ready, variant=self.settings.variant
        )

    async def metrics_handler(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def public_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(public_document(self.opts.max_inputs))

    # ----- admin

    @web.middleware
    async def require_token(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self.admin_token.check(request.headers.get("Authorization", "")):
            response = HttpError(401, "a valid 'Authorization: Bearer <token>' is required")
            resp = response.response()
            resp.headers["WWW-Authenticate"] = 'Bearer realm="latencyslo-admin"'
            return resp
        return await handler(request)

    async def get_config(self, request: web.Request) -> web.Response:
        return web.json_response(self.settings.to_json())

    async def put_config(self, request: web.Request) -> web.Response:
        data = await read_json(request, ADMIN_MAX_BYTES)
        try:
            new = await self.update(data, source="admin API")
        except ConfigError as exc:
            raise HttpError(422, exc.reason, field=exc.field or None) from None
        except Exception as exc:
            log.exception("config update failed")
            raise HttpError(
                500, f"could not switch, nothing changed: {type(exc).__name__}: {exc}"
            ) from None
        return web.json_response(new.to_json())

    async def admin_openapi(self, request: web.Request) -> web.Response:
        return web.json_response(admin_document(list(self.manifest.variants)))

    async def get_variants(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "active": self.settings.variant,
                "device": str(self.device),
                "variants": {
                    name: {
                        "loaded": name in self.loaded,
                        "accuracy": spec.accuracy,
                        "recipe": spec.recipe,
                        "kind": "program" if spec.program else "module",
                    }
                    for name, spec in self.manifest.variants.items()
                },
            }
        )

    # ----- process lifecycle

    def public_app(self) -> web.Application:
        return public_app(
            predict=self.predict,
            healthz=self.healthz,
            readyz=self.readyz,
            metrics=self.metrics_handler,
            openapi=self.public_openapi,
        )

    def admin_app(self) -> web.Application:
        app = web.Application(
            middlewares=[json_errors, self.require_token], client_max_size=ADMIN_MAX_BYTES
        )
        app.router.add_get("/admin/config", self.get_config)
        app.router.add_put("/admin/config", self.put_config)
        app.router.add_get("/admin/variants", self.get_variants)
        app.router.add_get("/admin/openapi.json", self.admin_openapi)
        return app

    def request_stop(self) -> None:
        self._stop.set()

    async def serve(self) -> int:
        loop = asyncio.get_running_loop()
        logging.getLogger("aiohttp.server").addFilter(QuietBadRequests())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        runners: list[web.AppRunner] = []
        try:
            apps = [] if self.opts.frontends else [(self.public_app(), self.opts.port)]
            if self.opts.admin_enabled:
                apps.append((self.admin_app(), self.opts.admin_port))
            for app, port in apps:
                runner = web.AppRunner(app, access_log=None, shutdown_timeout=5.0)
                await runner.setup()
                runners.append(runner)
                await web.TCPSite(runner, self.opts.host, port).start()
            if self.opts.frontends:
                self.hub = self._hub()
                await self.hub.start()
            log.info(
                "listening on %s:%d%s%s (device %s, threads %d)",
                self.opts.host,
                self.opts.port,
                f" through {self.opts.frontends} frontends" if self.opts.frontends else "",
                f", admin on :{self.opts.admin_port}" if self.opts.admin_enabled else "",
                self.device,
                torch.get_num_threads(),
            )
            self.batcher.start()
            self._tasks.append(loop.create_task(self._startup(), name="startup"))
            if self.opts.runtime_config is not None:
                self._tasks.append(loop.create_task(self._watch_runtime_file(), name="watch"))
            await self._stop.wait()
            await self._drain()
        finally:
            if self.hub is not None:
                await self.hub.stop()
            for task in self._tasks:
                task.cancel()
            for runner in runners:
                await runner.cleanup()
            self.compute.shutdown(wait=True, cancel_futures=False)
            self.loader.shutdown(wait=False, cancel_futures=True)
        log.info("predict answers by status: %s", json.dumps(dict(sorted(self.answered.items()))))
        log.info("stopped (exit %d)", self.exit_code)
        return self.exit_code

    def _hub(self) -> FrontendHub:
        return FrontendHub(
            self.opts.frontends,
            host=self.opts.host,
            port=self.opts.port,
            max_inputs=self.opts.max_inputs,
            answer=self.answer_frontend,
            render_metrics=self.metrics.render,
            observe=self.record,
            state=self.state,
            on_fatal=self._fatal,
            log_level=logging.getLevelName(log.getEffectiveLevel()).lower(),
        )

    async def _drain(self) -> None:
        self.terminating = True
        self._publish()
        log.info("stopping: readiness off, draining")
        if self.opts.drain_delay_s > 0 and self.exit_code == 0:
            await asyncio.sleep(self.opts.drain_delay_s)
        self.accepting = False
        self._publish()
        await self.batcher.drain()
        if self.inflight:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10.0):
                    await self._idle.wait()
        log.info("drained: queue empty, %d responses in flight", self.inflight)
