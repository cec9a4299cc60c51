"""A misbehaving HTTP peer on loopback, for the operator's outbound-call limits.

`BadPeer(mode)` answers every request in one of these ways:

- `drip`: `200` with a declared length, then one byte every `drip_s` seconds;
- `huge`: `200` with no declared length and `huge_bytes` of body as fast as the socket takes it;
- `declared`: `200` declaring a 1 GB body, then nothing;
- `silent`: reads the request and never answers (until the client closes);
- `ok`: `200` with a small JSON body.

It counts connections, the most open at once, and the body bytes it managed to send.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from slo_local.promserver import free_port


@dataclass
class BadPeer:
    mode: str
    drip_s: float = 0.5
    huge_bytes: int = 200 * 1024 * 1024
    body: bytes = b'{"variant": "full", "batchWindowMs": 5, "maxBatchSize": 32}'
    port: int = field(default_factory=free_port)
    connections: int = 0
    open_now: int = 0
    most_open: int = 0
    sent: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/admin/config"

    async def __aenter__(self) -> BadPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.open_now -= 1
            self._tasks.discard(task)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if length:
            await reader.readexactly(length)
        if self.mode == "silent":
            await reader.read()  # until the client gives up and closes
        elif self.mode == "ok":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(self.body)}\r\nConnection: close\r\n\r\n".encode()
                + self.body
            )
            await writer.drain()
        elif self.mode == "declared":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            await writer.drain()
            await reader.read()
        elif self.mode == "drip":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            await writer.drain()
            for _ in range(1000):
                writer.write(b" ")
                await writer.drain()
                self.sent += 1
                await asyncio.sleep(self.drip_s)
        elif self.mode == "huge":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            chunk = b"x" * (1024 * 1024)
            while self.sent < self.huge_bytes:
                writer.write(chunk)
                await writer.drain()
                self.sent += len(chunk)
        else:
            raise ValueError(f"unknown mode {self.mode!r}")
