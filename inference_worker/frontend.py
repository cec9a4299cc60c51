"""One HTTP frontend process of a worker started with `--frontends N`.

    python -m inference_worker.frontend --socket PATH --host H --port P --max-inputs N

It serves the public port (`/v1/predict`, `/healthz`, `/readyz`, `/metrics`,
`/openapi.json`) beside its siblings (`SO_REUSEPORT`: the kernel spreads connections over
them), parses and validates each request itself, and sends only the texts to the model
process over one Unix socket (`inference_worker.ipc`). So HTTP parsing, JSON decoding,
validation and response encoding leave the process that feeds the device.

It imports no torch. It ignores SIGTERM and SIGINT: the model process owns the lifecycle
(readiness, drain) and tells it what to answer; it stops on the model's `stop` message (after
answering every request in flight) or when the model process goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
import sys
import time
from typing import Any

from aiohttp import web

from inference_worker.api import (
    PREDICT_MAX_BYTES,
    HttpError,
    QuietBadRequests,
    check_serving,
    parse_inputs,
    public_app,
    read_json,
    readiness,
)
from inference_worker.ipc import FrameProtocol
from inference_worker.metrics import CONTENT_TYPE
from inference_worker.openapi import public_document

log = logging.getLogger("inference_worker.frontend")


class Frontend:
    def __init__(self, max_inputs: int) -> None:
        self.max_inputs = max_inputs
        self.state: dict[str, Any] = {"ready": False, "terminating": False, "accepting": True}
        self.link: FrameProtocol | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.stopped = asyncio.Event()

    # ----- the link to the model process

    async def connect(self, path: str, timeout_s: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                _, self.link = await loop.create_unix_connection(
                    lambda: FrameProtocol(self._on_message, self._on_lost), path
                )
                return
            except OSError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    def _on_message(self, link: FrameProtocol, message: dict[str, Any]) -> None:
        op = message.get("op")
        if op == "state":
            self.state = message
        elif op == "stop":
            self.stopped.set()
        else:
            future = self._waiting.pop(message["id"], None)
            if future is not None and not future.done():
                future.set_result(message)

    def _on_lost(self, link: FrameProtocol) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the model process went away"))
        self._waiting.clear()
        self.stopped.set()

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        if self.link is None or not self.link.open:
            raise HttpError(503, "the model process is not reachable", retry_after=1, close=True)
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self.link.send({**message, "id": ident})
        try:
            return await future
        except ConnectionError as exc:
            raise HttpError(503, str(exc), retry_after=1, close=True) from None
        finally:
            self._waiting.pop(ident, None)

    # ----- HTTP

    async def predict(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        variant = self.state.get("variant", "")
        try:
            check_serving(accepting=self.state["accepting"], ready=self.state["ready"])
            texts = parse_inputs(await read_json(request, PREDICT_MAX_BYTES), self.max_inputs)
            answer = await self.ask({"op": "predict", "texts": texts})
            if answer["status"] != 200:
                raise HttpError.from_message(answer)
            variant = answer["body"]["variant"]
            response = web.json_response(answer["body"])
        except HttpError as exc:
            response = exc.response()
        if self.state["terminating"]:
            response.force_close()
        if self.link is not None:
            self.link.send(
                {
                    "op": "observe",
                    "variant": variant,
                    "code": response.status,
                    "seconds": time.perf_counter() - started,
                }
            )
        return response

    async def healthz(self, request: web.Request) -> web.Response:
        if self.link is None or not self.link.open:
            raise HttpError(503, "the model process is not reachable")
        return web.json_response({"status": "ok"})

    async def readyz(self, request: web.Request) -> web.Response:
        return readiness(
            terminating=self.state["terminating"] or self.stopped.is_set(),
            ready=self.state["ready"],
            variant=self.state.get("variant", ""),
        )

    async def metrics(self, request: web.Request) -> web.Response:
        answer = await self.ask({"op": "metrics"})
        response = web.Response(body=answer["text"].encode())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def openapi(self, request: web.Request) -> web.Response:
        return web.json_response(public_document(self.max_inputs))

    def app(self) -> web.Application:
        return public_app(
            predict=self.predict,
            healthz=self.healthz,
            readyz=self.readyz,
            metrics=self.metrics,
            openapi=self.openapi,
        )


async def run(socket_path: str, host: str, port: int, max_inputs: int) -> int:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: None)  # the model process decides
    logging.getLogger("aiohttp.server").addFilter(QuietBadRequests())
    frontend = Frontend(max_inputs)
    await frontend.connect(socket_path)
    runner = web.AppRunner(frontend.app(), access_log=None, shutdown_timeout=10.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, reuse_port=True).start()
        await frontend.stopped.wait()
    finally:
        await runner.cleanup()  # stops listening, waits for the requests in flight
        if frontend.link is not None:
            frontend.link.close()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m inference_worker.frontend")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-inputs", type=int, required=True)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s frontend %(process)d %(name)s: %(message)s",
    )
    try:
        code = asyncio.run(run(args.socket, args.host, args.port, args.max_inputs))
    except OSError as exc:
        log.error("cannot serve %s:%d: %s", args.host, args.port, exc)
        code = 1
    with contextlib.suppress(Exception):
        logging.shutdown()
    sys.exit(code)


if __name__ == "__main__":
    main()
