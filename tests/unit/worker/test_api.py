"""Request validation and error mapping, through a real aiohttp server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from inference_worker.api import (
    HttpError,
    JsonError,
    json_errors,
    loads_strict,
    parse_inputs,
    read_json,
)


async def echo(request: web.Request) -> web.Response:
    texts = parse_inputs(await read_json(request, 1024), max_inputs=3)
    return web.json_response({"n": len(texts)})


async def crash(request: web.Request) -> web.Response:
    raise ZeroDivisionError


def _raw(body: str) -> dict[str, Any]:
    return {"data": body.encode(), "headers": {"Content-Type": "application/json"}}


@pytest.fixture
async def client() -> AsyncIterator[TestClient[Any, Any]]:
    app = web.Application(middlewares=[json_errors], client_max_size=1024)
    app.router.add_post("/echo", echo)
    app.router.add_get("/crash", crash)
    async with TestClient(TestServer(app)) as c:
        yield c


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        ({"json": {"inputs": ["a", "b"]}}, 200, None),
        ({"data": b'{"inputs": ["a"]}'}, 415, "Content-Type must be application/json"),
        ({"data": b"{", "headers": {"Content-Type": "application/json"}}, 400, "not valid JSON"),
        ({"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}, 400, "JSON"),
        ({"json": {"inputs": ["x" * 2000]}}, 413, "over 1024 bytes"),
        ({"json": [1]}, 422, "JSON object"),
        ({"json": {"inputs": []}}, 422, "must not be empty"),
        ({"json": {"inputs": "text"}}, 422, "list of strings"),
        ({"json": {"inputs": ["a", 1]}}, 422, "must be a string"),
        ({"json": {"inputs": ["a"] * 4}}, 422, "more than the limit of 3"),
        ({"json": {"inputs": ["a"], "top_k": 2}}, 422, "unknown field"),
        (_raw('{"inputs": ["a", "\\ud800"]}'), 422, "lone surrogate"),
        (_raw('{"inputs": ["\\udfff tail"]}'), 422, "lone surrogate"),
        (_raw('{"inputs": [NaN]}'), 400, "NaN is not a JSON number"),
        (_raw('{"inputs": [-Infinity]}'), 400, "-Infinity is not a JSON number"),
    ],
)
async def test_error_mapping(
    client: TestClient[Any, Any], kwargs: dict[str, Any], status: int, words: str | None
) -> None:
    resp = await client.post("/echo", **kwargs)
    assert resp.status == status
    body = await resp.json()
    if words is None:
        assert body == {"n": 2}
    else:
        assert words in body["error"]


async def test_field_is_named(client: TestClient[Any, Any]) -> None:
    resp = await client.post("/echo", json={"inputs": ["a", None]})
    assert (await resp.json())["field"] == "inputs[1]"
    resp = await client.post("/echo", **_raw('{"inputs": ["ok", "ok", "bad \\ud800"]}'))
    assert resp.status == 422
    assert (await resp.json())["field"] == "inputs[2]"


async def test_chunked_body_over_the_limit_is_413(client: TestClient[Any, Any]) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"inputs": ["'
        for _ in range(20):
            yield b"x" * 100
        yield b'"]}'

    resp = await client.post("/echo", data=chunks(), headers={"Content-Type": "application/json"})
    assert resp.status == 413


async def test_router_errors_and_crashes_are_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/nowhere")
    assert resp.status == 404
    assert "error" in await resp.json()
    resp = await client.get("/echo")
    assert resp.status == 405
    resp = await client.get("/crash")
    assert resp.status == 500
    assert (await resp.json())["error"] == "internal error: ZeroDivisionError"


def test_http_error_headers() -> None:
    resp = HttpError(503, "busy", retry_after=1, close=True).response()
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["Connection"] == "close"


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),  # RecursionError before
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nested too deeply"),
        ("[" + "9" * 4301 + "]", "more than 4300 digits"),  # ValueError before
        ("-" + "1" * 5000, "more than 4300 digits"),
        ("[Infinity]", "Infinity is not a JSON number"),
        ('{"batchWindowMs": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("{", "Expecting property name"),
    ],
)
def test_loads_strict_refuses_with_a_reason(raw: str | bytes, words: str) -> None:
    with pytest.raises(JsonError, match=words):
        loads_strict(raw.encode() if isinstance(raw, str) else raw)


def test_loads_strict_accepts_json() -> None:
    assert loads_strict(b'{"inputs": ["a", "\\u00e9"], "n": ' + b"9" * 4300 + b"}") == {
        "inputs": ["a", "\u00e9"],
        "n": int("9" * 4300),
    }
