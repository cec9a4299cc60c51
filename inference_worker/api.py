"""HTTP request validation and error responses shared by the public and admin apps.

Every error is a JSON body `{"error": "<reason>"}` (plus `"field"` when one field is at fault)
with the status below; nothing a client sends can crash the worker:

| problem | status |
| --- | --- |
| body over the limit (1 MiB predict, 64 KiB admin) | 413 |
| Content-Type not application/json | 415 |
| body not valid JSON (or not UTF-8, NaN/Infinity, nested too deeply, a huge integer) | 400 |
| wrong shape, empty or too many inputs, invalid config | 422 |
| missing or wrong admin token | 401 |
| queue full, not ready yet, shutting down | 503 + Retry-After |
| request deadline exceeded | 504 |
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

PREDICT_MAX_BYTES = 1 << 20
ADMIN_MAX_BYTES = 64 << 10


class HttpError(Exception):
    def __init__(
        self,
        status: int,
        reason: str,
        *,
        field: str | None = None,
        retry_after: int | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after = retry_after
        self.close = close

    def to_message(self) -> dict[str, Any]:
        """The error as a frontend link message (`inference_worker.ipc`)."""
        message: dict[str, Any] = {"status": self.status, "error": self.reason}
        if self.field is not None:
            message["field"] = self.field
        if self.retry_after is not None:
            message["retry_after"] = self.retry_after
        if self.close:
            message["close"] = True
        return message

    @classmethod
    def from_message(cls, message: dict[str, Any]) -> HttpError:
        return cls(
            message["status"],
            message["error"],
            field=message.get("field"),
            retry_after=message.get("retry_after"),
            close=bool(message.get("close")),
        )

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.reason}
        if self.field is not None:
            body["field"] = self.field
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(self.retry_after)
        if self.close:
            headers["Connection"] = "close"
        return web.json_response(body, status=self.status, headers=headers)


async def read_json(request: web.Request, max_bytes: int) -> Any:
    """The request's JSON body, or HttpError 413/415/400."""
    if request.content_type != "application/json":
        raise HttpError(
            415,
            f"Content-Type must be application/json, got {request.content_type or 'none'!r}",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise HttpError(413, f"body of {request.content_length} bytes is over {max_bytes} bytes")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise HttpError(413, f"body is over {max_bytes} bytes", close=True) from None
    if len(raw) > max_bytes:
        raise HttpError(413, f"body of {len(raw)} bytes is over {max_bytes} bytes")
    try:
        return loads_strict(raw)
    except JsonError as exc:
        raise HttpError(400, f"body is not valid JSON: {exc}") from None


class JsonError(ValueError):
    """A document that is not strict JSON, or that no handler should have to walk."""


def _no_constant(name: str) -> Any:
    raise JsonError(f"{name} is not a JSON number")


def loads_strict(raw: bytes | str) -> Any:
    """Parse strict JSON (no NaN/Infinity) or raise JsonError saying why: not UTF-8, syntax,
    nesting deeper than the parser's recursion limit, an integer of more than
    `sys.get_int_max_str_digits()` digits."""
    if isinstance(raw, bytes):  # json.loads would also guess UTF-16/32: JSON is UTF-8
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonError(f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    try:
        return json.loads(raw, parse_constant=_no_constant)
    except JsonError:
        raise
    except RecursionError:
        raise JsonError("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise JsonError(str(exc)) from None
    except ValueError as exc:  # int(...) past the digit limit
        if "digits" in str(exc):
            raise JsonError(
                f"a number has more than {sys.get_int_max_str_digits()} digits"
            ) from None
        raise JsonError(str(exc)) from None


def parse_inputs(data: Any, max_inputs: int) -> list[str]:
    """`{"inputs": [text, ...]}` -> the texts, or HttpError 422 naming the field."""
    if not isinstance(data, dict):
        raise HttpError(422, 'the body must be a JSON object like {"inputs": ["text"]}')
    unknown = sorted(set(data) - {"inputs"})
    if unknown:
        raise HttpError(422, "unknown field; the only field is 'inputs'", field=unknown[0])
    inputs = data.get("inputs")
    if not isinstance(inputs, list):
        raise HttpError(422, "must be a list of strings", field="inputs")
    if not inputs:
        raise HttpError(422, "must not be empty", field="inputs")
    if len(inputs) > max_inputs:
        raise HttpError(
            422, f"{len(inputs)} inputs is more than the limit of {max_inputs}", field="inputs"
        )
    for i, text in enumerate(inputs):
        if not isinstance(text, str):
            raise HttpError(
                422, f"must be a string, got {type(text).__name__}", field=f"inputs[{i}]"
            )
        check_text(text, f"inputs[{i}]")
    return inputs


def check_text(text: str, field: str) -> None:
    """HttpError 422 unless `text` is valid Unicode text (a JSON `\\ud800` escape decodes to
    a lone surrogate, which no tokenizer or UTF-8 encoder accepts)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HttpError(
            422,
            f"is not valid Unicode text: lone surrogate {text[exc.start]!r} at index {exc.start}",
            field=field,
        ) from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_serving(*, accepting: bool, ready: bool) -> None:
    """HttpError 503 unless the worker takes predict requests now."""
    if not accepting:
        raise HttpError(503, "the worker is shutting down", retry_after=1, close=True)
    if not ready:
        raise HttpError(503, "not ready: the model is loading", retry_after=1)


def readiness(*, terminating: bool, ready: bool, variant: str) -> web.Response:
    """The `/readyz` answer, or HttpError 503 saying why not."""
    if terminating:
        raise HttpError(503, "shutting down")
    if not ready:
        raise HttpError(503, f"loading variant {variant}")
    return web.json_response({"ready": True, "variant": variant})


def public_app(
    *, predict: Handler, healthz: Handler, readyz: Handler, metrics: Handler, openapi: Handler
) -> web.Application:
    """The public port's routes: the worker's own, or each frontend's (the same contract)."""
    app = web.Application(middlewares=[json_errors], client_max_size=PREDICT_MAX_BYTES)
    app.router.add_post("/v1/predict", predict)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Router errors (404, 405...) and unexpected exceptions as JSON; never crash."""
    try:
        return await handler(request)
    except HttpError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return HttpError(exc.status, exc.reason).response()
    except Exception as exc:
        request.app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return HttpError(500, f"internal error: {type(exc).__name__}").response()


class QuietBadRequests(logging.Filter):
    """aiohttp logs a request its HTTP parser refuses (control characters in a header, a
    malformed request line...) as an ERROR with a traceback: any client could flood the log.
    Such a record becomes one WARNING line; the client already got its 400."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            first = str(exc.message).strip().splitlines()[0] if exc.message else ""
            record.msg = "refused a malformed HTTP request (%d %s)"
            record.args = (exc.code, first[:200])
            record.exc_info = None
            record.exc_text = None
            record.levelno = logging.WARNING
            record.levelname = "WARNING"
        return True
